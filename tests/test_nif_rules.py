"""Unit tests: one per NIF membership rule (shared/nif/rules.py), clock injected."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.nif import rules
from shared.nif.models import MembershipRequest

TODAY = date(2026, 3, 10)


def base() -> dict[str, Any]:
    """A valid request without personId (new Norwegian person, club + one branch)."""
    return {
        "startDate": "2026-03-10",
        "isClubLevel": True,
        "person": {
            "firstName": "Ola",
            "lastName": "Dunk",
            "birthDate": "1980-07-05",
            "postCode": "0010",
            "email": "ola.dunk@example.com",
            "mobilePhone": "85569745",
            "countryCode": "+47",
            "genderId": 1,
            "countryId": 1500152,
            "nationalityId": 1500152,
            "addressLine1": "Blålyngveien 89",
            "city": "Oslo",
        },
        "sports": [{"branchId": 827527, "sportId": 220, "startDate": "2026-03-10", "endDate": "2026-12-31"}],
    }


def check(data: dict[str, Any], today: date = TODAY, **kw: Any) -> list[tuple[int, str]]:
    req = MembershipRequest.model_validate(data)
    return [(v.code, v.path) for v in rules.validate_membership(req, today=today, **kw)]


def with_(path: str, value: Any, data: dict | None = None) -> dict[str, Any]:
    data = copy.deepcopy(data or base())
    node: Any = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if value is _DROP:
        node.pop(last, None)
    else:
        node[int(last) if isinstance(node, list) else last] = value
    return data


_DROP = object()


def test_base_request_is_valid() -> None:
    assert check(base()) == []


@pytest.mark.parametrize("field", ["firstName", "lastName", "birthDate", "postCode", "nationalityId", "genderId"])
def test_1001_person_fields_required_without_person_id(field: str) -> None:
    assert check(with_(f"person.{field}", _DROP)) == [(1001, f"person.{field}")]


def test_1001_empty_string_counts_as_missing() -> None:
    assert check(with_("person.firstName", "  ")) == [(1001, "person.firstName")]


def test_1001_person_object_required() -> None:
    assert (1001, "person") in check(with_("person", _DROP))


def test_1001_country_id_required_for_foreigners_only() -> None:
    foreign = with_("person.nationalityId", 1500159)
    assert check(with_("person.countryId", _DROP, foreign)) == [(1001, "person.countryId")]
    assert check(with_("person.countryId", _DROP)) == []  # Norwegian: optional


def test_person_id_makes_other_person_fields_ignored() -> None:
    data = {"startDate": "2026-03-10", "isClubLevel": True, "person": {"personId": 8756934, "firstName": "x" * 80}}
    assert check(data) == []


@pytest.mark.parametrize("value", ["", 0, "0", None])
def test_person_id_empty_or_zero_means_absent(value: Any) -> None:
    assert check(with_("person.personId", value)) == []
    assert (1001, "person.firstName") in check(with_("person.firstName", _DROP, with_("person.personId", value)))


def test_1002_invalid_person_id_type_is_a_model_error() -> None:
    with pytest.raises(ValidationError) as exc:
        MembershipRequest.model_validate(with_("person.personId", "abc"))
    assert exc.value.errors()[0]["loc"] == ("person", "personId")


def test_1010_email_and_mobile_both_required() -> None:
    assert check(with_("person.email", _DROP)) == [(1010, "person.email")]
    assert check(with_("person.mobilePhone", _DROP)) == [(1010, "person.mobilePhone")]


def test_1010_country_code_required_with_mobile() -> None:
    assert check(with_("person.countryCode", _DROP)) == [(1010, "person.countryCode")]


@pytest.mark.parametrize("gender", [1, 2, 5])
def test_gender_ids_accepted(gender: int) -> None:
    assert check(with_("person.genderId", gender)) == []


@pytest.mark.parametrize("gender", [0, 3, 4, 6, 99])
def test_1039_gender_id_must_be_1_2_or_5(gender: int) -> None:
    assert check(with_("person.genderId", gender)) == [(1039, "person.genderId")]


@pytest.mark.parametrize(
    "field,ok,bad",
    [
        ("firstName", "a" * 50, "a" * 51),
        ("lastName", "a" * 50, "a" * 51),
        ("postCode", "1" * 50, "1" * 51),
        ("addressLine1", "a" * 50, "a" * 51),
        ("addressLine2", "a" * 50, "a" * 51),
        ("city", "a" * 50, "a" * 51),
        ("email", "a@bc.def", "a@bc.de"),  # 8 chars min
        ("email", "a" * 92 + "@abcd.no", "a" * 93 + "@abcd.no"),  # 100 max
        ("mobilePhone", "12345678", "1234567"),
        ("mobilePhone", "123456789012", "1234567890123"),
        ("countryCode", "+4", "+"),
        ("countryCode", "+12345", "+123456"),
        ("privatePhone", "12345678", "1234567"),
        ("privatePhone", "1" * 18, "1" * 19),
        ("workPhone", "12345678", "1" * 19),
    ],
)
def test_1039_length_limits(field: str, ok: str, bad: str) -> None:
    assert check(with_(f"person.{field}", ok)) == []
    assert check(with_(f"person.{field}", bad)) == [(1039, f"person.{field}")]


def test_1039_email_must_look_like_one() -> None:
    assert check(with_("person.email", "not-an-email")) == [(1039, "person.email")]


def test_1039_birth_date_not_in_future() -> None:
    assert check(with_("person.birthDate", "2026-03-11")) == [(1039, "person.birthDate")]


def test_1036_club_start_date_required_for_club_level() -> None:
    assert check(with_("startDate", _DROP)) == [(1036, "startDate")]


def test_club_start_date_not_required_for_branch_only() -> None:
    data = with_("isClubLevel", False, with_("startDate", _DROP))
    assert check(data) == []


def test_1036_branch_start_date_required() -> None:
    assert check(with_("sports.0.startDate", _DROP)) == [(1036, "sports[0].startDate")]


@pytest.mark.parametrize("start", ["2025-12-31", "2027-01-01"])
def test_1007_club_start_date_in_current_year(start: str) -> None:
    data = with_("sports.0.startDate", "2026-12-31", with_("startDate", start))
    assert (1007, "startDate") in check(data)


def test_1007_branch_start_date_in_current_year() -> None:
    assert check(with_("sports.0.startDate", "2025-06-01")) == [
        (1007, "sports[0].startDate"),
        (1038, "sports[0].startDate"),
    ]


def test_current_year_boundaries_accepted() -> None:
    data = with_("startDate", "2026-01-01", with_("sports.0.startDate", "2026-12-30"))
    assert check(data) == []


def test_current_year_is_evaluated_in_local_timezone() -> None:
    # 23:30 UTC on New Year's Eve is already 1 January in Oslo.
    now = datetime(2025, 12, 31, 23, 30, tzinfo=UTC)
    assert rules.local_today(now, "Europe/Oslo") == date(2026, 1, 1)
    assert rules.local_today(now, "UTC") == date(2025, 12, 31)


def test_seed_example_date_valid_in_2019_only() -> None:
    data = with_("startDate", "2019-08-27", with_("sports.0.startDate", "2019-08-27"))
    data = with_("sports.0.endDate", "2019-09-26", data)
    assert check(data, today=date(2019, 8, 27)) == []
    assert (1007, "startDate") in check(data, today=TODAY)


def test_1038_branch_start_before_club_start() -> None:
    data = with_("startDate", "2026-03-10", with_("sports.0.startDate", "2026-03-09"))
    assert check(data) == [(1038, "sports[0].startDate")]


def test_branch_start_equal_to_club_start_is_accepted() -> None:
    # The seed says "greater than", but its own example uses equal dates.
    assert check(with_("sports.0.startDate", "2026-03-10")) == []


def test_1039_end_date_must_be_after_today() -> None:
    assert check(with_("sports.0.endDate", "2026-03-10")) == [(1039, "sports[0].endDate")]
    assert check(with_("sports.0.endDate", "2026-03-11")) == []


def test_1039_end_date_not_before_start() -> None:
    data = with_("sports.0.startDate", "2026-06-01", with_("sports.0.endDate", "2026-05-01"))
    assert check(data) == [(1039, "sports[0].endDate")]


def test_1013_branch_only_without_branches() -> None:
    data = {**base(), "isClubLevel": False, "sports": []}
    assert check(data) == [(1013, "sports")]


@pytest.mark.parametrize("field", ["branchId", "sportId"])
def test_1013_branch_needs_branch_and_sport(field: str) -> None:
    assert check(with_(f"sports.0.{field}", _DROP)) == [(1013, f"sports[0].{field}")]


def test_1013_group_needs_group_id() -> None:
    data = {**base(), "groups": [{"sportId": 0, "startDate": "2026-03-10"}]}
    assert check(data) == [(1013, "groups[0].groupId")]


def test_1006_branch_not_in_club_when_structure_known() -> None:
    assert check(base(), branch_ids={1}) == [(1006, "sports[0].branchId")]
    assert check(base(), branch_ids={827527}) == []


def test_1042_group_not_allidrett_group_of_club() -> None:
    data = {**base(), "groups": [{"groupId": 544901, "sportId": 0, "startDate": "2026-03-10"}]}
    assert check(data, allidrett_group_ids=set()) == [(1042, "groups[0].groupId")]
    assert check(data, allidrett_group_ids={544901}) == []


def test_group_dates_follow_branch_rules() -> None:
    data = {**base(), "groups": [{"groupId": 5, "startDate": "2025-03-10", "endDate": "2026-01-01"}]}
    assert set(check(data)) == {
        (1007, "groups[0].startDate"),
        (1038, "groups[0].startDate"),
        (1039, "groups[0].endDate"),
    }


def test_precedence_picks_first_code() -> None:
    data = with_("person.email", _DROP, with_("person.firstName", _DROP, with_("startDate", "2020-01-01")))
    req = MembershipRequest.model_validate(data)
    violations = rules.validate_membership(req, today=TODAY)
    assert rules.primary_code(violations) == 1001
    assert [v.code for v in violations] == sorted((v.code for v in violations), key=rules.PRECEDENCE.index)


def test_pascal_case_and_padded_keys_are_accepted() -> None:
    data = {"StartDate": "2026-03-10", "IsClubLevel": True, "Person": {"PersonId": 8756934}, "sports ": []}
    assert check(data) == []


@pytest.mark.parametrize("value", ["2026-3-10", "10.03.2026", 20260310, "2026-02-30", True])
def test_dates_must_be_iso(value: Any) -> None:
    with pytest.raises(ValidationError):
        MembershipRequest.model_validate(with_("startDate", value))


@pytest.mark.parametrize("value", [True, 1.5, 2**31, -1, "1e3", [1]])
def test_ids_must_be_int32(value: Any) -> None:
    with pytest.raises(ValidationError):
        MembershipRequest.model_validate(with_("sports.0.branchId", value))
