"""Integration: the registered HTTP functions, against the NIF sandbox (loopback HTTP) and Azurite."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devtools.nif_sandbox import NifSandbox
from tests.support import load_event

KEY = "api-test-subscription-key-42"
SEED_DAY = datetime(2019, 8, 27, 10, 0, tzinfo=UTC)


@pytest.fixture
def sandbox(sensitive):
    sensitive.add(KEY)
    with NifSandbox(subscription_key=KEY, clubs=range(600001, 600006)) as sb:
        yield sb


@pytest.fixture
def nif(storage, env, sandbox):
    env.set(NIF_API_BASE_URL=sandbox.base_url, NIF_SUBSCRIPTION_KEY=KEY)
    return sandbox


@pytest.fixture
def seed_day(monkeypatch, sandbox):
    """Freeze both sides' clocks on the seed example's date (2019-08-27)."""
    from shared.nif import api

    monkeypatch.setattr(api, "clock", lambda: SEED_DAY)
    sandbox._clock = lambda: SEED_DAY


def this_year_request(person: dict | None = None) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    start = today.replace(month=1, day=1).isoformat() if today.month > 1 or today.day > 1 else today.isoformat()
    end = (today.replace(year=today.year + 1, month=1, day=1)).isoformat()
    return {
        "startDate": start,
        "isClubLevel": True,
        "person": person
        or {
            "firstName": "Per",
            "lastName": "Hansen",
            "birthDate": "1990-01-01",
            "postCode": "0150",
            "email": "per.hansen@example.com",
            "mobilePhone": "90909091",
            "countryCode": "+47",
            "genderId": 1,
            "countryId": 1500152,
            "nationalityId": 1500152,
        },
        "sports": [{"branchId": 827527, "sportId": 220, "startDate": start, "endDate": end}],
    }


def body(res) -> Any:
    return json.loads(res.get_body())


def post(host, club: Any, payload: Any, **kw: Any):
    if isinstance(payload, (bytes, str)):
        return host.request(
            "POST",
            f"/api/nif/clubs/{club}/memberships",
            body=payload,
            headers={"Content-Type": "application/json"},
            **kw,
        )
    return host.request("POST", f"/api/nif/clubs/{club}/memberships", json_body=payload, **kw)


# --- membership add: the seed example end to end --------------------------------------------


def test_seed_request_end_to_end(app_host, nif, seed_day) -> None:
    res = post(app_host, 19428, load_event("nif/membership_request.txt"))
    assert res.status_code == 200, res.get_body()
    out = body(res)
    assert out["status"] == "pending_verification" and out["membershipId"] == 0
    assert out["personId"] == 8756934 and out["clubId"] == 19428 and out["traceId"]
    assert out["sentToEmail"] and out["sentToPhone"] and out["responseMessage"]
    assert [s["branchId"] for s in out["sports"]] == [827527, 819760]

    rec = app_host.request("GET", f"/api/nif/clubs/19428/membership-requests/{out['traceId'].lower()}")
    assert rec.status_code == 200
    record = body(rec)
    assert record["status"] == "pending_verification" and record["expired"] is False
    assert record["clubId"] == 19428 and record["personId"] == 8756934
    assert record["sentToEmail"].startswith("o***") and record["sentToPhone"].endswith("45")
    stored = json.dumps(record)
    assert "Ola" not in stored and "85569745" not in stored and "1980-07-05" not in stored


def test_allidrett_seed_request_end_to_end(app_host, nif, seed_day) -> None:
    res = post(app_host, 19428, load_event("nif/allidrett_request.txt"))
    assert res.status_code == 200, res.get_body()
    out = body(res)
    assert out["status"] == "pending_verification" and out["groups"][0]["groupId"] == 544901


def test_seed_request_is_1007_today(app_host, nif) -> None:
    res = post(app_host, 19428, load_event("nif/membership_request.txt"))
    assert res.status_code == 422
    problem = body(res)
    assert res.headers["Content-Type"] == "application/problem+json"
    assert problem["nifCode"] == 1007 and {"path": "startDate", "code": 1007} in [
        {k: e[k] for k in ("path", "code")} for e in problem["errors"]
    ]
    assert nif.calls["POST /api/v1/membership"] == 0  # never forwarded


def test_expired_after_24_hours(app_host, nif, seed_day, monkeypatch) -> None:
    from shared.nif import api

    trace = body(post(app_host, 19428, load_event("nif/membership_request.txt")))["traceId"]
    monkeypatch.setattr(api, "clock", lambda: SEED_DAY + timedelta(hours=24, seconds=1))
    record = body(app_host.request("GET", f"/api/nif/clubs/19428/membership-requests/{trace}"))
    assert record["status"] == "expired" and record["expired"] is True


def test_confirm_request_from_the_queue_side(app_host, nif, seed_day) -> None:
    from shared.nif.membership_requests import confirm_request

    trace = body(post(app_host, 19428, load_event("nif/membership_request.txt")))["traceId"]
    assert confirm_request(trace, person_id=8756934, membership_id=777, source="queue") is True
    assert confirm_request(trace, person_id=8756934, membership_id=777, source="queue") is True  # idempotent
    assert confirm_request("no-such-trace", person_id=1, membership_id=2, source="queue") is False
    record = body(app_host.request("GET", f"/api/nif/clubs/19428/membership-requests/{trace}"))
    assert record["status"] == "confirmed" and record["membershipId"] == 777 and record["confirmedBy"] == "queue"


def test_membership_request_of_another_club_is_404(app_host, nif, seed_day) -> None:
    trace = body(post(app_host, 19428, load_event("nif/membership_request.txt")))["traceId"]
    assert app_host.request("GET", f"/api/nif/clubs/600001/membership-requests/{trace}").status_code == 404
    assert app_host.request("GET", "/api/nif/clubs/19428/membership-requests/unknown-trace").status_code == 404
    assert app_host.request("GET", "/api/nif/clubs/19428/membership-requests/bad%20trace!").status_code == 400


def test_existing_club_membership_is_completed_at_once(app_host, nif) -> None:
    first = body(post(app_host, 19428, this_year_request()))
    nif.complete(first["traceId"])
    again = post(app_host, 19428, this_year_request())
    assert again.status_code == 200
    assert body(again)["status"] == "completed" and body(again)["membershipId"] > 0


# --- NIF rejections and failures -----------------------------------------------------------------


def test_branch_only_without_club_membership_is_409_3001(app_host, nif) -> None:
    req = this_year_request({"personId": 8756935})
    req["isClubLevel"] = False
    res = post(app_host, 19428, req)
    assert res.status_code == 409 and body(res)["nifCode"] == 3001


def test_unknown_branch_rejected_by_nif_with_1006(app_host, nif) -> None:
    req = this_year_request()
    req["sports"][0]["branchId"] = 1234
    res = post(app_host, 19428, req)
    assert res.status_code == 422 and body(res)["nifCode"] == 1006


def test_unknown_person_id_is_1002(app_host, nif) -> None:
    res = post(app_host, 19428, this_year_request({"personId": 1}))
    assert res.status_code == 422 and body(res)["nifCode"] == 1002


def test_unknown_club_is_404_1018(app_host, nif) -> None:
    res = post(app_host, 4242, this_year_request())
    assert res.status_code == 404 and body(res)["nifCode"] == 1018


@pytest.mark.parametrize("status", [500, 502, 503])
def test_nif_5xx_is_502_and_post_not_retried(app_host, nif, status) -> None:
    app_host.request("GET", "/api/nif/clubs/19428/token")
    nif.inject("/api/v1/membership", status=status, times=3)
    res = post(app_host, 19428, this_year_request())
    assert res.status_code == 502 and body(res)["status"] == 502
    assert len(nif._faults) == 1 and nif._faults[0].times == 2  # exactly one POST reached "NIF"


def test_nif_timeout_is_504(app_host, nif, env) -> None:
    env.set(NIF_READ_TIMEOUT_SECONDS=0.3)
    app_host.request("GET", "/api/nif/clubs/19428/token")
    nif.inject("/api/v1/membership", delay=0.8, status=500)
    res = post(app_host, 19428, this_year_request())
    assert res.status_code == 504 and "may still have been applied" in body(res)["detail"]


def test_nif_unreachable_is_502(app_host, storage, env) -> None:
    sb = NifSandbox().start()
    url = sb.base_url
    sb.stop()
    env.set(NIF_API_BASE_URL=url, NIF_SUBSCRIPTION_KEY=KEY)
    res = app_host.request("GET", "/api/nif/clubs/19428/organization")
    assert res.status_code == 502 and body(res)["type"].endswith("nif-unavailable")


def test_not_configured_is_503(app_host, storage, env) -> None:
    env.set(NIF_API_BASE_URL=None, NIF_SUBSCRIPTION_KEY=None)
    res = app_host.request("GET", "/api/nif/clubs/19428/token")
    assert res.status_code == 503


# --- malformed input: never a 5xx ------------------------------------------------------------------

MALFORMED: list[tuple[str, Any, int]] = [
    ("empty", b"", 400),
    ("not json", b"{not json", 400),
    ("truncated", b'{"person": {"firstName": "x"', 400),
    ("bad utf8", b'{"a": "\xff\xfe"}', 400),
    ("array", [], 422),
    ("string", "just text", 422),
    ("number", 12, 422),
    ("null", None, 422),
    ("person not object", {"person": "Ola"}, 422),
    ("sports not list", {"person": {"personId": 1}, "sports": {"a": 1}}, 422),
    ("sports items not objects", {"person": {"personId": 1}, "sports": [1, 2]}, 422),
    ("huge id", {"person": {"personId": 10**40}}, 422),
    ("huge nested id", {"startDate": "2026-01-01", "person": {"personId": 5}, "sports": [{"branchId": 10**30}]}, 422),
    ("negative id", {"person": {"personId": -5}}, 422),
    ("float id", {"person": {"personId": 1.5}}, 422),
    ("bool id", {"person": {"personId": True}}, 422),
    ("text id", {"person": {"personId": "abc"}}, 422),
    ("nan", b'{"person": {"personId": NaN}}', 400),  # not JSON (RFC 8259 has no NaN)
    ("infinity", b'{"person": {"genderId": Infinity}}', 400),
    ("duplicate key", b'{"person": {"personId": 5, "personId": 6}}', 400),  # which one would NIF see?
    ("5000-digit integer", b'{"person": {"personId": ' + b"9" * 5000 + b"}}", 400),
    ("bad date", {"startDate": "27.08.2019", "person": {"personId": 5}}, 422),
    ("impossible date", {"startDate": "2019-02-30", "person": {"personId": 5}}, 422),
    ("date as number", {"startDate": 20190827, "person": {"personId": 5}}, 422),
    ("postcode as number", {"person": {"firstName": "a", "postCode": 10}}, 422),
    ("isClubLevel object", {"isClubLevel": {"x": 1}, "person": {"personId": 5}}, 422),
    ("deep nesting", b"[" * 5000 + b"]" * 5000, 400),
    ("empty object", {}, 422),
]


@pytest.mark.parametrize("name,payload,status", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_membership_bodies(app_host, nif, name, payload, status) -> None:
    if payload is None:
        res = post(app_host, 19428, b"null")
    elif isinstance(payload, bytes):
        res = post(app_host, 19428, payload)
    else:
        res = post(app_host, 19428, json.dumps(payload))
    assert res.status_code == status, (name, res.get_body()[:300])
    problem = body(res)
    assert problem["status"] == status and problem["type"]
    if status == 422:
        assert problem.get("nifCode") in (1001, 1002, 1036, 1039)
    assert nif.calls["POST /api/v1/membership"] == 0


@pytest.mark.parametrize("club", ["abc", "0", "-1", "1.5", "99999999999999999999999", "2147483648", "%20"])
def test_malformed_club_ids(app_host, nif, club) -> None:
    for method, path in (("POST", "memberships"), ("GET", "organization"), ("GET", "token"), ("POST", "token")):
        res = app_host.request(method, f"/api/nif/clubs/{club}/{path}", json_body=this_year_request())
        assert 400 <= res.status_code < 500, (club, path, res.status_code)


@pytest.mark.parametrize("query", ["", "?clubId=", "?clubId=x", "?clubId=-3", "?clubId=1e5"])
def test_reference_data_needs_a_valid_club_query(app_host, nif, query) -> None:
    for path in ("sports", "countries"):
        assert app_host.request("GET", f"/api/nif/{path}{query}").status_code == 400


def test_wrong_content_type_is_415(app_host, nif) -> None:
    res = app_host.request(
        "POST", "/api/nif/clubs/19428/memberships", body=b"<xml/>", headers={"Content-Type": "application/xml"}
    )
    assert res.status_code == 415


# --- reference data and tokens ---------------------------------------------------------------------


def test_reference_data_through_the_functions(app_host, nif) -> None:
    sports = body(app_host.request("GET", "/api/nif/sports?clubId=19428"))
    assert sports[0]["sportId"] == 32 and sports[0]["sports"][0]["sportId"] == 132
    countries = body(app_host.request("GET", "/api/nif/countries?clubId=19428"))
    assert {"countryId": 1500152, "countryName": "Norge", "isoAlpha2": "NO", "isoAlpha3": "NOR"} in countries
    regular = body(app_host.request("GET", "/api/nif/clubs/1111111/organization"))
    assert regular["groups"][0]["branches"][0]["sportId"] == 132
    corporate = body(app_host.request("GET", "/api/nif/clubs/16235/organization"))
    assert corporate["groups"][0]["branches"] == [] and corporate["longitude"] is None
    allidrett = [
        g for g in body(app_host.request("GET", "/api/nif/clubs/19428/organization"))["groups"] if g["isAllidrett"]
    ]
    assert [g["groupId"] for g in allidrett] == [544901]
    for _ in range(2):
        app_host.request("GET", "/api/nif/sports?clubId=600001")
        app_host.request("GET", "/api/nif/clubs/1111111/organization")
    assert nif.calls["GET /api/v1/sports"] == 1 and nif.calls["GET /api/v1/organization/structure"] == 3


def test_token_report_and_refresh_never_show_the_token(app_host, nif) -> None:
    got = app_host.request("GET", "/api/nif/clubs/19428/token")
    refreshed = app_host.request("POST", "/api/nif/clubs/19428/token")
    for res in (got, refreshed):
        assert res.status_code == 200
        data = body(res)
        assert set(data) == {"clubId", "expiresAt", "fetchedAt", "mode"} and data["mode"] == "api"
        assert b"eyJ" not in res.get_body()
    assert nif.token_fetches[19428] == 2
    assert body(refreshed)["fetchedAt"] >= body(got)["fetchedAt"]


def test_token_endpoints_require_a_function_key(app_host, nif) -> None:
    assert app_host.request("GET", "/api/nif/clubs/19428/token", key=None).status_code == 401


def test_200_concurrent_adds_over_5_clubs_fetch_5_tokens(app_host, nif) -> None:
    clubs = list(range(600001, 600006))

    def add(i: int) -> int:
        person = {
            "firstName": f"P{i}",
            "lastName": "Test",
            "birthDate": "1990-01-01",
            "postCode": "0150",
            "email": f"p{i}@example.com",
            "mobilePhone": "90909091",
            "countryCode": "+47",
            "genderId": 2,
            "countryId": 1500152,
            "nationalityId": 1500152,
        }
        return post(app_host, clubs[i % 5], this_year_request(person)).status_code

    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(add, range(200)))
    assert statuses == [200] * 200
    assert {c: nif.token_fetches[c] for c in clubs} == {c: 1 for c in clubs}
