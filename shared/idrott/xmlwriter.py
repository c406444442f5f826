"""Streaming writer of IdrottOnline import files (file model v1), split under a size limit.

Memory stays flat as the club grows: records are consumed one at a time from iterables and
written with ``lxml.etree.xmlfile`` into two spool files on disk (one for ``Person`` elements,
one for ``Activity`` elements). What is held in memory is the set of person ids already in the
*current* file (bounded by ``max_file_bytes``, not by the club) and the per-file offsets.

**Splitting and self-contained files.** Persons come first (the ``persons`` iterable: changed
persons, or everybody on a first run), then activities. Each activity is written together with
every participant not yet in the current file (looked up with ``person_lookup``), as one unit.
After each unit the spool files are flushed and the exact file size is known; if the unit made
the file exceed ``max_file_bytes`` it is rolled back (spool truncated), the file is closed and
the unit is written again into a fresh file. So every file is under the limit and every
``PersonId`` in a file resolves to a ``Person`` in that same file (a person can therefore appear
in several files of a run: harmless, IdrottOnline upserts by id).

**FileCount.** It is only known after the last unit. Because the content sits in the spool
files, the final files are assembled at the end: header (with the real ``FileSequence`` /
``FileCount``) + the file's byte range of each spool + closing tags, copied in 1 MiB chunks
into ``open_file(sequence)`` while the SHA-256 is computed. The size check during writing uses
a header with a 6-digit placeholder count, an upper bound, so the real file is never larger.

**A record that cannot be sent** (``on_skip``). Without ``on_skip`` the writer raises
:class:`RecordTooLarge` / :class:`UnresolvedParticipant` / the element's ``ValueError``. With it,
such a unit (a person, or an activity with the participants it needs) is rolled back, reported
as ``on_skip(kind, record_id, exc)`` and left out; the run goes on with the next unit, so one bad
record never holds back the others. :func:`single_record_documents` splits a written file into
one-record documents, so a caller can find which records an XSD refusal is about.

lxml is imported inside the functions (cold start).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

from shared.idrott import elements as E

if TYPE_CHECKING:  # pragma: no cover
    from lxml.etree import xmlfile
    from lxml.etree._serializer import _IncrementalFileWriter  # a name of the stubs only

    from shared.idrott.models import Activity, ClubExportInfo, Person

__all__ = [
    "ActivityRecord",
    "ContactRecord",
    "FileInfo",
    "ParticipantRecord",
    "PersonRecord",
    "RecordTooLarge",
    "RunHeader",
    "SingleRecord",
    "SportRecord",
    "UnresolvedParticipant",
    "file_name",
    "format_datetime",
    "single_record_documents",
    "write_run",
    "write_run_to_dir",
]

_UTC = UTC
_PLACEHOLDER_COUNT = 999_999  # widest FileSequence/FileCount we reserve room for
_COPY_CHUNK = 1 << 20


class RecordTooLarge(ValueError):
    """One activity with its participants (or one person) does not fit in ``max_file_bytes``."""


class UnresolvedParticipant(ValueError):
    """An activity's participant is neither in the current file nor found by ``person_lookup``."""

    def __init__(self, activity_id: str, person_id: str) -> None:
        super().__init__(f"activity {activity_id}: participant {person_id} does not resolve to a person")
        self.activity_id = activity_id
        self.person_id = person_id


# --- records ----------------------------------------------------------------------------------
# The writer duck-types its inputs: the pydantic models of shared.idrott.models work as well as
# these light records (same attribute names). Records use less memory and are what the adapter
# builds from stored rows.


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
        batch_id: str | None = None,
        created_at: datetime | None = None,
        name_tag: str | None = None,
    ) -> RunHeader:
        return cls(
            application_id=club.application_id,
            organisation_guid=club.organisation_guid,
            organisation_number=club.organisation_number,
            rf_association_number=club.rf_association_number,
            club_id=club.club_id,
            batch_id=batch_id or str(uuid.uuid4()),
            created_at=(created_at or datetime.now(_UTC)).replace(microsecond=0),
            export_contacts=club.export_contacts,
            name_tag=name_tag,
        )


