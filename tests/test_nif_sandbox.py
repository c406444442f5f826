"""The NIF sandbox behaves like NIF per the seed: headers, tokens, codes, verification matrix, outbox."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import date

import httpx
import pytest

from devtools.nif_sandbox import NifSandbox, matrix_case

KEY = "sandbox-test-key-0001"


@pytest.fixture
def sb(sensitive):
    sensitive.add(KEY)
    with NifSandbox(subscription_key=KEY) as s:
        yield s


@pytest.fixture
def http(sb):
    with httpx.Client(base_url=sb.base_url + "/api/v1/") as c:
        yield c


def auth(sb, club: int = 19428) -> dict[str, str]:
    return {"Ocp-Apim-Subscription-Key": KEY, "Authorization": sb.issue_token(club), "ClubId": str(club)}


def this_year(today: date | None = None) -> str:
    return (today or date.today()).replace(month=1, day=1).isoformat()


def new_person(nationality: int = 1500152, **kw) -> dict:
    return {
        "firstName": "Nina",
        "lastName": "Ny",
        "birthDate": "2001-02-03",
        "postCode": "0150",
        "email": "nina.ny@example.com",
        "mobilePhone": "91919191",
        "countryCode": "+47",
        "genderId": 2,
        "countryId": nationality,
        "nationalityId": nationality,
        **kw,
    }


def add(http, sb, person: dict, *, club_level: bool = True, branches: bool = True, club: int = 19428):
    start = this_year(sb.today())
    body = {
        "startDate": start,
        "isClubLevel": club_level,
        "person": person,
        "sports": [{"branchId": 827527, "sportId": 220, "startDate": start}] if branches else [],
    }
    return http.post("membership", json=body, headers=auth(sb, club))


def test_token_requires_subscription_key(http, sb) -> None:
    assert http.get("auth/token/19428").status_code == 401
    assert http.get("auth/token/19428", headers={"Ocp-Apim-Subscription-Key": "nope"}).status_code == 401
    res = http.get("auth/token/555", headers={"Ocp-Apim-Subscription-Key": KEY})
    assert res.status_code == 400 and res.json()["code"] == 1018


def test_token_is_hs256_with_club_claim_and_one_hour(http, sb) -> None:
    token = http.get("auth/token/19428", headers={"Ocp-Apim-Subscription-Key": KEY}).json()["token"]
    head, body, sig = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)
    assert json.loads(base64.urlsafe_b64decode(pad(head)))["alg"] == "HS256"
    claims = json.loads(base64.urlsafe_b64decode(pad(body)))
    assert claims["ClubId"] == "19428" and claims["exp"] - claims["iat"] == 3600
    expected = base64.urlsafe_b64encode(hmac.new(sb._secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    assert expected.rstrip(b"=").decode() == sig
    assert sb.token_fetches[19428] == 1


@pytest.mark.parametrize("drop", ["Ocp-Apim-Subscription-Key", "Authorization", "ClubId"])
def test_all_three_headers_required(http, sb, drop) -> None:
    headers = auth(sb)
    del headers[drop]
    assert http.get("sports", headers=headers).status_code == 401


def test_token_of_another_club_or_tampered_is_401(http, sb) -> None:
    headers = auth(sb)
    assert http.get("sports", headers={**headers, "ClubId": "1111111"}).status_code == 401
    assert http.get("sports", headers={**headers, "Authorization": headers["Authorization"] + "x"}).status_code == 401
    assert (
        http.get("sports", headers={**headers, "Authorization": "Bearer " + headers["Authorization"]}).status_code
        == 200
    )


def test_reference_data_served(http, sb) -> None:
    assert http.get("sports", headers=auth(sb)).json()[0]["sportName"] == "Ski"
    assert len(http.get("countries", headers=auth(sb)).json()) == 4
    org = http.get("organization/structure", headers=auth(sb, 1111111)).json()
    assert org["groups"][0]["branches"][0]["sportId "] == "132"  # the seed's quirk, served as is


def test_rules_applied_with_nif_codes(http, sb) -> None:
    res = add(http, sb, new_person(email=None))
    assert res.status_code == 400 and res.json() == {
        "code": 1010,
        "message": "Either Email or MobilePhone and CountryCode must be supplied.",
        "errors": [{"path": "person.email", "code": 1010, "message": "e-mail is required"}],
    }
    assert http.post("membership", content=b"{", headers=auth(sb)).json()["code"] == 1039


@pytest.mark.parametrize(
    "club_level,branches,person,norwegian,has_club,expected",
    [
        (True, False, "new", True, False, (1, True, True)),
        (True, False, "new", False, False, (2, True, False)),
        (True, False, "validated", True, False, (3, True, False)),
        (True, False, "unvalidated", True, False, (4, True, True)),
        (True, False, "unvalidated", False, False, (5, True, False)),
        (True, True, "new", True, False, (6, True, True)),
        (True, True, "new", False, False, (7, True, False)),
        (True, True, "validated", True, False, (8, True, False)),
        (True, True, "unvalidated", True, False, (9, True, True)),
        (True, True, "unvalidated", False, False, (10, True, False)),
        (False, True, "unvalidated", True, True, (11, False, False)),
        (False, True, "validated", True, True, (12, False, False)),
        (False, True, "new", True, False, (13, False, False)),
        (False, True, "validated", True, False, (14, False, False)),
        (False, True, "unvalidated", True, False, (15, False, False)),
        (False, True, "unvalidated", False, False, (16, False, False)),
    ],
)
def test_two_phase_matrix(club_level, branches, person, norwegian, has_club, expected) -> None:
    assert (
        matrix_case(
            club_level=club_level, branches=branches, person=person, norwegian=norwegian, has_club_membership=has_club
        )
        == expected
    )


def test_club_level_new_person_pending_then_completed_with_outbox(http, sb) -> None:
    res = add(http, sb, new_person())
    out = res.json()
    assert res.status_code == 200 and out["membershipId"] == 0 and out["traceId"]
    ver = next(v for v in http.get(sb.base_url + "/_sandbox/verifications").json() if v["traceId"] == out["traceId"])
    assert (ver["case"], ver["link"], ver["otp"]) == (6, True, True)
    assert http.get(sb.base_url + "/_sandbox/outbox").json() == []

    done = http.post(sb.base_url + f"/_sandbox/verifications/{out['traceId'].lower()}/complete").json()
    assert done["membershipId"] > 0 and done["personId"] == out["personId"]
    msgs = http.get(sb.base_url + "/_sandbox/outbox").json()
    kinds = [(m["applicationProperties"]["EntityName"], m["applicationProperties"]["ChangeType"]) for m in msgs]
    assert kinds == [
        ("TpPerson", 9),
        ("TpPerson", 1),
        ("TpMembership", 9),
        ("TpMembership", 1),
        ("TpActiveMembership", 9),
        ("TpActiveMembership", 1),
    ]
    assert [m["sequenceNumber"] for m in msgs] == sorted(m["sequenceNumber"] for m in msgs)
    assert all(m["body"]["traceId"] == out["traceId"] for m in msgs)
    assert msgs[3]["applicationProperties"]["ObjectId"] == done["membershipId"]
    assert set(msgs[0]) == {"messageId", "sequenceNumber", "enqueuedTimeUtc", "applicationProperties", "body"}
    after = http.get(sb.base_url + "/_sandbox/outbox", params={"after": msgs[3]["sequenceNumber"]}).json()
    assert [m["sequenceNumber"] for m in after] == [m["sequenceNumber"] for m in msgs[4:]]
    # completing twice changes nothing
    http.post(sb.base_url + f"/_sandbox/verifications/{out['traceId']}/complete")
    assert len(http.get(sb.base_url + "/_sandbox/outbox").json()) == 6


def test_validated_person_gets_no_trace_id(http, sb) -> None:
    out = add(http, sb, {"personId": 8756935}).json()
    assert out["traceId"] is None and out["membershipId"] == 0
    ver = next(v for v in http.get(sb.base_url + "/_sandbox/verifications").json() if v["personId"] == 8756935)
    assert (ver["case"], ver["otp"]) == (8, False)
    http.post(sb.base_url + f"/_sandbox/verifications/{ver['id']}/complete")
    msgs = http.get(sb.base_url + "/_sandbox/outbox").json()
    assert [m["applicationProperties"]["EntityName"] for m in msgs[::2]] == ["TpMembership", "TpActiveMembership"]
    assert all(m["body"]["traceId"] is None for m in msgs)


def test_branch_only_needs_a_club_membership(http, sb) -> None:
    assert add(http, sb, {"personId": 8756934}, club_level=False).json()["code"] == 3001
    out = add(http, sb, {"personId": 8756934}, branches=False).json()
    http.post(sb.base_url + f"/_sandbox/verifications/{out['traceId']}/complete")
    res = add(http, sb, {"personId": 8756934}, club_level=False)
    assert res.status_code == 200 and res.json()["membershipId"] > 0
    assert res.json()["sports"][0]["activeMembershipId"] > 0  # case 11: added at once


def test_foreign_new_person_gets_no_otp(http, sb) -> None:
    add(http, sb, new_person(nationality=1500159))
    assert [(v["case"], v["otp"]) for v in http.get(sb.base_url + "/_sandbox/verifications").json()] == [(7, False)]


def test_search_finds_existing_person(http, sb) -> None:
    ola = {
        "firstName": "Ola",
        "lastName": "Dunk",
        "birthDate": "1980-07-05",
        "postCode": "0010",
        "genderId": 1,
        "nationalityId": 1500152,
        "countryId": 1500152,
        "email": "other@example.com",
        "mobilePhone": "12345678",
        "countryCode": "+47",
    }
    out = add(http, sb, ola).json()
    assert out["personId"] == 8756934
    assert out["sentToEmail"] == "ola.dunk@mailinator.com"  # the existing person's contact (since 2023)


def test_unknown_verification_is_404(http, sb) -> None:
    assert http.post(sb.base_url + "/_sandbox/verifications/nope/complete").status_code == 404
