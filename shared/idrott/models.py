"""Intake models (pydantic v2) for IdrottOnline persons and activities.

JSON uses camelCase (``externalId``, ``firstName`` ...); Python uses snake_case; both are
accepted on input (``populate_by_name``). Unknown fields are refused (a typo must not silently
drop data). Every error carries the field path pydantic gives (``personnummer``, ``gender``,
``participants.2.personId``); messages never contain a personnummer.

Validation context (optional): ``Person.model_validate(data, context={"today": date(...)})``
fixes "today" for the century of 10-digit personnummer (tests).

**What intake accepts is exportable.** Every id and text rule here is at least as strict as our
XSD (``schema/import_v1.xsd``) and the XML writer: ids match the whole string (``re.fullmatch``;
``$`` would also match before a final newline), texts are one line without XML-illegal characters
(the XSD's ``\\S(.*\\S)?`` refuses a line break), date-times lie in 1900–2100 (UTC conversion never
overflows), a person has at most :data:`MAX_SPORTS` sports and an activity at most
:data:`MAX_PARTICIPANTS` participants, so every accepted person fits in one file of the smallest
allowed ``IDROTTONLINE_MAX_FILE_BYTES``. Whether an activity with its participants fits in the
configured file size depends on that setting: :func:`shared.idrott.sizes.activity_size_bound`
(checked by the intake handler). Bulk validation is :mod:`shared.idrott.bulk`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
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
    "MAX_PARTICIPANTS",
    "MAX_SPORTS",
    "SAFE_ID_PATTERN",
    "Activity",
    "ClubExportInfo",
    "Contact",
    "Participant",
    "Person",
    "SportMembership",
    "is_safe_id",
]

#: Sports per person. A bound makes every person fit in one import file: the largest possible
#: Person element (every text at its limit, worst-case characters, this many sports) stays below
#: the smallest allowed ``IDROTTONLINE_MAX_FILE_BYTES`` (10 000; a test checks it).
MAX_SPORTS = 30
#: Participants per activity, whatever the file size: the stored record must fit in one Table
#: Storage entity (1 MiB). The file size usually allows fewer: :func:`activity_size_bound`.
MAX_PARTICIPANTS = 2000

# Characters XML 1.0 cannot carry (lxml refuses them): control characters except TAB/LF/CR,
# surrogates, U+FFFE/U+FFFF.
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(v: str) -> str:
    if _XML_BAD.search(v):
        raise PydanticCustomError("xml_char", "contains a control character that XML cannot carry")
    return v


def _one_line(v: str) -> str:
    """Texts of the import file are one line: the XSD (``\\S(.*\\S)?``) refuses CR and LF inside."""
    _xml_safe(v)
    if "\n" in v or "\r" in v:
        raise PydanticCustomError(
            "line_break", "must be a single line: the import file cannot carry a line break here (use a space)"
        )
    return v


#: Stable external id: 1–64 chars of A–Z a–z 0–9 . _ : - (starts with a letter or digit).
#: Unanchored: always matched against the whole string (``re.fullmatch``), never with ``$``,
#: which also matches before a final newline.
SAFE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}"
_SAFE_ID = re.compile(SAFE_ID_PATTERN)


def is_safe_id(v: object) -> bool:
    """True for a valid external id / activity id (the whole string must match)."""
    return isinstance(v, str) and _SAFE_ID.fullmatch(v) is not None


def _safe_id(v: str) -> str:
    if not is_safe_id(v):
        raise PydanticCustomError(
            "external_id",
            "must be 1–64 characters of A–Z, a–z, 0–9, '.', '_', ':', '-' starting with a letter or digit",
        )
    return v


_DT_MIN = datetime(1900, 1, 1, tzinfo=UTC)
_DT_MAX = datetime(2101, 1, 1, tzinfo=UTC)


def _stored(info: ValidationInfo) -> bool:
    """Validating a record read back from storage (``context={"stored": True}``): limits added
    after it was written must not make a record that exports unreadable."""
    return isinstance(info.context, dict) and bool(info.context.get("stored"))


def _bounded(v: datetime, info: ValidationInfo) -> datetime:
    """1900–2100 in UTC: the export converts to UTC, which overflows near year 1 or 9999."""
    try:
        utc = v.astimezone(UTC)
        ok = _stored(info) or _DT_MIN <= utc < _DT_MAX
    except (OverflowError, ValueError):
        ok = False
    if not ok:
        raise PydanticCustomError("datetime_range", "must be between 1900-01-01 and 2100-12-31 (UTC)")
    return v


# Patterns given to pydantic (``StringConstraints``) run on pydantic-core's Rust regex engine,
# where ``$`` matches only at the very end (tests/test_idrott_intake_hardening.py checks each).
ExternalId = Annotated[str, AfterValidator(_safe_id)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(_one_line)]
LongText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), AfterValidator(_one_line)
]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
SportId = Annotated[int, Field(ge=1, le=2_147_483_647)]
When = Annotated[AwareDatetime, AfterValidator(_bounded)]


def _today(info: ValidationInfo) -> date | None:
    ctx = info.context
    return ctx.get("today") if isinstance(ctx, dict) else None


class _Model(BaseModel):
    # cache_strings="keys": pydantic-core's default also caches the *values* it makes (stripped
    # text), up to 16 384 per process: a big club's export filled it with names and e-mail addresses
    # (~1 MiB that a small club's did not); field names are all it is worth caching here
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, cache_strings="keys"
    )


class Contact(_Model):
    email: (
        Annotated[
            str,
            StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
            AfterValidator(_xml_safe),
        ]
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
    """One member as intake accepts it (the API's JSON, validated; with the ``replacesExternalId``
    instruction, never stored). ``personnummer`` is normalised to ``YYYYMMDD-XXXX``; without it the
    person is foreign and needs ``birthDate`` and ``nationality`` (not ``SE``). Stored, it is a
    ``shared.idrott.rows.StoredPerson``; written, a ``shared.idrott.xmlrecords.PersonRecord``."""

    external_id: ExternalId
    personnummer: str | None = Field(None, repr=False)  # personal data: kept out of repr()
    birth_date: date | None = Field(None, validate_default=True)
    first_name: Text
    last_name: Text
    gender: Literal["male", "female"]
    nationality: CountryCode | None = Field(None, validate_default=True)
    contact: Contact | None = None
    member_since: date | None = None
    sports: Annotated[list[SportMembership], Field(min_length=1, json_schema_extra={"maxItems": MAX_SPORTS})]
    created_at: When | None = None
    changed_at: When | None = None
    #: Re-key: this record is the person stored so far under that external id (same
    #: personnummer). The old id stops being a person of the club (it becomes an alias: activities
    #: naming it are exported with the new id). An instruction, not person data: never stored.
    replaces_external_id: ExternalId | None = Field(
        None,
        description="Move the person stored under this externalId (same personnummer) to this record's "
        "externalId, atomically: the old id stops being a person of the club. Without it, a second "
        "externalId for a personnummer already registered in the club is refused with 409.",
    )

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
    def _sports_unique(cls, v: list[SportMembership], info: ValidationInfo) -> list[SportMembership]:
        ids = [s.sport_id for s in v]
        if len(ids) != len(set(ids)):
            raise PydanticCustomError("duplicate", "each sportId may appear only once")
        if len(v) > MAX_SPORTS and not _stored(info):
            raise PydanticCustomError(
                "too_long",
                "at most {n} sports per person (so that every person fits in one import file)",
                {"n": MAX_SPORTS},
            )
        return v

    @field_validator("replaces_external_id")
    @classmethod
    def _replaces_other(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and v == info.data.get("external_id"):
            raise PydanticCustomError("same_id", "replacesExternalId must differ from externalId")
        return v

    def stored_data(self) -> dict[str, Any]:
        """The JSON kept in storage (and hashed): the person, without request instructions."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"replaces_external_id"})