@dataclass(frozen=True, slots=True)
class FileInfo:
    name: str
    sequence: int
    count: int
    size: int
    sha256: str
    persons: int  # Person elements in the file (a person may repeat across files)
    activities: int  # Activity elements with OptionType=Insert
    deletes: int  # Activity elements with OptionType=Delete
    batch_id: str = ""


PersonLookup = Callable[[str], Any] | Mapping[str, Any]
#: ``on_skip(kind, record_id, exc)``: ``kind`` is ``"person"`` or ``"activity"``; ``exc`` says why
#: (:class:`RecordTooLarge`, :class:`UnresolvedParticipant`, or the ``ValueError`` building the
#: element raised, e.g. lxml refusing a text). Other exceptions (a writer bug) still fail the run.
SkipHandler = Callable[[str, str, Exception], None]
_NAME_TAG = re.compile(r"[0-9a-z]{1,16}")


# --- formatting -------------------------------------------------------------------------------


def format_datetime(dt: datetime) -> str:
    """UTC ``yyyy-MM-ddTHH:mm:ss`` without zone designator; naive datetimes are refused."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("naive datetime: IdrottOnline times must be timezone-aware before conversion to UTC")
    return dt.astimezone(_UTC).replace(tzinfo=None, microsecond=0).isoformat()


def file_name(header: RunHeader, sequence: int, count: int) -> str:
    """``<ApplicationId>_<RF-föreningsnummer>_<yyyyMMddTHHmmssZ>[_<tag>]_<seq>of<count>.xml``
    (``_<tag>`` when the header has a ``name_tag``)."""
    ts = header.created_at.astimezone(_UTC).strftime("%Y%m%dT%H%M%SZ")
    tag = ""
    if header.name_tag is not None:
        if not _NAME_TAG.fullmatch(header.name_tag):
            raise ValueError("name_tag must be 1-16 of 0-9 a-z")
        tag = f"_{header.name_tag}"
    return f"{header.application_id}_{header.rf_association_number}_{ts}{tag}_{sequence}of{count}.xml"


def _b(v: bool) -> str:
    return E.TRUE if v else E.FALSE


def _header_bytes(header: RunHeader, sequence: int, count: int) -> bytes:
    from lxml import etree

    root = etree.Element(E.IMPORT, {E.ATTR_VERSION: E.FORMAT_VERSION})
    se = etree.SubElement
    se(root, E.APPLICATION_ID).text = header.application_id
    se(root, E.ORGANISATION_GUID).text = header.organisation_guid
    se(root, E.ORGANISATION_IDENTITY_NUMBER).text = header.organisation_number
    se(root, E.BATCH_ID).text = header.batch_id
    se(root, E.FILE_SEQUENCE).text = str(sequence)
    se(root, E.FILE_COUNT).text = str(count)
    se(root, E.CREATED_AT).text = format_datetime(header.created_at)
    body = etree.tostring(root, encoding="UTF-8", xml_declaration=False)
    closing = f"</{E.IMPORT}>".encode()
    assert body.endswith(closing)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body[: -len(closing)]


def _person_element(p: Any, header: RunHeader, etree: Any) -> Any:
    se = etree.SubElement
    el = etree.Element(E.PERSON)
    se(el, E.EXTERNAL_IDENTIFICATION).text = p.external_id
    se(el, E.OPTION_TYPE).text = E.OPTION_UPDATE
    if p.created_at is not None:
        se(el, E.CREATE_DATE).text = format_datetime(p.created_at)
    if p.changed_at is not None:
        se(el, E.CHANGE_DATE).text = format_datetime(p.changed_at)
    if p.personnummer is not None:
        se(el, E.PERSONAL_IDENTITY_NUMBER).text = p.personnummer
    se(el, E.BIRTH_DATE).text = p.birth_date.isoformat()
    se(el, E.FIRST_NAME).text = p.first_name
    se(el, E.LAST_NAME).text = p.last_name
    se(el, E.GENDER).text = p.gender
    if p.nationality is not None:
        se(el, E.NATIONALITY).text = p.nationality
    c = p.contact
    if header.export_contacts and c is not None:
        values = (
            (E.EMAIL, c.email),
            (E.MOBILE_PHONE, c.mobile_phone),
            (E.STREET, c.street),
            (E.CO_ADDRESS, c.co_address),
            (E.POSTAL_CODE, c.postal_code),
            (E.CITY, c.city),
            (E.COUNTRY_CODE, c.country_code),
        )
        if any(v is not None for _, v in values):
            ce = se(el, E.CONTACT)
            for tag, v in values:
                if v is not None:
                    se(ce, tag).text = v
    orgs = se(el, E.ORGANISATIONS)
    org = se(orgs, E.ORGANISATION)
    se(org, E.OPTION_TYPE).text = E.OPTION_UPDATE
    se(org, E.EXTERNAL_ORGANISATION_IDENTIFICATION).text = header.club_id
    se(org, E.ORGANISATION_IDENTITY_NUMBER).text = header.organisation_number
    if p.member_since is not None:
        se(org, E.MEMBER_SINCE).text = p.member_since.isoformat()
    sports = se(org, E.SPORTS)
    for s in p.sports:
        sp = se(sports, E.SPORT)
        se(sp, E.OPTION_TYPE).text = E.OPTION_UPDATE
        se(sp, E.SPORT_ID).text = str(s.sport_id)
        se(sp, E.IS_ACTIVE).text = _b(s.is_active)
    return el


def _activity_element(a: Any, header: RunHeader, etree: Any) -> Any:
    se = etree.SubElement
    el = etree.Element(E.ACTIVITY)
    se(el, E.ACTIVITY_ID).text = a.activity_id
    if getattr(a, "deleted", False):
        se(el, E.OPTION_TYPE).text = E.OPTION_DELETE
        se(el, E.ORGANISATION_NUMBER).text = header.organisation_number
        return el
    se(el, E.OPTION_TYPE).text = E.OPTION_INSERT
    se(el, E.TYPE_ID).text = str(a.type_id)
    se(el, E.NAME).text = a.name
    if a.description is not None:
        se(el, E.DESCRIPTION).text = a.description
    se(el, E.START_TIME).text = format_datetime(a.start_time)
    se(el, E.END_TIME).text = format_datetime(a.end_time)
    se(el, E.ORGANISATION_NUMBER).text = header.organisation_number
    se(el, E.SPORT_ID).text = str(a.sport_id)
    se(se(el, E.VENUE), E.VENUE_NAME).text = a.venue_name
    parts = se(el, E.PARTICIPANTS)
    for p in a.participants:
        pe = se(parts, E.PARTICIPANT)
        se(pe, E.PERSON_ID).text = p.person_id
        se(pe, E.LEADER).text = _b(p.leader)
        se(pe, E.DISABLED).text = _b(p.disabled)
        se(pe, E.ATTENDANCE_STATUS).text = E.ATTENDANCE_ATTENDANT
    return el


# --- the run ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    sequence: int
    p_range: tuple[int, int] = (0, 0)
    a_range: tuple[int, int] = (0, 0)
    persons: int = 0
    activities: int = 0
    deletes: int = 0


class _Section:
    """One xmlfile on a spool file, wrapping a file's Persons or Activities section."""

    __slots__ = ("_el_cm", "_xf", "_xf_cm", "spool", "start", "tag")

    def __init__(self, spool: BinaryIO, tag: str) -> None:
        self.spool = spool
        self.tag = tag
        self._xf: _IncrementalFileWriter | None = None

    def open(self) -> None:
        from lxml import etree

        self.start = self.spool.tell()
        self._xf_cm: xmlfile = etree.xmlfile(self.spool, encoding="utf-8")
        xf = self._xf = self._xf_cm.__enter__()
        self._el_cm: AbstractContextManager[None] = xf.element(self.tag)
        self._el_cm.__enter__()
        xf.flush()

    def _writer(self) -> _IncrementalFileWriter:
        if self._xf is None:
            raise RuntimeError(f"section {self.tag} is not open")
        return self._xf

    def write(self, el: Any) -> None:
        self._writer().write(el)

    def mark(self) -> int:
        self._writer().flush()
        return self.spool.tell()

    def rollback(self, pos: int) -> None:
        self._writer().flush()
        self.spool.seek(pos)
        self.spool.truncate()

    def close(self) -> tuple[int, int]:
        self._el_cm.__exit__(None, None, None)
        self._xf_cm.__exit__(None, None, None)
        self._xf = None
        self.spool.flush()
        return self.start, self.spool.tell()


