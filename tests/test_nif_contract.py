"""Contract tests: the seed document's examples, verbatim (tests/events/nif/), parse and validate."""

from __future__ import annotations

import base64
import json
from datetime import date

import pytest

from shared.nif import lenient_json, rules
from shared.nif.models import (
    Country,
    MembershipRequest,
    MembershipResult,
    NifMembershipResponse,
    OrgStructure,
    Sport,
    TokenResponse,
)
from shared.nif.tokens import jwt_claims
from tests.support import event_names, event_text, load_event


@pytest.mark.parametrize("name", event_names("nif/*.txt"))
def test_seed_examples_are_not_strict_json_but_parse_leniently(name: str) -> None:
    text = event_text(name)
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert lenient_json.loads(text)


def test_fixture_quirks_are_kept_verbatim() -> None:
    request = event_text("nif/membership_request.txt")
    response = event_text("nif/membership_response.txt")
    assert '"personId": 8756934, -- NB: If personId is provided, all person properties ignored.' in request
    assert '"sports”: [' in response
    assert "Club Level.\nIt is pending" in response
    assert event_text("nif/token_response.txt").startswith('[ "token": "eyJ')
    assert '"sportId ": "132"' in event_text("nif/org_structure_regular.txt")
    assert '"personId": "",' in event_text("nif/allidrett_request.txt")


def test_membership_request_example() -> None:
    req = MembershipRequest.model_validate(load_event("nif/membership_request.txt"))
    assert req.person.personId == 8756934
    assert req.person.addressLine2 is None  # "" is absent
    assert [s.branchId for s in req.sports] == [827527, 819760]
    assert req.startDate == date(2019, 8, 27)
    assert rules.validate_membership(req, today=date(2019, 8, 27)) == []
    assert rules.primary_code(rules.validate_membership(req, today=date(2026, 3, 1))) == 1007


def test_membership_response_example() -> None:
    nif = NifMembershipResponse.model_validate(load_event("nif/membership_response.txt"))
    result = MembershipResult.from_nif(nif)
    assert result.status == "pending_verification"
    assert result.personId == 8756934 and result.membershipId == 0 and result.clubId == 19428
    assert result.traceId == "7AC07206-471E-4015-9ED7-E6DB55ED7201"
    assert [s.branchId for s in result.sports] == [819760, 827527]  # key had a typographic quote
    assert result.responseMessage.startswith("Membership request is accepted at Club Level.")


def test_allidrett_request_example() -> None:
    req = MembershipRequest.model_validate(load_event("nif/allidrett_request.txt"))
    assert req.person.personId is None  # "" means absent
    assert req.groups[0].groupId == 544901 and req.groups[0].sportId == 0
    assert rules.validate_membership(req, today=date(2019, 8, 27)) == []
    assert rules.validate_membership(req, today=date(2019, 8, 27), allidrett_group_ids={544901}) == []
    codes = {v.code for v in rules.validate_membership(req, today=date(2019, 8, 27), allidrett_group_ids={1})}
    assert codes == {1042}


def test_allidrett_response_example() -> None:
    result = MembershipResult.from_nif(NifMembershipResponse.model_validate(load_event("nif/allidrett_response.txt")))
    assert result.status == "pending_verification"
    assert result.sports == [] and result.groups == []


def test_regular_org_structure_example() -> None:
    org = OrgStructure.model_validate(load_event("nif/org_structure_regular.txt"))
    assert org.clubId == 1111111 and org.longitude == "72.5714° E"
    group = org.groups[0]
    assert group.groupId == 221333 and group.sportId == 32 and not group.isAllidrett
    assert [(b.branchId, b.sportId) for b in group.branches] == [(221333, 132), (211424, 129)]  # "sportId "


@pytest.mark.parametrize("name", ["nif/org_structure_corporate.txt", "nif/org_structure_corporate_overview.json"])
def test_corporate_org_structure_examples(name: str) -> None:
    org = OrgStructure.model_validate(load_event(name))
    assert org.clubId == 16235 and org.longitude is None and org.latitude is None
    assert org.groups[0].branches == [] and org.groups[0].sportId == 204
    assert not org.groups[0].isAllidrett  # no branches, but it has a sport


def test_allidrett_group_has_no_sport_and_no_branches() -> None:
    org = OrgStructure.model_validate({"clubId": 1, "groups": [{"groupId": "5", "sportId": None, "branches": None}]})
    assert org.groups[0].isAllidrett


def test_sports_example() -> None:
    sports = [Sport.model_validate(s) for s in load_event("nif/sports_response.txt")]
    assert [(s.sportId, s.sportName) for s in sports] == [(32, "Ski"), (17, "Friidrett")]
    assert [c.sportId for c in sports[1].sports] == [220, 434]
    assert sports[1].sports[0].sportName == "Friidrett på bane"


def test_countries_example() -> None:
    countries = [Country.model_validate(c) for c in load_event("nif/countries_response.txt")]
    assert [(c.countryId, c.isoAlpha2) for c in countries] == [(1500159, "PE"), (1500125, "MC"), (1500121, "LU")]


def test_token_example() -> None:
    token = TokenResponse.model_validate(load_event("nif/token_response.txt")).token
    assert " " not in token and "\n" not in token
    head = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert head == {"alg": "HS256", "typ": "JWT"}
    # The document elides part of the payload, so only the tail's claims are checkable.
    assert jwt_claims(token) is None or "exp" in jwt_claims(token)
    tail = token.split(".")[1].split("LTQz")[1]
    decoded = base64.b64decode("LTQz" + tail + "=" * (-len("LTQz" + tail) % 4), altchars=b"-_")
    assert b'"exp":1566978504' in decoded and b'"iat":1566974904' in decoded  # 1 hour


def test_unicode_digit_ids_are_refused_not_crashing() -> None:
    from shared.nif.models import _nif_id

    with pytest.raises(ValueError):
        _nif_id("²")
    assert _nif_id("19430") == 19430