class Participant(_Model):
    person_id: ExternalId  # = Person.externalId
    leader: bool = False
    disabled: bool = False  # funktionsnedsättning: lifts the LOK age ceiling


class Activity(_Model):
    activity_id: ExternalId
    type_id: Annotated[int, Field(ge=1, le=9)]
    name: Text
    description: LongText | None = None
    start_time: When
    end_time: When
    sport_id: SportId
    venue_name: Text
    participants: Annotated[list[Participant], Field(min_length=1, json_schema_extra={"maxItems": MAX_PARTICIPANTS})]

    @field_validator("end_time")
    @classmethod
    def _end_after_start(cls, v: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start_time")
        if start is not None and v <= start:
            raise PydanticCustomError("order", "endTime must be after startTime")
        return v

    @field_validator("participants")
    @classmethod
    def _unique_participants(cls, v: list[Participant], info: ValidationInfo) -> list[Participant]:
        seen: set[str] = set()
        for p in v:
            if p.person_id in seen:
                raise PydanticCustomError("duplicate", "personId {pid} appears twice", {"pid": p.person_id})
            seen.add(p.person_id)
        if len(v) > MAX_PARTICIPANTS and not _stored(info):
            raise PydanticCustomError(
                "too_long",
                "at most {n} participants per activity (a stored record must fit one Table Storage entity)",
                {"n": MAX_PARTICIPANTS},
            )
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