def _resolver(person_lookup: PersonLookup | None) -> Callable[[str], Any]:
    if person_lookup is None:
        return lambda _pid: None
    if isinstance(person_lookup, Mapping):
        return person_lookup.get
    return person_lookup


def write_run(
    header: RunHeader,
    persons: Iterable[Any],
    activities: Iterable[Any],
    *,
    max_file_bytes: int,
    open_file: Callable[[int], BinaryIO],
    person_lookup: PersonLookup | None = None,
    temp_dir: str | None = None,
    on_skip: SkipHandler | None = None,
) -> list[FileInfo]:
    """Write one run as files of at most ``max_file_bytes`` each; return their :class:`FileInfo`.

    ``persons``: :class:`PersonRecord` or :class:`~shared.idrott.models.Person` to send (all
    of them on a first run, the changed ones later; a member who left has every sport
    ``is_active=False``). ``activities``: :class:`ActivityRecord` / ``Activity`` (inserts) and
    ``ActivityRecord.delete(id)``. ``person_lookup`` (mapping or callable, ``None`` when
    unknown) resolves participants that are not already in the current file.

    ``open_file(sequence)`` is called once per file, in sequence order, only after the whole
    run is planned (so ``FileCount`` is final and :func:`file_name` can name it); the writer
    writes the file and closes the returned object. Nothing is written (and ``[]`` returned)
    when there are neither persons nor activities (or every one was skipped). Raises
    :class:`UnresolvedParticipant` or :class:`RecordTooLarge` (always when the header alone
    leaves no room) unless ``on_skip`` is given: then a unit that cannot be written is left out
    and reported (module docstring). Spool files are removed in every case.
    """
    from lxml import etree

    lookup = _resolver(person_lookup)
    header_upper = len(_header_bytes(header, _PLACEHOLDER_COUNT, _PLACEHOLDER_COUNT))
    fixed = header_upper + len(f"</{E.PERSONS}>") + len(f"</{E.ACTIVITIES}>") + len(f"</{E.IMPORT}>\n")
    if fixed >= max_file_bytes:
        raise RecordTooLarge(f"max_file_bytes={max_file_bytes} leaves no room after the header")

    plans: list[_Plan] = []
    with tempfile.TemporaryFile(dir=temp_dir) as pspool, tempfile.TemporaryFile(dir=temp_dir) as aspool:
        psec = _Section(pspool, E.PERSONS)
        asec = _Section(aspool, E.ACTIVITIES)
        state: dict[str, Any] = {"plan": None, "ids": set()}

        def start_file() -> None:
            state["plan"] = _Plan(sequence=len(plans) + 1)
            state["ids"] = set()
            psec.open()
            asec.open()

        def finish_file() -> None:
            plan: _Plan = state["plan"]
            plan.p_range = psec.close()
            plan.a_range = asec.close()
            plans.append(plan)
            state["plan"] = None

        def size(pe: int, ae: int) -> int:
            return fixed + (pe - psec.start) + (ae - asec.start)

        def write_unit(unit_persons: Sequence[Any], activity: Any | None) -> bool:
            """Write a unit into the current file; False (rolled back) if it does not fit."""
            plan: _Plan = state["plan"]
            # every element is built before anything is written: a record the writer cannot
            # express (a ValueError from lxml) leaves the spool files untouched
            elements = [_person_element(p, header, etree) for p in unit_persons]
            act_el = None if activity is None else _activity_element(activity, header, etree)
            p0, a0 = psec.mark(), asec.mark()
            for el in elements:
                psec.write(el)
            if act_el is not None:
                asec.write(act_el)
            if size(psec.mark(), asec.mark()) <= max_file_bytes:
                ids = state["ids"]
                for p in unit_persons:
                    ids.add(p.external_id)
                plan.persons += len(unit_persons)
                if activity is not None:
                    if getattr(activity, "deleted", False):
                        plan.deletes += 1
                    else:
                        plan.activities += 1
                return True
            psec.rollback(p0)
            asec.rollback(a0)
            return False

        def empty() -> bool:
            plan: _Plan = state["plan"]
            return plan.persons == 0 and plan.activities == 0 and plan.deletes == 0

        def attempt(unit_for_file: Callable[[], Sequence[Any]], activity: Any | None, what: str) -> None:
            if state["plan"] is None:
                start_file()
            if write_unit(unit_for_file(), activity):
                return
            if empty():
                raise RecordTooLarge(f"{what} does not fit in max_file_bytes={max_file_bytes}")
            finish_file()
            start_file()
            if not write_unit(unit_for_file(), activity):
                raise RecordTooLarge(f"{what} does not fit in max_file_bytes={max_file_bytes}")

        def add(
            unit_for_file: Callable[[], Sequence[Any]], activity: Any | None, what: str, kind: str, record_id: str
        ) -> None:
            if on_skip is None:
                attempt(unit_for_file, activity, what)
                return
            try:
                attempt(unit_for_file, activity, what)
            except ValueError as exc:  # RecordTooLarge, UnresolvedParticipant, lxml refusing a text
                on_skip(kind, record_id, exc)  # rolled back (or never written): the run goes on

        try:
            for p in persons:
                if state["plan"] is not None and p.external_id in state["ids"]:
                    continue  # repeated in the input: once per file is enough

                def alone(p: Any = p) -> tuple[Any]:
                    return (p,)

                add(alone, None, f"person {p.external_id}", "person", p.external_id)

            for a in activities:
                if getattr(a, "deleted", False):
                    add(tuple, a, f"activity {a.activity_id}", "activity", a.activity_id)
                    continue

                def needed(a: Any = a) -> list[Any]:
                    ids = state["ids"]
                    out = []
                    for part in a.participants:
                        pid = part.person_id
                        if pid in ids:
                            continue
                        rec = lookup(pid)
                        if rec is None:
                            raise UnresolvedParticipant(a.activity_id, pid)
                        out.append(rec)
                    return out

                add(needed, a, f"activity {a.activity_id} with its participants", "activity", a.activity_id)
            if state["plan"] is not None:
                if empty():  # opened for a unit that was then skipped: no file
                    psec.close()
                    asec.close()
                    state["plan"] = None
                else:
                    finish_file()
        except BaseException:
            if state["plan"] is not None:
                with contextlib.suppress(Exception):  # already failing: the original error is raised
                    psec.close()
                    asec.close()
            raise

        count = len(plans)
        return [_assemble(header, plan, count, pspool, aspool, open_file) for plan in plans]


