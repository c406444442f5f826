"""IdrottOnline routes end to end through the registered functions (local host, Azurite, SFTP)."""

from __future__ import annotations

import json
import logging

import pytest

from shared import sftp
from tests.idrott_support import (
    SFTP_PASSWORD,
    activities_by_id,
    activity,
    club_body,
    person,
    persons_by_id,
    sftp_server,
    xml_files,
    xml_root,
)

BASE = "/api/idrottonline/clubs"


@pytest.fixture
def srv(tmp_path, storage, queues, env, sensitive, monkeypatch):
    env.set(SFTP_PASSWORD_TEST=SFTP_PASSWORD)
    sensitive.add(SFTP_PASSWORD)
    monkeypatch.setattr(sftp, "RETRY_BACKOFF_SECONDS", (0.0,))
    with sftp_server(tmp_path / "sftp") as server:
        yield server


def _json(res):
    return json.loads(res.get_body() or b"null")


def _tick_the_timer(app_host, *, past_due: bool = False) -> None:
    """The nightly timer fans out; the export worker then runs each work item, delivered from
    Azurite's queue through the runtime by the poller (host.json's queue semantics)."""
    from azure.functions.timer import TimerRequest

    app_host.invoke("idrott_export_timer", timer=TimerRequest(past_due=past_due))
    _drain(app_host)


def _drain(app_host) -> None:
    from devtools.queue_poller import QueuePoller

    with QueuePoller(app_host.driver, "idrott_export_worker", max_polling_interval=0.2) as poller:
        poller.drain(until_empty=True, timeout=60)


def _tonight() -> str:
    from shared.idrott.clock import local_date, utc_now

    return local_date(utc_now()).isoformat()


def _put_club(host, srv, club_id="c1", **kw):
    res = host.request("PUT", f"/api/clubs/{club_id}", json_body=club_body(srv, **kw), key="master")
    assert res.status_code in (200, 201), res.get_body()
    return _json(res)


# ---- bindings ------------------------------------------------------------------------------------
def test_bindings(app_host):
    timer = app_host.functions["idrott_export_timer"].trigger
    assert timer["schedule"] == "%IDROTTONLINE_EXPORT_SCHEDULE%"
    assert timer.get("runOnStartup") in (False, None) and timer.get("useMonitor") is True
    routes = {
        (r.route, m): r.auth_level
        for r in app_host.routes
        for m in r.methods
        if r.route.startswith(("clubs", "idrottonline"))
    }
    assert routes == {
        ("clubs/{clubId}", "PUT"): "admin",
        ("clubs/{clubId}", "GET"): "admin",
        ("idrottonline/clubs/{clubId}/persons", "PUT"): "function",
        ("idrottonline/clubs/{clubId}/persons/{externalId}", "DELETE"): "function",
        ("idrottonline/clubs/{clubId}/activities", "PUT"): "function",
        ("idrottonline/clubs/{clubId}/activities/{activityId}", "DELETE"): "function",
        ("idrottonline/clubs/{clubId}/exports", "GET"): "function",
        ("idrottonline/clubs/{clubId}/exports/full", "GET"): "admin",
        ("idrottonline/clubs/{clubId}/export", "POST"): "admin",
        ("idrottonline/clubs/{clubId}/export/preview", "GET"): "function",
        ("idrottonline/export", "POST"): "admin",
        ("idrottonline/export/nights/{night}", "GET"): "admin",
        ("idrottonline/export/overdue", "GET"): "admin",
        ("idrottonline/export/poison", "GET"): "admin",
        ("idrottonline/export/poison/requeue", "POST"): "admin",
    }
    worker = app_host.functions["idrott_export_worker"].trigger
    assert worker["type"] == "queueTrigger" and worker["queueName"] == "%IDROTTONLINE_EXPORT_QUEUE%"
    assert worker["connection"] == "AzureWebJobsStorage"


def test_openapi_lists_the_routes():
    from shared.idrott.openapi_ops import OPERATIONS
    from shared.openapi import build_document

    doc = build_document(OPERATIONS)
    assert "/api/idrottonline/clubs/{clubId}/persons" in doc["paths"]
    assert len(OPERATIONS) == 10


