"""The records the XML writer takes, and the XML of each (file model v1): one record, one element.

Every element name comes from :mod:`shared.idrott.elements`. What a record becomes:

- :func:`person_element` / :func:`activity_element`: one ``Person`` / ``Activity`` element (lxml),
  built whole before anything is written, so a text lxml refuses (``ValueError``) never leaves
  half an element behind;
- :func:`header_bytes`: a file's declaration and header, open ``Import`` element;
- :func:`format_datetime`: UTC ``yyyy-MM-ddTHH:mm:ss`` without zone; :func:`file_name`: a file's name.

The writer duck-types its inputs: the pydantic models of :mod:`shared.idrott.models` work as well
as these light records (same attribute names). Records use less memory and are what the adapter
builds from stored rows (``shared.idrott.rows``: the three shapes of a person). Splitting a run
into files is :mod:`shared.idrott.xmlwriter`. lxml is imported by the caller and passed in
(``etree``), or inside the function (cold start).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from shared.idrott import elements

if TYPE_CHECKING:  # pragma: no cover
    from shared.idrott.models import Activity, ClubExportInfo, Person

__all__ = [
    "ActivityRecord",
    "ContactRecord",
    "ParticipantRecord",
    "PersonRecord",
    "RunHeader",
    "SportRecord",
    "activity_element",
    "file_name",
    "format_datetime",
    "header_bytes",
    "person_element",
]

_NAME_TAG = re.compile(r"[0-9a-z]{1,16}")


# --- records ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SportRecord:
    sport_id: int
    is_active: bool = True


@dataclass(frozen=True, slots=True)
class ContactRecord:
    email: str | None = None
    mobile_phone: str | None = None
    street: str | None = None
    co_address: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country_code: str | None = None


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """A person as the writer and the LOK prognosis read it: no export state, no intake
    instruction; a member who left already has every sport ``is_active=False``."""

    external_id: str
    first_name: str
    last_name: str
    gender: str  # "male" | "female"
    birth_date: date
    sports: tuple[SportRecord, ...]
    personnummer: str | None = field(default=None, repr=False)  # normalised YYYYMMDD-XXXX
    nationality: str | None = None
    contact: ContactRecord | None = None
    member_since: date | None = None
    created_at: datetime | None = None
    changed_at: datetime | None = None

    @classmethod
    def from_model(cls, p: Person, *, left: bool = False) -> PersonRecord:
        """From a validated :class:`Person`; ``left=True`` (member left the club) exports every
        sport with ``IsActive=false``."""
        c = p.contact
        return cls(
            external_id=p.external_id,
            first_name=p.first_name,
            last_name=p.last_name,
            gender=p.gender,
            birth_date=p.birth_date,  # type: ignore[arg-type]  # always set after validation
            sports=tuple(SportRecord(s.sport_id, s.is_active and not left) for s in p.sports),
            personnummer=p.personnummer,
            nationality=p.nationality,
            contact=None if c is None else ContactRecord(**c.model_dump()),
            member_since=p.member_since,
            created_at=p.created_at,
            changed_at=p.changed_at,
        )


@dataclass(frozen=True, slots=True)
class ParticipantRecord:
    person_id: str
    leader: bool = False
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    activity_id: str
    type_id: int | None = None
    name: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    sport_id: int | None = None
    venue_name: str | None = None
    participants: tuple[ParticipantRecord, ...] = ()
    description: str | None = None
    deleted: bool = False  # exported as OptionType=Delete with ActivityId + OrganisationNumber only

    @classmethod
    def delete(cls, activity_id: str) -> ActivityRecord:
        return cls(activity_id=activity_id, deleted=True)

    @classmethod
    def from_model(cls, a: Activity) -> ActivityRecord:
        return cls(
            activity_id=a.activity_id,
            type_id=a.type_id,
            name=a.name,
            description=a.description,
            start_time=a.start_time,
            end_time=a.end_time,
            sport_id=a.sport_id,
            venue_name=a.venue_name,
            participants=tuple(ParticipantRecord(p.person_id, p.leader, p.disabled) for p in a.participants),
        )


@dataclass(frozen=True, slots=True)
class RunHeader:
    """Per-run values of the file header (same in every file of the run but the sequence)."""

    application_id: str
    organisation_guid: str
    organisation_number: str  # club organisationsnummer NNNNNN-NNNN
    rf_association_number: str  # RF föreningsnummer (file name only)
    club_id: str  # ExternalOrganisationIdentification
    batch_id: str
    created_at: datetime  # aware; the run's start
    export_contacts: bool = False
    #: Optional attempt tag in the file names (``[0-9a-z]{1,16}``): makes the names of one attempt
    #: differ from every other attempt's, even within the same second.
    name_tag: str | None = None

    @classmethod
    def for_club(
        cls,
        club: ClubExportInfo,
        *,
        created_at: datetime,
        batch_id: str | None = None,
        name_tag: str | None = None,
    ) -> RunHeader:
        """The header of a run for ``club``; ``created_at`` (aware: the run's start) is kept to the
        second."""
        return cls(
            application_id=club.application_id,
            organisation_guid=club.organisation_guid,
            organisation_number=club.organisation_number,
            rf_association_number=club.rf_association_number,
            club_id=club.club_id,
            batch_id=batch_id or str(uuid.uuid4()),
            created_at=created_at.replace(microsecond=0),
            export_contacts=club.export_contacts,
            name_tag=name_tag,
        )


# --- formatting and elements ----------------------------------------------------------------
def format_datetime(dt: datetime) -> str:
    """UTC ``yyyy-MM-ddTHH:mm:ss`` without zone designator; naive datetimes are refused."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("naive datetime: IdrottOnline times must be timezone-aware before conversion to UTC")
    return dt.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat()


def file_name(header: RunHeader, sequence: int, count: int) -> str:
    """``<ApplicationId>_<RF-föreningsnummer>_<yyyyMMddTHHmmssZ>[_<tag>]_<seq>of<count>.xml``
    (``_<tag>`` when the header has a ``name_tag``)."""
    ts = header.created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    tag = ""
    if header.name_tag is not None:
        if not _NAME_TAG.fullmatch(header.name_tag):
            raise ValueError("name_tag must be 1-16 of 0-9 a-z")
        tag = f"_{header.name_tag}"
    return f"{header.application_id}_{header.rf_association_number}_{ts}{tag}_{sequence}of{count}.xml"


def _b(v: bool) -> str:
    return elements.TRUE if v else elements.FALSE


def header_bytes(header: RunHeader, sequence: int, count: int) -> bytes:
    from lxml import etree

    root = etree.Element(elements.IMPORT, {elements.ATTR_VERSION: elements.FORMAT_VERSION})
    se = etree.SubElement
    se(root, elements.APPLICATION_ID).text = header.application_id
    se(root, elements.ORGANISATION_GUID).text = header.organisation_guid
    se(root, elements.ORGANISATION_IDENTITY_NUMBER).text = header.organisation_number
    se(root, elements.BATCH_ID).text = header.batch_id
    se(root, elements.FILE_SEQUENCE).text = str(sequence)
    se(root, elements.FILE_COUNT).text = str(count)
    se(root, elements.CREATED_AT).text = format_datetime(header.created_at)
    body = etree.tostring(root, encoding="UTF-8", xml_declaration=False)
    closing = f"</{elements.IMPORT}>".encode()
    assert body.endswith(closing)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body[: -len(closing)]


def person_element(p: Any, header: RunHeader, etree: Any) -> Any:
    se = etree.SubElement
    el = etree.Element(elements.PERSON)
    se(el, elements.EXTERNAL_IDENTIFICATION).text = p.external_id
    se(el, elements.OPTION_TYPE).text = elements.OPTION_UPDATE
    if p.created_at is not None:
        se(el, elements.CREATE_DATE).text = format_datetime(p.created_at)
    if p.changed_at is not None:
        se(el, elements.CHANGE_DATE).text = format_datetime(p.changed_at)
    if p.personnummer is not None:
        se(el, elements.PERSONAL_IDENTITY_NUMBER).text = p.personnummer
    se(el, elements.BIRTH_DATE).text = p.birth_date.isoformat()
    se(el, elements.FIRST_NAME).text = p.first_name
    se(el, elements.LAST_NAME).text = p.last_name
    se(el, elements.GENDER).text = p.gender
    if p.nationality is not None:
        se(el, elements.NATIONALITY).text = p.nationality
    c = p.contact
    if header.export_contacts and c is not None:
        values = (
            (elements.EMAIL, c.email),
            (elements.MOBILE_PHONE, c.mobile_phone),
            (elements.STREET, c.street),
            (elements.CO_ADDRESS, c.co_address),
            (elements.POSTAL_CODE, c.postal_code),
            (elements.CITY, c.city),
            (elements.COUNTRY_CODE, c.country_code),
        )
        if any(v is not None for _, v in values):
            ce = se(el, elements.CONTACT)
            for tag, v in values:
                if v is not None:
                    se(ce, tag).text = v
    orgs = se(el, elements.ORGANISATIONS)
    org = se(orgs, elements.ORGANISATION)
    se(org, elements.OPTION_TYPE).text = elements.OPTION_UPDATE
    se(org, elements.EXTERNAL_ORGANISATION_IDENTIFICATION).text = header.club_id
    se(org, elements.ORGANISATION_IDENTITY_NUMBER).text = header.organisation_number
    if p.member_since is not None:
        se(org, elements.MEMBER_SINCE).text = p.member_since.isoformat()
    sports = se(org, elements.SPORTS)
    for s in p.sports:
        sp = se(sports, elements.SPORT)
        se(sp, elements.OPTION_TYPE).text = elements.OPTION_UPDATE
        se(sp, elements.SPORT_ID).text = str(s.sport_id)
        se(sp, elements.IS_ACTIVE).text = _b(s.is_active)
    return el


def activity_element(a: Any, header: RunHeader, etree: Any) -> Any:
    se = etree.SubElement
    el = etree.Element(elements.ACTIVITY)
    se(el, elements.ACTIVITY_ID).text = a.activity_id
    if getattr(a, "deleted", False):
        se(el, elements.OPTION_TYPE).text = elements.OPTION_DELETE
        se(el, elements.ORGANISATION_NUMBER).text = header.organisation_number
        return el
    se(el, elements.OPTION_TYPE).text = elements.OPTION_INSERT
    se(el, elements.TYPE_ID).text = str(a.type_id)
    se(el, elements.NAME).text = a.name
    if a.description is not None:
        se(el, elements.DESCRIPTION).text = a.description
    se(el, elements.START_TIME).text = format_datetime(a.start_time)
    se(el, elements.END_TIME).text = format_datetime(a.end_time)
    se(el, elements.ORGANISATION_NUMBER).text = header.organisation_number
    se(el, elements.SPORT_ID).text = str(a.sport_id)
    se(se(el, elements.VENUE), elements.VENUE_NAME).text = a.venue_name
    parts = se(el, elements.PARTICIPANTS)
    for p in a.participants:
        pe = se(parts, elements.PARTICIPANT)
        se(pe, elements.PERSON_ID).text = p.person_id
        se(pe, elements.LEADER).text = _b(p.leader)
        se(pe, elements.DISABLED).text = _b(p.disabled)
        se(pe, elements.ATTENDANCE_STATUS).text = elements.ATTENDANCE_ATTENDANT
    return el