def _copy_range(spool: BinaryIO, rng: tuple[int, int], out: BinaryIO, h: Any) -> int:
    start, end = rng
    spool.seek(start)
    left = end - start
    while left > 0:
        chunk = spool.read(min(_COPY_CHUNK, left))
        if not chunk:  # pragma: no cover
            raise OSError("spool file ended early")
        out.write(chunk)
        h.update(chunk)
        left -= len(chunk)
    return end - start


def _assemble(
    header: RunHeader,
    plan: _Plan,
    count: int,
    pspool: BinaryIO,
    aspool: BinaryIO,
    open_file: Callable[[int], BinaryIO],
) -> FileInfo:
    h = hashlib.sha256()
    total = 0
    out = open_file(plan.sequence)
    try:
        head = _header_bytes(header, plan.sequence, count)
        out.write(head)
        h.update(head)
        total += len(head)
        if plan.persons:
            total += _copy_range(pspool, plan.p_range, out, h)
        if plan.activities or plan.deletes:
            total += _copy_range(aspool, plan.a_range, out, h)
        tail = f"</{E.IMPORT}>\n".encode()
        out.write(tail)
        h.update(tail)
        total += len(tail)
        out.flush()
    finally:
        out.close()
    return FileInfo(
        name=file_name(header, plan.sequence, count),
        sequence=plan.sequence,
        count=count,
        size=total,
        sha256=h.hexdigest(),
        persons=plan.persons,
        activities=plan.activities,
        deletes=plan.deletes,
        batch_id=header.batch_id,
    )


