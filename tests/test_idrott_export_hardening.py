"""Issue 9 on the export side: nothing stuck, nothing leaked, a ledger that matches the server.

Against the real parts: Azurite (``storage``), the in-process asyncssh SFTP server and, for the
HTTP views, the registered functions through the local host (``app_host``).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest

from shared import sftp
from shared.idrott import error_codes, export, ledger, state
from shared.idrott.models import Activity, Participant, Person
from shared.idrott.store import ClubRecords
from tests.idrott_support import (
    SFTP_PASSWORD,
    activities_by_id,
    activity,
    club_body,
    participant_ids,
    person,
    persons_by_id,
    register_club,
    sftp_server,
    still_pending,
    xml_files,
    xml_root,
)

BASE = "/api/idrottonline/clubs"


@pytest.fixture
def srv(tmp_path, storage, env, sensitive, monkeypatch):
    env.set(SFTP_PASSWORD_TEST=SFTP_PASSWORD)
    sensitive.add(SFTP_PASSWORD)
    monkeypatch.setattr(sftp, "RETRY_BACKOFF_SECONDS", (0.0,))
    with sftp_server(tmp_path / "sftp") as server:
        yield server


def _persons(rec: ClubRecords, n: int, prefix: str = "p") -> list[str]:
    ids = [f"{prefix}{i}" for i in range(n)]
    rec.upsert_persons(
        [Person.model_validate(person(pid, serial=i + 1, female=bool(i % 2))) for i, pid in enumerate(ids)]
    )
    return ids


def _json(res):
    return json.loads(res.get_body() or b"null")


# ---- (4) a record that cannot be sent never holds back the others ----------------------------------------
def test_oversized_activity_is_skipped_reported_and_stays_pending(srv, env, caplog):
    env.set(SFTP_PASSWORD_TEST=SFTP_PASSWORD, IDROTTONLINE_MAX_FILE_BYTES=10_000)
    caplog.set_level(logging.INFO, logger="shared.idrott.export")
    club = register_club("club1", srv)
    rec = ClubRecords("club1")
    ids = _persons(rec, 60)
    rec.upsert_activities(
        [Activity.model_validate(activity("big", ids)), Activity.model_validate(activity("small", ids[:2]))]
    )
    r = export.export_club(club)
    assert r.status == "succeeded", r.error
    assert (r.persons, r.activities) == (60, 1)
    files = [xml_root(f) for f in xml_files(srv.root)]
    assert [a for f in files for a in activities_by_id(f)] == ["small"]  # "big" is not sent
    assert [(s["kind"], s["id"], s["code"]) for s in r.skipped] == [("activity", "big", "record-too-large")]
    assert re.search(
        r"export\.record_skipped club_id=club1 .*kind=activity id='big' code=record-too-large", caplog.text
    )
    # kept pending: never marked exported, its dirty marker survives
    assert rec.get_activity("big").exported_hash is None
    assert rec.get_activity("small").exported_hash is not None
    assert still_pending(rec) == {("activity", "big")}
    row = ledger.list_runs("club1")[0]
    assert row.status == "succeeded" and [s["id"] for s in row.skipped] == ["big"]

    # an unrelated change later: it goes out, the oversized activity is reported again, not sent
    rec.upsert_persons([Person.model_validate(person("p1", serial=2, female=True, first="Ebba"))])
    r2 = export.export_club(club)
    assert r2.status == "succeeded", r2.error
    assert (r2.persons, r2.activities, r2.full_load) == (1, 0, False)
    assert [s["id"] for s in r2.skipped] == ["big"]
    assert rec.get_activity("big").exported_hash is None

    # only the oversized activity is pending: nothing to upload, still reported, still pending
    r3 = export.export_club(club)
    assert r3.status == "empty" and [s["id"] for s in r3.skipped] == ["big"]
    assert still_pending(rec) == {("activity", "big")}


def test_oversized_activity_is_visible_in_preview_and_exports_answers(app_host, srv, env):
    assert app_host.request("PUT", "/api/clubs/c1", json_body=club_body(srv), key="master").status_code == 201
    ppl = [person(f"m{i}", serial=i + 1, female=bool(i % 2)) for i in range(60)]
    assert app_host.request("PUT", f"{BASE}/c1/persons", json_body=ppl).status_code == 200
    acts = [activity("big", [p["externalId"] for p in ppl]), activity("small", ["m0", "m1"])]
    assert app_host.request("PUT", f"{BASE}/c1/activities", json_body=acts).status_code == 200
    # stored while the limit allowed it (intake refuses what cannot fit today): then it is lowered
    env.set(SFTP_PASSWORD_TEST=SFTP_PASSWORD, IDROTTONLINE_MAX_FILE_BYTES=10_000)

    res = app_host.request("GET", f"{BASE}/c1/export/preview")
    assert res.status_code == 200, res.get_body()[:500]
    pv = _json(res)
    assert pv["activities"] == 1 and pv["persons"] == 60
    assert [(s["kind"], s["id"], s["code"]) for s in pv["skipped"]] == [("activity", "big", "record-too-large")]
    assert pv["skipped"][0]["message"]
    assert {a["activityId"] for a in pv["lokPrognosis"]["activities"]} == {"small"}

    res = app_host.request("POST", f"{BASE}/c1/export", key="master")
    assert res.status_code == 200, res.get_body()[:500]
    assert [s["id"] for s in _json(res)["skipped"]] == ["big"]
    runs = _json(app_host.request("GET", f"{BASE}/c1/exports"))["runs"]
    assert runs[0]["status"] == "succeeded" and runs[0]["skippedCount"] == 1
    assert runs[0]["skipped"][0] | {"message": "x"} == {
        "kind": "activity",
        "id": "big",
        "code": "record-too-large",
        "message": "x",
        "detail": runs[0]["skipped"][0]["detail"],
    }


def test_record_the_xsd_refuses_is_skipped_and_the_rest_sent(srv):
    """A stored record whose XML can never validate (a legacy id with a trailing newline) is
    isolated: it and the activities that need it are skipped, everything else goes out."""
    club = register_club("club1", srv)
    rec = ClubRecords("club1")
    _persons(rec, 3)
    bad = Person.model_validate(person("nl1", serial=40)).model_copy(update={"external_id": "nl1\n"})
    rec.upsert_persons([bad])
    needs_bad = Activity.model_validate(activity("needs-bad", ["p0", "p2"]))
    needs_bad = needs_bad.model_copy(
        update={
            "participants": [
                *needs_bad.participants,
                Participant.model_validate({"personId": "nl1"}).model_copy(update={"person_id": "nl1\n"}),
            ]
        }
    )
    rec.upsert_activities([Activity.model_validate(activity("ok", ["p0", "p1"])), needs_bad])
    r = export.export_club(club)
    assert r.status == "succeeded", r.error
    assert (r.persons, r.activities) == (3, 1)
    skipped = {(s["kind"], s["id"]): s["code"] for s in r.skipped}
    assert skipped.keys() == {("person", "nl1\n"), ("activity", "needs-bad")}
    assert skipped[("person", "nl1\n")] == "record-invalid"
    # invalid in its own right (the participant id) or because of the person it needs
    assert skipped[("activity", "needs-bad")] in ("record-invalid", "participant-not-sendable")
    files = [xml_root(f) for f in xml_files(srv.root)]  # neither nl1 nor needs-bad, under any name
    assert {p for f in files for p in persons_by_id(f)} == {"p0", "p1", "p2"}
    assert [a for f in files for a in activities_by_id(f)] == ["ok"]
    assert sorted(p for f in files for p in participant_ids(f)) == ["p0", "p1"]
    assert rec.get_person("nl1\n").exported_hash is None
    assert rec.get_activity("needs-bad").exported_hash is None


def test_a_record_the_xsd_refuses_is_found_skipped_and_the_rest_sent(srv, monkeypatch):
    """Whatever makes one record's XML invalid (here: the writer emits an element the XSD does not
    know, for person p1 only), the refused file is taken apart, that record and the activity that
    needs it are skipped, and everything else is sent."""
    from shared.idrott import xmlwriter

    real = xmlwriter.person_element

    def broken_for_p1(p, header, etree):
        el = real(p, header, etree)
        if p.external_id == "p1":
            etree.SubElement(el, "Bogus").text = "x"
        return el

    monkeypatch.setattr(xmlwriter, "person_element", broken_for_p1)
    club = register_club("club1", srv)
    rec = ClubRecords("club1")
    _persons(rec, 4)
    rec.upsert_activities(
        [
            Activity.model_validate(activity("ok", ["p0", "p2", "p3"])),
            Activity.model_validate(activity("with-p1", ["p0", "p1"])),
        ]
    )
    r = export.export_club(club)
    assert r.status == "succeeded", r.error
    assert {(s["kind"], s["id"]): s["code"] for s in r.skipped} == {
        ("person", "p1"): "record-invalid",
        ("activity", "with-p1"): "participant-not-sendable",
    }
    assert "Bogus" in r.skipped[0]["detail"]
    assert (r.persons, r.activities) == (3, 1)
    files = [xml_root(f) for f in xml_files(srv.root)]  # neither p1 nor with-p1
    assert {p for f in files for p in persons_by_id(f)} == {"p0", "p2", "p3"}
    assert [a for f in files for a in activities_by_id(f)] == ["ok"]
    assert sorted(p for f in files for p in participant_ids(f)) == ["p0", "p2", "p3"]
    assert rec.get_person("p1").exported_hash is None and rec.get_activity("with-p1").exported_hash is None
    assert rec.get_person("p0").exported_hash is not None
    assert still_pending(rec) == {("person", "p1"), ("activity", "with-p1")}


# ---- (6) function-key views: a code and a sentence, never registry details ----------------------------
@pytest.mark.parametrize(
    ("change", "code", "hidden"),
    [
        ({"sftpPasswordSecret": "sftp-password-atk2-prod"}, "sftp-credentials-missing", ["sftp-password-atk2-prod"]),
        ({"sftpUsername": "wronguser"}, "sftp-auth-failed", ["wronguser"]),
    ],
)
def test_export_errors_show_function_key_callers_a_code_not_registry_details(app_host, srv, change, code, hidden):
    body = {**club_body(srv), **change}
    assert app_host.request("PUT", "/api/clubs/c1", json_body=body, key="master").status_code == 201
    assert app_host.request("PUT", f"{BASE}/c1/persons", json_body=[person("a", serial=3)]).status_code == 200
    hidden = [*hidden, "127.0.0.1", str(srv.port)]

    res = app_host.request("POST", f"{BASE}/c1/export", key="master")
    assert res.status_code == 502
    problem = _json(res)
    assert problem["errorCode"] == code and problem["batchId"]
    assert problem["detail"].endswith(error_codes.ERROR_CODES[code])
    assert not [h for h in hidden if h in problem["detail"]]

    res = app_host.request("GET", f"{BASE}/c1/exports")
    assert res.status_code == 200
    run = _json(res)["runs"][0]
    assert (run["status"], run["errorCode"], run["error"]) == ("failed", code, error_codes.ERROR_CODES[code])
    assert "errorDetail" not in run
    text = res.get_body().decode()
    assert not [h for h in hidden if h in text], text

    # the details are for the admin view (master key) only
    assert app_host.request("GET", f"{BASE}/c1/exports/full").status_code == 401
    res = app_host.request("GET", f"{BASE}/c1/exports/full", key="master")
    assert res.status_code == 200
    full = _json(res)["runs"][0]
    assert full["errorCode"] == code and all(h in full["errorDetail"] for h in hidden[:1])
    assert app_host.request("GET", f"{BASE}/c1/exports/full?limit=0", key="master").status_code in (400, 422)


def test_every_error_code_has_a_sentence_and_legacy_rows_are_not_shown_raw(storage):
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)+", c) and s.endswith(".") for c, s in error_codes.ERROR_CODES.items())
    # docs/idrottonline.md documents exactly this table, word for word
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "idrottonline.md").read_text(encoding="utf-8")
    section = doc.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z-]+)`(?: \(record\))? \| ([^|]+) \|", section, re.MULTILINE)
    assert {code: sentence.strip() for code, sentence in rows} == error_codes.ERROR_CODES
    # a ledger row written before error codes existed: no error_code stored, only the text
    ledger.save_run(
        ledger.RunResult(
            club_id="old",
            status="failed",
            batch_id="b1",
            started_at=datetime.now(UTC),
            error="SftpAuthError: SFTP secret not found: SFTP_PASSWORD_ATK2 sftp-password-atk2-prod",
        )
    )
    view = ledger.list_runs("old")[0].to_json()
    assert view["errorCode"] == "sftp-credentials-missing" and "atk2" not in json.dumps(view)


# ---- (10) the ledger matches the server --------------------------------------------------------------
def test_per_file_upload_state_and_new_names_for_a_retry_in_the_same_second(srv, env):
    env.set(SFTP_PASSWORD_TEST=SFTP_PASSWORD, IDROTTONLINE_MAX_FILE_BYTES=10_000)
    club = register_club("club1", srv)
    rec = ClubRecords("club1")
    _persons(rec, 50)
    at = datetime(2026, 3, 2, 2, 0, 0, tzinfo=UTC)  # both runs in the same second

    def frozen() -> datetime:
        return at

    srv.drop_connection_after(1, times=1000, path_filter=lambda p: "_2of" in p)  # file 2 never arrives
    r1 = export.export_club(club, now=frozen)
    assert r1.status == "failed" and len(r1.files) >= 3
    on_server = {p.name: p.read_bytes() for p in xml_files(srv.root)}
    first = ledger.list_runs("club1")[0]
    assert [f["uploaded"] for f in first.files] == [True] + [False] * (len(first.files) - 1)
    assert set(on_server) == {first.files[0]["name"]}  # the ledger says what the server has

    srv.faults.remaining = 0  # the server is well again
    r2 = export.export_club(club, now=frozen)
    assert r2.status == "succeeded", r2.error
    assert not {f["name"] for f in r1.files} & {f["name"] for f in r2.files}  # never a name twice
    now_on_server = {p.name: p.read_bytes() for p in xml_files(srv.root)}
    assert now_on_server[first.files[0]["name"]] == on_server[first.files[0]["name"]]  # not overwritten
    for run in ledger.list_runs("club1"):
        for f in run.files:
            assert (f["name"] in now_on_server) is f["uploaded"], (run.status, f)
    assert len(now_on_server) == 1 + len(r2.files)


class WorkerKilled(BaseException):
    """The process dies here (nothing after this line runs, no lock is released)."""


@pytest.mark.parametrize("dies", ["after-records-commit", "before-state"])
def test_dead_worker_run_is_closed_abandoned_and_no_full_load_again(srv, monkeypatch, dies):
    club = register_club("club1", srv)
    rec = ClubRecords("club1")
    _persons(rec, 4)
    rec.upsert_activities([Activity.model_validate(activity("a1", ["p0", "p1", "p2"]))])
    with monkeypatch.context() as m:
        if dies == "after-records-commit":
            real_commit = ClubRecords.commit

            def commit_then_die(self, sel):
                real_commit(self, sel)
                raise WorkerKilled

            m.setattr(ClubRecords, "commit", commit_then_die)
        else:

            def die(*_a, **_k):
                raise WorkerKilled

            m.setattr(export, "mark_run_succeeded", die)
        m.setattr(export, "release_lock", lambda *_a, **_k: None)
        with pytest.raises(WorkerKilled):
            export.export_club(club)
    first = ledger.list_runs("club1")[0]
    assert first.status == "running" and first.files and all(f["uploaded"] for f in first.files)
    assert export.export_club(club).status == "skipped"  # its lock holds until the lease ends

    later = datetime.now(UTC) + timedelta(seconds=900 + 60)
    r = export.export_club(club, now=lambda: later)
    assert r.status in ("succeeded", "empty"), r.error
    assert r.full_load is False  # the full load reached the server: never a full load again
    runs = {x.batch_id: x for x in ledger.list_runs("club1")}
    closed = runs[first.batch_id]
    assert closed.status == "abandoned" and closed.error_code == "run-abandoned"
    assert r.batch_id in (closed.error or "")
    assert closed.to_json()["error"] == error_codes.ERROR_CODES["run-abandoned"]
    assert state.full_load_done("club1")
    assert {x.status for x in ledger.list_runs("club1")} <= {"abandoned", "succeeded", "empty", "skipped"}


def test_stale_part_files_of_this_club_are_removed_at_the_next_upload(srv):
    club = register_club("club1", srv)
    rec = ClubRecords("club1")
    _persons(rec, 3)
    srv.drop_connection_after(50, times=1000)  # killed uploads leave .part files behind
    assert export.export_club(club).status == "failed"
    left = sorted(p.name for p in srv.root.glob("*.part"))
    assert left, "the killed upload should have left its .part file"
    ours = [
        "idrettsbro_12345_20240101T020000Z_1of2.xml.part",  # named before attempt tags existed
        "idrettsbro_12345_20240101T020000Z_0a1b2c3d_1of1.xml.2.part",
    ]
    theirs = [
        "idrettsbro_99999_20240101T020000Z_1of1.xml.part",  # another club on the same server
        "otherapp_12345_20240101T020000Z_1of1.xml.part",  # another vendor
        "notes.part",
        "idrettsbro_12345_20240101T020000Z_1of1.xml",  # a delivered file is never touched
    ]
    for name in ours + theirs:
        (srv.root / name).write_bytes(b"x")
    srv.faults.remaining = 0
    r = export.export_club(club)
    assert r.status == "succeeded", r.error
    names = {p.name for p in srv.root.iterdir()}
    assert not names & set(ours + left)
    assert set(theirs) <= names


def test_the_folder_is_listed_for_stale_files_only_after_an_attempt_that_may_have_left_one(srv, monkeypatch):
    """A listing per run grows with the folder: after a run that left it clean, the next upload
    does not list it; after an upload that failed, the next one lists it and removes what was left."""
    import paramiko

    listed: list[str] = []
    real_listdir = paramiko.SFTPClient.listdir
    monkeypatch.setattr(
        paramiko.SFTPClient, "listdir", lambda self, path=".": listed.append(path) or real_listdir(self, path)
    )
    club = register_club("club1", srv)
    rec = ClubRecords("club1")
    _persons(rec, 3)
    assert export.export_club(club).status == "succeeded"
    assert len(listed) == 1  # the first upload: unknown, so it looks
    assert not state.parts_possible(state.read_state("club1"))

    def change(first: str) -> None:
        assert rec.upsert_persons([Person.model_validate(person("p1", serial=2, female=True, first=first))]) == []

    change("Ny")
    assert export.export_club(club).status == "succeeded"
    assert len(listed) == 1  # left clean: not listed again
    change("Nyare")
    srv.drop_connection_after(50, times=1000)
    assert export.export_club(club).status == "failed"
    left = sorted(p.name for p in srv.root.glob("*.part"))
    assert left and state.parts_possible(state.read_state("club1"))
    srv.faults.remaining = 0
    assert export.export_club(club).status == "succeeded"
    assert len(listed) == 2 and not list(srv.root.glob("*.part"))
    assert not state.parts_possible(state.read_state("club1"))


def test_each_connection_uploads_to_its_own_part_file(srv, tmp_path):
    """After a drop, a server that resumes the dead connection's writes cannot touch the retry's file."""
    local = tmp_path / "f.xml"
    local.write_bytes(b"y" * 200_000)
    target = sftp.SftpTarget(
        "127.0.0.1", srv.port, srv.username, srv.host_key_line, password_secret="sftp-password-test"
    )
    srv.drop_connection_after(50_000, times=1)
    report = sftp.upload_files(target, [(local, "idrettsbro_12345_20260101T020000Z_1of1.xml")])
    assert report.connections == 2
    parts = [p for p in srv.opened if p.endswith(".part")]
    assert len(parts) == 2 and parts[0] != parts[1], parts
    assert sorted(p.name for p in srv.root.iterdir()) == ["idrettsbro_12345_20260101T020000Z_1of1.xml"]