# ---- the whole story -----------------------------------------------------------------------------
def test_end_to_end_intake_preview_export_delta(app_host, srv, sensitive, caplog):

    club = _put_club(app_host, srv)
    assert club["country"] == "SE" and club["sftpPasswordSecret"] == "sftp-password-test"
    assert SFTP_PASSWORD not in json.dumps(club)
    persons = [person(f"m{i}", serial=10 + i, female=bool(i % 2)) for i in range(4)]
    persons.append(person("coach", year=1985, serial=5, first="Kim"))
    sensitive.add(*(p["personnummer"] for p in persons))
    res = app_host.request("PUT", f"{BASE}/c1/persons", json_body=persons)
    assert res.status_code == 200, res.get_body()
    assert _json(res)["stored"] == 5
    acts = [activity("t1", [f"m{i}" for i in range(4)], leader="coach"), activity("t2", ["m0"], minutes=30)]
    res = app_host.request("PUT", f"{BASE}/c1/activities", json_body=acts)
    assert res.status_code == 200, res.get_body()

    res = app_host.request("GET", f"{BASE}/c1/export/preview")
    assert res.status_code == 200, res.get_body()
    pv = _json(res)
    assert pv["fullLoad"] and pv["persons"] == 5 and pv["activities"] == 2
    (preview_file,) = pv["files"]
    root = xml_root(preview_file["xml"])
    assert root.tag == "Import" and root.get("Version") == "1"
    assert set(persons_by_id(root)) == {"coach", "m0", "m1", "m2", "m3"}
    assert set(activities_by_id(root)) == {"t1", "t2"}
    prog = {a["activityId"]: a for a in pv["lokPrognosis"]["activities"]}
    assert pv["lokPrognosis"]["advisory"] is True
    assert prog["t1"]["eligible"] is True
    assert not prog["t2"]["eligible"]
    assert {f["rule"] for f in prog["t2"]["failures"]} >= {"duration", "min_participants"}
    assert xml_files(srv.root) == []  # the preview sends nothing

    # the nightly timer exports every enabled SE club
    _tick_the_timer(app_host)
    first = xml_files(srv.root)
    assert len(first) == 1
    assert first[0].name.startswith("idrettsbro_12345_") and first[0].name.endswith("_1of1.xml")
    root = xml_root(first[0])
    assert set(persons_by_id(root)) == {"coach", "m0", "m1", "m2", "m3"}
    assert set(activities_by_id(root)) == {"t1", "t2"}

    # one person changes → the next run sends only that person
    changed = dict(persons[2], firstName="Maja")
    assert app_host.request("PUT", f"{BASE}/c1/persons", json_body=[changed]).status_code == 200
    assert app_host.request("PUT", f"{BASE}/c1/persons", json_body=[persons[1]]).status_code == 200  # unchanged
    caplog.set_level(logging.INFO)
    _tick_the_timer(app_host, past_due=True)  # the same night again: nothing is enqueued twice
    assert "past due" in caplog.text and "0 club(s) enqueued, 1 already rolled" in caplog.text
    assert xml_files(srv.root) == first
    night = _json(app_host.request("GET", f"/api/idrottonline/export/nights/{_tonight()}", key="master"))
    assert [(c["clubId"], c["status"]) for c in night["clubs"]] == [("c1", "succeeded")]
    assert night["notRolled"] == []
    # every club now, by an admin: through the queue to the worker
    res = app_host.request("POST", "/api/idrottonline/export", key="master")
    assert res.status_code == 202 and _json(res)["clubs"] == ["c1"]
    _drain(app_host)
    second = [f for f in xml_files(srv.root) if f not in first]
    assert len(second) == 1
    root2 = xml_root(second[0])
    persons2 = persons_by_id(root2)
    assert list(persons2) == ["m2"] and persons2["m2"].findtext("FirstName") == "Maja"
    assert root2.find("Activities") is None

    runs = _json(app_host.request("GET", f"{BASE}/c1/exports"))["runs"]
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    assert runs[0]["persons"] == 1 and runs[1]["persons"] == 5 and runs[1]["fullLoad"]
    assert runs[0]["files"][0]["sha256"] and runs[0]["files"][0]["size"] == second[0].stat().st_size

    # member leaves, activity deleted, manual run (admin)
    assert app_host.request("DELETE", f"{BASE}/c1/persons/m3").status_code == 200
    assert app_host.request("DELETE", f"{BASE}/c1/activities/t2").status_code == 200
    assert app_host.request("POST", f"{BASE}/c1/export").status_code == 401  # function key is not enough
    res = app_host.request("POST", f"{BASE}/c1/export", key="master")
    assert res.status_code == 200, res.get_body()
    run = _json(res)
    assert (run["persons"], run["deletes"]) == (1, 1)
    res = app_host.request("POST", f"{BASE}/c1/export", key="master")
    assert _json(res)["status"] == "empty"