def write_run_to_dir(
    header: RunHeader,
    persons: Iterable[Any],
    activities: Iterable[Any],
    *,
    max_file_bytes: int,
    directory: str | os.PathLike[str],
    person_lookup: PersonLookup | None = None,
    on_skip: SkipHandler | None = None,
) -> list[FileInfo]:
    """:func:`write_run` into ``directory``, each file under its :func:`file_name`."""
    names: dict[int, str] = {}

    def open_file(seq: int) -> BinaryIO:
        path = os.path.join(directory, f".{header.batch_id}.{seq}.tmp")
        names[seq] = path
        return open(path, "wb")

    infos = write_run(
        header,
        persons,
        activities,
        max_file_bytes=max_file_bytes,
        open_file=open_file,
        person_lookup=person_lookup,
        temp_dir=str(directory),
        on_skip=on_skip,
    )
    for info in infos:
        os.replace(names[info.sequence], os.path.join(directory, info.name))
    return infos


@dataclass(frozen=True, slots=True)
class SingleRecord:
    kind: str  # "person" | "activity"
    record_id: str | None  # ExternalIdentification / ActivityId (None when the element has none)
    refers_to: tuple[str, ...]  # an activity's PersonIds
    document: bytes  # the file's header + this record (+ the persons an activity refers to)


