"""NIF's POST Membership rules, checked locally with the code NIF would answer. Pure.

No I/O, no clock, no Azure SDK, no httpx: the caller passes ``today`` (a date in NIF's calendar,
see :func:`local_today`). Every rule of the seed document's request table and code list is here:

====  ========================================================================================
code  rule (seed text, with our reading)
====  ========================================================================================
1001  without ``personId``: firstName, lastName, birthDate, postCode, nationalityId, genderId
      required; countryId too unless the person is Norwegian (nationalityId 1500152); the
      ``person`` object itself is mandatory
1002  ``personId`` is not a positive integer (NIF: "Invalid Person Id")
1006  a branch id not in the club's org structure (only when the caller knows the structure)
1007  a start date outside the current year (club, branch and group start dates)
1010  without ``personId``: e-mail AND mobile required (since 14 Apr 2023), countryCode
      required with a mobile
1013  branch-only request without branches/groups; a branch without branchId/sportId, a
      group without groupId
1036  club-level request without ``startDate``; branch/group without ``startDate``
1038  branch/group start before the club start (seed: "greater than", but its own example
      uses equal dates, so equal is accepted)
1039  lengths and formats: first/last name, post code, address lines, city ≤ 50; e-mail 8–100
      and shaped like one; mobile 8–12; countryCode 2–6 (``+47``); private/work phone 8–18;
      genderId in {1, 2, 5}; birthDate not in the future; endDate after today and after its
      start date
1042  an Allidrett group that the club doesn't have (only when the caller knows the groups)
====  ========================================================================================

Codes 1036/1038/1039 for the date rules and 1039 for lengths are our choice where the seed names
a rule but no code ([I] in the reference). Violations are returned in a stable precedence order
(:data:`PRECEDENCE`); the first one's code is "the" NIF code of the request.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from shared.nif.models import NORWAY_COUNTRY_ID, MembershipRequest, PersonIn

__all__ = [
    "GENDER_IDS",
    "NIF_MESSAGES",
    "PRECEDENCE",
    "Violation",
    "local_today",
    "primary_code",
    "validate_membership",
]

GENDER_IDS = frozenset({1, 2, 5})

#: NIF's texts, quoted from the seed (typo in 1038 included).
NIF_MESSAGES: dict[int, str] = {
    1001: "Either PersonId or a combination of (FirstName, LastName, BirthDate, PostCode, NationalityId) must be supplied.",
    1002: "Invalid Person Id",
    1006: "Invalid Branch Id",
    1007: "Start date cannot be past/future year date.",
    1010: "Either Email or MobilePhone and CountryCode must be supplied.",
    1013: "Branch level membership information missing.",
    1018: "Invalid club Id.",
    1034: "Person not found.",
    1036: "Start date is required.",
    1038: "Branch start date must be grater then membership start date.",
    1039: "Invalid request parameters.",
    1042: "Group level membership for Club is not allowed.",
    3001: "Membership not found for specific period from date.",
}

#: Order in which codes win when a request breaks several rules (NIF's precedence is undocumented).
PRECEDENCE: tuple[int, ...] = (1001, 1002, 1010, 1013, 1036, 1007, 1038, 1006, 1042, 1039)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COUNTRY_CODE = re.compile(r"^\+?[0-9]{1,5}$")
_PHONE = re.compile(r"^\+?[0-9 ()-]+$")


@dataclass(frozen=True)
class Violation:
    code: int
    path: str
    message: str


def local_today(now: datetime, tz_name: str) -> date:
    """The calendar date of ``now`` in ``tz_name`` (NIF's "current year" is Norwegian time)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(ZoneInfo(tz_name)).date()


def primary_code(violations: Iterable[Violation]) -> int | None:
    codes = {v.code for v in violations}
    for code in PRECEDENCE:
        if code in codes:
            return code
    return min(codes) if codes else None


def validate_membership(
    req: MembershipRequest,
    *,
    today: date,
    branch_ids: Collection[int] | None = None,
    allidrett_group_ids: Collection[int] | None = None,
) -> list[Violation]:
    """All rule violations of ``req``, ordered by :data:`PRECEDENCE` then path.

    ``branch_ids`` / ``allidrett_group_ids``: the club's ids from its org structure, when known
    (the sandbox knows them; the wrapper leaves the check to NIF).
    """
    out: list[Violation] = []
    out += _person_rules(req.person, today)
    out += _club_rules(req, today)
    out += _branch_rules(req, today, branch_ids)
    out += _group_rules(req, today, allidrett_group_ids)
    rank = {code: i for i, code in enumerate(PRECEDENCE)}
    return sorted(out, key=lambda v: (rank.get(v.code, len(rank)), v.path))


# --- person -----------------------------------------------------------------------------------


def _person_rules(person: PersonIn | None, today: date) -> list[Violation]:
    if person is None:
        return [Violation(1001, "person", "person is required")]
    if person.personId is not None:
        if person.personId <= 0:
            return [Violation(1002, "person.personId", "must be a positive NIF person id")]
        return []  # NIF ignores every other person field when personId is given
    out: list[Violation] = []
    for name in ("firstName", "lastName", "birthDate", "postCode", "nationalityId", "genderId"):
        if getattr(person, name) is None:
            out.append(Violation(1001, f"person.{name}", "required when personId is not given"))
    if person.countryId is None and person.nationalityId not in (None, NORWAY_COUNTRY_ID):
        out.append(Violation(1001, "person.countryId", "required for a non-Norwegian person without personId"))
    if person.email is None:
        out.append(Violation(1010, "person.email", "e-mail is required"))
    if person.mobilePhone is None:
        out.append(Violation(1010, "person.mobilePhone", "mobile phone is required"))
    elif person.countryCode is None:
        out.append(Violation(1010, "person.countryCode", "required with a mobile phone (e.g. +47)"))
    out += _lengths(person)
    if person.genderId is not None and person.genderId not in GENDER_IDS:
        out.append(Violation(1039, "person.genderId", "must be 1 (male), 2 (female) or 5 (unknown)"))
    if person.birthDate is not None and person.birthDate > today:
        out.append(Violation(1039, "person.birthDate", "must not be in the future"))
    for name in ("countryId", "nationalityId"):
        if getattr(person, name) == 0:
            out.append(Violation(1039, f"person.{name}", "must be a countryId from GET Countries"))
    return out


#: field → (min, max) lengths from the seed's request table.
_LENGTHS: dict[str, tuple[int, int]] = {
    "firstName": (1, 50),
    "lastName": (1, 50),
    "postCode": (1, 50),
    "email": (8, 100),
    "mobilePhone": (8, 12),
    "countryCode": (2, 6),
    "addressLine1": (0, 50),
    "addressLine2": (0, 50),
    "city": (0, 50),
    "privatePhone": (8, 18),
    "workPhone": (8, 18),
}


def _lengths(person: PersonIn) -> list[Violation]:
    out = []
    formats = {
        "email": (_EMAIL, "must be an e-mail address"),
        "countryCode": (_COUNTRY_CODE, "must be a calling code such as +47"),
        "mobilePhone": (_PHONE, "must be a phone number (digits)"),
        "privatePhone": (_PHONE, "must be a phone number (digits)"),
        "workPhone": (_PHONE, "must be a phone number (digits)"),
    }
    for name, (lo, hi) in _LENGTHS.items():
        value = getattr(person, name)
        if value is None:
            continue
        if not lo <= len(value) <= hi:
            out.append(Violation(1039, f"person.{name}", f"length must be {lo}–{hi} characters"))
        elif name in formats and not formats[name][0].match(value):
            out.append(Violation(1039, f"person.{name}", formats[name][1]))
    return out


# --- club, branches, groups -------------------------------------------------------------------


def is_club_level(req: MembershipRequest) -> bool:
    """Club level when asked, or when nothing else is asked (no branches, no groups)."""
    if req.isClubLevel is not None:
        return req.isClubLevel
    return not req.sports and not req.groups


def _club_rules(req: MembershipRequest, today: date) -> list[Violation]:
    out: list[Violation] = []
    if is_club_level(req) and req.startDate is None:
        out.append(Violation(1036, "startDate", "required for a club-level membership"))
    if req.startDate is not None and req.startDate.year != today.year:
        out.append(Violation(1007, "startDate", f"must be in {today.year}"))
    if req.isClubLevel is False and not req.sports and not req.groups:
        out.append(Violation(1013, "sports", "a branch-level request needs at least one branch or group"))
    return out


def _dated_item_rules(
    path: str, start: date | None, end: date | None, club_start: date | None, today: date
) -> list[Violation]:
    out: list[Violation] = []
    if start is None:
        out.append(Violation(1036, f"{path}.startDate", "required"))
    else:
        if start.year != today.year:
            out.append(Violation(1007, f"{path}.startDate", f"must be in {today.year}"))
        if club_start is not None and start < club_start:
            out.append(Violation(1038, f"{path}.startDate", "must not be before the club-level start date"))
    if end is not None:
        if end <= today:
            out.append(Violation(1039, f"{path}.endDate", "must be after today"))
        elif start is not None and end < start:
            out.append(Violation(1039, f"{path}.endDate", "must not be before startDate"))
    return out


def _branch_rules(req: MembershipRequest, today: date, branch_ids: Collection[int] | None) -> list[Violation]:
    out: list[Violation] = []
    club_start = req.startDate if is_club_level(req) else None
    for i, sport in enumerate(req.sports):
        path = f"sports[{i}]"
        if not sport.branchId:
            out.append(Violation(1013, f"{path}.branchId", "required"))
        elif branch_ids is not None and sport.branchId not in branch_ids:
            out.append(Violation(1006, f"{path}.branchId", "not a branch of this club"))
        if not sport.sportId:
            out.append(Violation(1013, f"{path}.sportId", "required (an id from GET Sports)"))
        out += _dated_item_rules(path, sport.startDate, sport.endDate, club_start, today)
    return out


def _group_rules(req: MembershipRequest, today: date, allidrett_group_ids: Collection[int] | None) -> list[Violation]:
    out: list[Violation] = []
    club_start = req.startDate if is_club_level(req) else None
    for i, group in enumerate(req.groups):
        path = f"groups[{i}]"
        if not group.groupId:
            out.append(Violation(1013, f"{path}.groupId", "required (an Allidrett group from the org structure)"))
        elif allidrett_group_ids is not None and group.groupId not in allidrett_group_ids:
            out.append(Violation(1042, f"{path}.groupId", "not an Allidrett group of this club"))
        out += _dated_item_rules(path, group.startDate, group.endDate, club_start, today)
    return out
