"""Mirror read API through the registered functions: secret-field omission, admin twins,
merged persons resolved, status/branch filters, paging."""

from __future__ import annotations

import json

import pytest

from tests.queue_support import messages
from tests.support import load_event


@pytest.fixture
def host(app_host, storage):
    """The session host, with the queue fixtures delivered into this test's tables."""
    items = [
        load_event(f"queue/{e}_added.json")[0]
        for e in ("TpPerson", "TpPersonContactInformation", "TpMembership", "TpActiveMembership")
    ]
    fx = load_event("queue/person_merge.json")
    shutdown = load_event("queue/club_shutdown.json")
    arg = app_host.functions["nif_queue"].trigger["name"]
    app_host.invoke("nif_queue", **{arg: messages(items + fx["before"] + fx["sequence"] + shutdown["members"])})
    return app_host


def get(host, url, key="function"):
    res = host.request("GET", url, key=key)
    return res.status_code, (json.loads(res.get_body()) if res.get_body() else None)


def test_routes_and_auth_levels(host) -> None:
    routes = {r.route: r.auth_level for r in host.routes if r.name.startswith("nif_mirror")}
    assert routes == {
        "nif/clubs/{clubId}/members": "function",
        "nif/clubs/{clubId}/members/full": "admin",
        "nif/persons/{personId}": "function",
        "nif/persons/{personId}/full": "admin",
    }
    assert not any(r.startswith("admin") for r in routes)


def test_person_omits_secret_fields_unless_admin(host) -> None:
    status, body = get(host, "/api/nif/persons/8756934")
    assert status == 200
    contact = body["contact"]
    assert "email" not in contact and "privatePhone" not in contact  # isSecretEmail / isSecretPrivatePhone
    assert contact["mobilePhone"] == "91234567" and contact["city"] == "Oslo"
    assert get(host, "/api/nif/persons/8756934/full", key="function")[0] == 401
    status, full = get(host, "/api/nif/persons/8756934/full", key="master")
    assert status == 200 and full["contact"]["email"] == "ola.dunk@example.no"
    assert full["contact"]["privatePhone"] == "22334455"
    assert [m["membershipId"] for m in full["memberships"]] == [9100001]
    assert full["activeMemberships"][0]["branchId"] == 819760


def test_old_person_id_resolves_to_the_survivor(host) -> None:
    ids = load_event("queue/person_merge.json")["ids"]
    status, body = get(host, f"/api/nif/persons/{ids['P1']}")
    assert status == 200 and body["personId"] == ids["N"] and body["requestedPersonId"] == ids["P1"]
    assert [m["membershipId"] for m in body["memberships"]] == [ids["MN"]]


def test_unknown_person_is_404(host) -> None:
    status, body = get(host, "/api/nif/persons/1234")
    assert status == 404 and body["status"] == 404


def test_club_members_with_filters(host) -> None:
    ids = load_event("queue/person_merge.json")["ids"]
    status, body = get(host, "/api/nif/clubs/19428/members")
    assert status == 200
    members = {m["membershipId"]: m for m in body["items"]}
    assert set(members) == {9100001, ids["MN"]}  # merged-away memberships are not listed by default
    assert "email" not in members[9100001]["person"]["contact"]
    status, body = get(host, "/api/nif/clubs/19428/members?status=merged")
    assert {m["membershipId"] for m in body["items"]} == {ids["M1"], ids["M2"]}
    assert all(m["personId"] == ids["N"] and m["mergedFromPersonId"] in (ids["P1"], ids["P2"]) for m in body["items"])
    status, body = get(host, "/api/nif/clubs/19428/members?branchId=819760")
    assert {m["membershipId"] for m in body["items"]} == {9100001, ids["MN"]}
    status, body = get(host, "/api/nif/clubs/19428/members?branchId=827527")
    assert body["items"] == []
    status, full = get(host, "/api/nif/clubs/19428/members/full", key="master")
    assert {m["membershipId"]: m for m in full["items"]}[9100001]["person"]["contact"]["email"] == "ola.dunk@example.no"
    assert get(host, "/api/nif/clubs/19428/members?status=bogus")[0] == 400


def test_club_members_paging(host) -> None:
    seen, token, pages = [], None, 0
    while True:
        url = "/api/nif/clubs/19999/members?pageSize=15" + (f"&continuationToken={token}" if token else "")
        status, body = get(host, url)
        assert status == 200
        seen += [m["membershipId"] for m in body["items"]]
        pages += 1
        token = body["continuationToken"]
        if not token:
            break
    assert pages >= 3 and sorted(seen) == list(range(9400000, 9400040)) and len(seen) == 40
    assert get(host, "/api/nif/clubs/19999/members?continuationToken=%%%")[0] == 400


def test_openapi_lists_the_mirror_routes() -> None:
    from shared.nif.mirror_openapi import OPERATIONS

    assert {(o.method, o.path, o.auth) for o in OPERATIONS} == {
        ("GET", "/api/nif/clubs/{clubId}/members", "function"),
        ("GET", "/api/nif/clubs/{clubId}/members/full", "admin"),
        ("GET", "/api/nif/persons/{personId}", "function"),
        ("GET", "/api/nif/persons/{personId}/full", "admin"),
    }
