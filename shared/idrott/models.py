"""Intake models (pydantic v2) for IdrottOnline persons and activities.

JSON uses camelCase (``externalId``, ``firstName`` ...); Python uses snake_case; both are
accepted on input (``populate_by_name``). Unknown fields are refused (a typo must not silently
drop data). Every error carries the field path pydantic gives (``personnummer``, ``gender``,
``participants.2.personId``); messages never contain a personnummer.

Validation context (optional): ``Person.model_validate(data, context={"today": date(...)})``
fixes "today" for the century of 10-digit personnummer (tests).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from shared.idrott.personnummer import (
    InvalidPersonnummer,
    birth_date_from_personnummer,
    gender_from_personnummer,
    luhn_valid,
    normalize_personnummer,
)

__all__ = [
    "Activity",
    "BulkError",
    "ClubExportInfo",
    "Contact",
    "Participant",
    "Person",
    "SportMembership",
    "check_participants_resolve",
    "validate_bulk",
]

# Characters XML 1.0 cannot carry (lxml refuses them): control characters except TAB/LF/CR,
# surrogates, U+FFFE/U+FFFF.
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(v: str) -> str:
    if _XML_BAD.search(v):
        raise PydanticCustomError("xml_char", "contains a control character that XML cannot carry")
    return v


SAFE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
#: Stable external id: 1–64 chars of A–Z a–z 0–9 . _ : - (starts with a letter or digit).
_SAFE_ID = re.compile(SAFE_ID_PATTERN)


def _safe_id(v: str) -> str:
    if not _SAFE_ID.match(v):
        raise PydanticCustomError(
            "external_id",
            "must be 1–64 characters of A–Z, a–z, 0–9, '.', '_', ':', '-' starting with a letter or digit",
        )
    return v


ExternalId = Annotated[str, AfterValidator(_safe_id)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(_xml_safe)]
LongText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), AfterValidator(_xml_safe)
]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
SportId = Annotated[int, Field(ge=1, le=2_147_483_647)]


def _today(info: ValidationInfo) -> date | None:
    ctx = info.context
    return ctx.get("today") if isinstance(ctx, dict) else None


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Contact(_Model):
    email: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
        | None
    ) = None
    mobile_phone: (
        Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 ()-]{4,19}$")] | None
    ) = None
    street: Text | None = None
    co_address: Text | None = None
    postal_code: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9 -]{2,10}$")] | None = (
        None
    )
    city: Text | None = None
    country_code: CountryCode | None = None


class SportMembership(_Model):
    sport_id: SportId
    #: "aktiv i idrott" for that sport; a member who left is exported with ``false``.
    is_active: bool = True


class Person(_Model):
    """One member. ``personnummer`` is normalised to ``YYYYMMDD-XXXX``; without it the person is
    foreign and needs ``birthDate`` and ``nationality`` (not ``SE``)."""

    external_id: ExternalId
    personnummer: str | None = Field(None, repr=False)  # personal data: kept out of repr()
    birth_date: date | None = Field(None, validate_default=True)
    first_name: Text
    last_name: Text
    gender: Literal["male", "female"]
    nationality: CountryCode | None = Field(None, validate_default=True)
    contact: Contact | None = None
    member_since: date | None = None
    sports: Annotated[list[SportMembership], Field(min_length=1)]
    created_at: AwareDatetime | None = None
    changed_at: AwareDatetime | None = None

    @field_validator("personnummer", mode="before")
    @classmethod
    def _pnr(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return None
        if not isinstance(v, str):
            raise PydanticCustomError("personnummer", "personnummer must be a string")
        try:
            return normalize_personnummer(v, today=_today(info))
        except InvalidPersonnummer as exc:
            raise PydanticCustomError("personnummer", "{reason}", {"reason": exc.reason}) from None

    @field_validator("birth_date")
    @classmethod
    def _birth_date(cls, v: date | None, info: ValidationInfo) -> date | None:
        if "personnummer" not in info.data:  # personnummer itself failed: reported there
            return v
        pnr = info.data["personnummer"]
        if pnr is None:
            if v is None:
                raise PydanticCustomError("required", "birthDate is required when there is no personnummer")
            return v
        derived = birth_date_from_personnummer(pnr)
        if v is None:
            return derived
        if v != derived:
            raise PydanticCustomError("mismatch", "birthDate does not match the personnummer's date")
        return v

    @field_validator("gender")
    @classmethod
    def _gender(cls, v: str, info: ValidationInfo) -> str:
        pnr = info.data.get("personnummer")
        if pnr and gender_from_personnummer(pnr) != v:
            raise PydanticCustomError(
                "mismatch",
                "gender does not agree with the personnummer's gender digit (9th of 10: odd male, even female)",
            )
        return v

    @field_validator("nationality")
    @classmethod
    def _nationality(cls, v: str | None, info: ValidationInfo) -> str | None:
        if "personnummer" not in info.data:
            return v
        if info.data["personnummer"] is None:
            if v is None:
                raise PydanticCustomError(
                    "required", "nationality (ISO 3166-1 alpha-2) is required when there is no personnummer"
                )
            if v == "SE":
                raise PydanticCustomError(
                    "foreign", "a person without personnummer cannot have nationality SE: give the personnummer"
                )
        return v

    @field_validator("sports")
    @classmethod
    def _sports_unique(cls, v: list[SportMembership]) -> list[SportMembership]:
        ids = [s.sport_id for s in v]
        if len(ids) != len(set(ids)):
            raise PydanticCustomError("duplicate", "each sportId may appear only once")
        return v


class Participant(_Model):
    person_id: ExternalId  # = Person.externalId
    leader: bool = False
    disabled: bool = False  # funktionsnedsättning: lifts the LOK age ceiling


class Activity(_Model):
    activity_id: ExternalId
    type_id: Annotated[int, Field(ge=1, le=9)]
    name: Text
    description: LongText | None = None
    start_time: AwareDatetime
    end_time: AwareDatetime
    sport_id: SportId
    venue_name: Text
    participants: Annotated[list[Participant], Field(min_length=1)]

    @field_validator("end_time")
    @classmethod
    def _end_after_start(cls, v: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start_time")
        if start is not None and v <= start:
            raise PydanticCustomError("order", "endTime must be after startTime")
        return v

    @field_validator("participants")
    @classmethod
    def _unique_participants(cls, v: list[Participant]) -> list[Participant]:
        seen: set[str] = set()
        for p in v:
            if p.person_id in seen:
                raise PydanticCustomError("duplicate", "personId {pid} appears twice", {"pid": p.person_id})
            seen.add(p.person_id)
        return v


class ClubExportInfo(_Model):
    """What the XML needs to know about a club (from the club registry)."""

    club_id: ExternalId  # our id; also ExternalOrganisationIdentification in the XML
    application_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    organisation_guid: Annotated[
        str, StringConstraints(pattern=r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
    ]
    organisation_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}-[0-9]{4}$")]
    rf_association_number: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,20}$")]
    export_contacts: bool = False

    @field_validator("organisation_number")
    @classmethod
    def _orgnr_luhn(cls, v: str) -> str:
        if not luhn_valid(v.replace("-", "")):
            raise PydanticCustomError("luhn", "organisationsnummer: the check digit (Luhn) does not match")
        return v


# --- helpers for bulk intake ---------------------------------------------------------------

BulkError = tuple[int, str, str]  # (index in the request, field path, message)
M = TypeVar("M", bound=BaseModel)


def _loc(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc)


def validate_bulk[M: BaseModel](
    model: type[M], items: Sequence[Any], *, today: date | None = None
) -> tuple[list[tuple[int, M]], list[BulkError]]:
    """Validate each item; return ``(valid [(index, model)], errors [(index, path, message)])``.

    Paths use the JSON (camelCase) names, dotted, list positions as numbers
    (``sports.0.sportId``); an error on the record itself has path ``""``.
    """
    ok: list[tuple[int, M]] = []
    errors: list[BulkError] = []
    ctx = {"today": today} if today else None
    for i, item in enumerate(items):
        try:
            ok.append((i, model.model_validate(item, context=ctx)))
        except ValidationError as exc:
            for e in exc.errors(include_url=False, include_input=False):
                errors.append((i, _loc(_camel_loc(e["loc"])), e["msg"]))
    return ok, errors


def _camel_loc(loc: Sequence[Any]) -> list[Any]:
    return [to_camel(p) if isinstance(p, str) else p for p in loc]


def check_participants_resolve(
    activities: Iterable[Activity], known_person_ids: Iterable[str] | set[str]
) -> list[BulkError]:
    """Participants whose ``personId`` is not a known person of the club:
    ``[(activity index, "participants.<i>.personId", message)]``."""
    known = known_person_ids if isinstance(known_person_ids, (set, frozenset)) else set(known_person_ids)
    out: list[BulkError] = []
    for ai, act in enumerate(activities):
        for pi, p in enumerate(act.participants):
            if p.person_id not in known:
                out.append((ai, f"participants.{pi}.personId", f"personId {p.person_id} is not a person of this club"))
    return out