def test_manual_export_failure_is_502_and_in_ledger(app_host, srv, tmp_path):
    from devtools.sftp_server import SftpServer

    body = club_body(srv)
    body["sftpHostKey"] = SftpServer(tmp_path / "o").host_key_line
    assert app_host.request("PUT", "/api/clubs/c1", json_body=body, key="master").status_code == 201
    app_host.request("PUT", f"{BASE}/c1/persons", json_body=[person("a", serial=3)])
    res = app_host.request("POST", f"{BASE}/c1/export", key="master")
    assert res.status_code == 502
    p = _json(res)
    assert p["batchId"] and p["errorCode"] == "sftp-host-key-rejected" and "host key" in p["detail"]
    assert "HostKeyRejected" in p["run"]["errorDetail"]  # an admin-level answer
    runs = _json(app_host.request("GET", f"{BASE}/c1/exports"))["runs"]
    assert runs[0]["status"] == "failed" and runs[0]["errorCode"] == "sftp-host-key-rejected"
    full = _json(app_host.request("GET", f"{BASE}/c1/exports/full", key="master"))["runs"]
    assert "HostKeyRejected" in full[0]["errorDetail"]


# ---- intake validation ---------------------------------------------------------------------------
def test_bulk_partial_validation(app_host, srv, sensitive):
    _put_club(app_host, srv)
    good = person("ok1", serial=3)
    bad_pnr = dict(person("bad1", serial=4), personnummer=good["personnummer"] + " ")  # trailing space
    bad_luhn = dict(
        person("bad2", serial=5),
        personnummer=good["personnummer"][:-1] + "0"
        if not good["personnummer"].endswith("0")
        else good["personnummer"][:-1] + "1",
    )
    wrong_gender = dict(person("bad3", serial=6), gender="female")
    foreign_se = {**person("bad4"), "personnummer": None, "nationality": "SE", "birthDate": "2010-01-01"}
    foreign_ok = {**person("f1"), "personnummer": None, "nationality": "NO", "birthDate": "2010-01-01"}
    no_sport = dict(person("bad5", serial=8), sports=[])
    dup = person("ok1", serial=3)
    body = [good, bad_pnr, bad_luhn, wrong_gender, foreign_se, foreign_ok, no_sport, dup, "x"]
    sensitive.add(*(p["personnummer"] for p in body if isinstance(p, dict) and p.get("personnummer")))
    res = app_host.request("PUT", f"{BASE}/c1/persons", json_body=body)
    assert res.status_code == 422
    assert res.headers["Content-Type"].startswith("application/problem+json")
    p = _json(res)
    paths = {e["path"] for e in p["errors"]}
    assert {
        "[1].personnummer",
        "[2].personnummer",
        "[3].gender",
        "[4].nationality",
        "[6].sports",
        "[7].externalId",
    } <= paths
    assert any(x.startswith("[8]") for x in paths)
    assert [s["index"] for s in p["stored"]] == [0, 5]
    assert [r["index"] for r in p["rejected"]] == [1, 2, 3, 4, 6, 7, 8]
    assert "2 valid persons were stored" in p["detail"]
    text = json.dumps(p)
    for v in body:
        if isinstance(v, dict) and v.get("personnummer"):
            assert v["personnummer"].strip() not in text
    # activities: participants must resolve, end after start, TypeId 1-9, venue
    acts = [
        activity("a1", ["ok1", "f1"]),
        activity("a2", ["ok1", "ghost"]),
        {**activity("a3", ["ok1"]), "typeId": 10},
        {**activity("a4", ["ok1"]), "venueName": " "},
        {**activity("a5", ["ok1"]), "endTime": activity("a5", ["ok1"])["startTime"]},
    ]
    res = app_host.request("PUT", f"{BASE}/c1/activities", json_body={"activities": acts})
    assert res.status_code == 422
    p = _json(res)
    paths = {e["path"] for e in p["errors"]}
    assert {"[1].participants[1].personId", "[2].typeId", "[3].venueName", "[4].endTime"} <= paths
    assert [s["id"] for s in p["stored"]] == ["a1"]