def single_record_documents(source: str | os.PathLike[str] | bytes) -> tuple[bytes, list[SingleRecord]]:
    """Split an import file into one-record documents with the file's own header.

    Returns ``(header_only, records)``: ``header_only`` is the file without
    ``Persons``/``Activities``; each :class:`SingleRecord` document is the header plus one
    ``Person``, or one ``Activity`` with the file's ``Person`` elements it refers to (the XSD
    resolves every ``PersonId`` in the same file). Validating them one by one tells which records
    a refusal of the whole file is about. Parsing is safe (no entities, no network).
    """
    from copy import deepcopy

    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    if isinstance(source, (bytes, bytearray)):
        root = etree.fromstring(bytes(source), parser)
    else:
        root = etree.parse(os.fspath(source), parser).getroot()
    bare = deepcopy(root)
    for section in list(bare):
        if section.tag in (E.PERSONS, E.ACTIVITIES):
            bare.remove(section)

    def document(persons: Sequence[Any], activity: Any | None) -> bytes:
        doc = deepcopy(bare)
        if persons:
            ps = etree.SubElement(doc, E.PERSONS)
            for el in persons:
                ps.append(deepcopy(el))
        if activity is not None:
            etree.SubElement(doc, E.ACTIVITIES).append(deepcopy(activity))
        return etree.tostring(doc, encoding="UTF-8", xml_declaration=True)

    by_id: dict[str, Any] = {}
    out: list[SingleRecord] = []
    for el in root.iterfind(f"{E.PERSONS}/{E.PERSON}"):
        pid = el.findtext(E.EXTERNAL_IDENTIFICATION)
        if pid is not None:
            by_id.setdefault(pid, el)
        out.append(SingleRecord("person", pid, (), document([el], None)))
    for el in root.iterfind(f"{E.ACTIVITIES}/{E.ACTIVITY}"):
        refs = tuple(dict.fromkeys(t for t in (p.text for p in el.iter(E.PERSON_ID)) if t is not None))
        needed = [by_id[r] for r in refs if r in by_id]
        out.append(SingleRecord("activity", el.findtext(E.ACTIVITY_ID), refs, document(needed, el)))
    return etree.tostring(bare, encoding="UTF-8", xml_declaration=True), out