MALFORMED = [
    b"",
    b"   ",
    b"{",
    b"[",
    b"null",
    b"true",
    b"42",
    b'"text"',
    b"{}",
    b"[]",
    b'{"persons": 5}',
    b'{"persons": [], "x": 1}',
    b"[null]",
    b"[1, 2]",
    b"[[]]",
    b'[{"externalId": null}]',
    b'[{"externalId": "../../etc"}]',
    b'[{"externalId": "a", "sports": "x"}]',
    b'[{"externalId": "a", "firstName": "\\u0000"}]',
    b'[{"externalId": "a", "personnummer": 19900101}]',
    b'[{"externalId": "a", "personnummer": "1990-01-01"}]',
    b'[{"externalId": "a", "birthDate": "2020-13-45"}]',
    b"\xff\xfe\x00",
    b"[" * 5000 + b"]" * 5000,
    b'[{"externalId": "' + b"x" * 100_000 + b'"}]',
    json.dumps([{"externalId": f"p{i}"} for i in range(1001)]).encode(),
    b'[{"externalId": "a", "firstName": "A", "lastName": "B", "gender": "x", "sports": [{"sportId": -1}]}]',
    b'[{"externalId": "a", "firstName": "A", "lastName": "B", "gender": "male", "sports": [{"sportId": 1e400}]}]',
]


def test_malformed_bodies_never_5xx(app_host, srv):
    _put_club(app_host, srv)
    for path in ("persons", "activities"):
        for body in MALFORMED:
            res = app_host.request("PUT", f"{BASE}/c1/{path}", body=body, headers={"Content-Type": "application/json"})
            assert 400 <= res.status_code < 500, (path, body[:60], res.status_code, res.get_body()[:300])
    for body in MALFORMED[:12] + [
        b'{"country": "SE"}',
        b'{"country": "SE", "sftpHostKey": "ssh-ed25519 AAAA"}',
        b'{"country": "XX"}',
        b'{"country": "NO", "sftpPort": 70000}',
    ]:
        res = app_host.request(
            "PUT", "/api/clubs/c2", body=body, key="master", headers={"Content-Type": "application/json"}
        )
        assert 400 <= res.status_code < 500, (body[:60], res.status_code)


def test_wrong_club_and_ids(app_host, srv):
    assert app_host.request("PUT", f"{BASE}/nope/persons", json_body=[person("a")]).status_code == 404
    _put_club(app_host, srv, "no1") if False else None
    res = app_host.request("PUT", "/api/clubs/no1", key="master", json_body={"country": "NO", "nifOrganisationId": 5})
    assert res.status_code == 201
    assert app_host.request("PUT", f"{BASE}/no1/persons", json_body=[person("a")]).status_code == 409
    _put_club(app_host, srv)
    assert app_host.request("DELETE", f"{BASE}/c1/persons/unknown").status_code == 404
    assert app_host.request("DELETE", f"{BASE}/c1/activities/unknown").status_code == 404
    assert app_host.request("GET", f"{BASE}/c1/exports?limit=x").status_code in (400, 422)
    assert app_host.request("GET", f"{BASE}/c1/exports", key=None).status_code == 401
    assert app_host.request("GET", f"{BASE}/c1/export/preview").status_code == 200  # empty preview


def test_club_registry_validation(app_host, srv):
    body = club_body(srv)
    assert app_host.request("PUT", "/api/clubs/c1", json_body=body).status_code == 401  # admin only
    res = app_host.request(
        "PUT",
        "/api/clubs/c1",
        key="master",
        json_body={
            **body,
            "organisationNumber": "802000-0001",
            "sftpHostKey": "ssh-ed25519 Zm9v",
            "rfGuid": "nope",
            "sftpPasswordSecret": "bad name!",
            "sftpPort": 0,
        },
    )
    assert res.status_code == 422
    paths = {e["path"] for e in _json(res)["errors"]}
    assert {"organisationNumber", "sftpHostKey", "rfGuid", "sftpPasswordSecret", "sftpPort"} <= paths
    res = app_host.request("PUT", "/api/clubs/c1", key="master", json_body={"country": "SE"})
    paths = {e["path"] for e in _json(res)["errors"]}
    assert {
        "rfForeningsnummer",
        "organisationNumber",
        "rfGuid",
        "sftpHost",
        "sftpHostKey",
        "sftpPasswordSecret",
    } <= paths
    res = app_host.request("PUT", "/api/clubs/c1", key="master", json_body={**body, "clubId": "other"})
    assert res.status_code == 422
    res = app_host.request("PUT", "/api/clubs/c1", key="master", json_body={**body, "sftpPassword": "x"})
    assert res.status_code == 422  # unknown field: secret values are never accepted
    assert app_host.request("PUT", "/api/clubs/c1", key="master", json_body=body).status_code == 201
    assert app_host.request("PUT", "/api/clubs/c1", key="master", json_body=body).status_code == 200
    got = _json(app_host.request("GET", "/api/clubs/c1", key="master"))
    assert got["clubId"] == "c1" and got["sftpHostKey"] == srv.host_key_line
    assert app_host.request("GET", "/api/clubs/zz", key="master").status_code == 404
