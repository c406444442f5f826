"""A run's files: written, validated against the XSD, and the records that cannot be sent set aside.

:func:`build_files` writes the selection with the streaming writer (:mod:`shared.idrott.xmlwriter`:
split under ``IDROTTONLINE_MAX_FILE_BYTES``, self-contained) into a directory and validates every
file (:mod:`shared.idrott.xsd`). Records are read from the (spooled) selection one at a time and
the persons an activity needs are looked up by id, so nothing of the club is held in memory. **A record that cannot be sent** is skipped, never the run: one
too large for a file with what it needs, one whose stored data no longer validates, one the XSD
refuses (found by validating a refused file's records one by one), an activity whose participant
is one of those. Each skipped record gets its code and detail (:mod:`shared.idrott.error_codes`).
Also the names a run gives its files (:func:`name_tag`) and the stale upload files it may remove
(:func:`own_stale_part`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.idrott.error_codes import skip_code, skip_detail

if TYPE_CHECKING:
    from shared.clubs import Club
    from shared.idrott.models import ClubExportInfo
    from shared.idrott.rows import StoredActivity, StoredPerson
    from shared.idrott.selection import ClubSelection
    from shared.idrott.xmlrecords import PersonRecord
    from shared.idrott.xmlwriter import FileInfo

__all__ = ["BuiltRun", "build_files", "club_export_info", "name_tag", "own_stale_part"]

type PersonLookup = Callable[[str], PersonRecord | None]


def club_export_info(club: Club) -> ClubExportInfo:
    """What the XML needs to know about the club (its registry entry and our ApplicationId)."""
    from shared.config import get_settings
    from shared.idrott.models import ClubExportInfo

    return ClubExportInfo(
        club_id=club.club_id,
        application_id=get_settings().IDROTTONLINE_APPLICATION_ID,
        organisation_guid=str(club.rf_guid),
        organisation_number=club.organisation_number,
        rf_association_number=club.rf_foreningsnummer,
        export_contacts=club.contact_export,
    )


def name_tag(batch_id: str) -> str:
    """The attempt tag in a run's file names: the first 8 hex digits of its BatchId."""
    return batch_id.replace("-", "")[:8].lower()


def own_stale_part(application_id: str, rf_association_number: str) -> re.Pattern[str]:
    """Names of this club's own temporary upload files (``<file name>[.<n>].part``, with or without
    an attempt tag): the only files a run removes from the server."""
    return re.compile(
        rf"{re.escape(application_id)}_{re.escape(rf_association_number)}_\d{{8}}T\d{{6}}Z_"
        r"(?:[0-9a-z]{1,16}_)?\d+of\d+\.xml(?:\.\d+)?\.part"
    )


@dataclass
class BuiltRun:
    files: list[FileInfo]  # validated
    skipped: list[dict]  # {"kind", "id", "code", "detail"}, in the order met


#: Rounds of "write, validate, isolate the refused records" before a run gives up.
_ISOLATION_ROUNDS = 3


def build_files(
    club: Club,
    selection: ClubSelection,
    directory: Path,
    *,
    batch_id: str,
    created_at: datetime,
    max_file_bytes: int | None = None,
    tag: str | None = None,
) -> BuiltRun:
    """Write the run's files into ``directory`` (streaming, split) and validate each against the XSD.

    A record that cannot be sent is skipped, never the run: one that does not fit in a file with
    what it needs, one whose stored data no longer validates, one the XSD refuses (found by
    validating a refused file's records one by one), and an activity whose participant is one of
    those. Raises only for what no record explains: a header the XSD refuses, a file limit below
    the header, a writer bug.
    """
    from shared.config import get_settings
    from shared.idrott.xmlrecords import RunHeader
    from shared.idrott.xmlwriter import write_run_to_dir
    from shared.idrott.xsd import InvalidExportFile, validate_file

    header = RunHeader.for_club(club_export_info(club), created_at=created_at, batch_id=batch_id, name_tag=tag)
    limit = max_file_bytes or get_settings().IDROTTONLINE_MAX_FILE_BYTES
    skipped: dict[tuple[str, str], dict] = {}

    def skip(kind: str, record_id: str, exc: Exception, code: str | None = None) -> None:
        skipped.setdefault(
            (kind, record_id),
            {"kind": kind, "id": record_id, "code": code or skip_code(exc), "detail": skip_detail(exc)},
        )

    for _ in range(_ISOLATION_ROUNDS):
        for leftover in directory.iterdir():
            leftover.unlink()
        skip_p = {rid for kind, rid in skipped if kind == "person"}
        skip_a = {rid for kind, rid in skipped if kind == "activity"}

        def person_record(pid: str, skip_p: set[str] = skip_p) -> PersonRecord | None:
            """The writer's record, read and built on demand (memory stays flat); ``None`` if it
            cannot be sent."""
            if pid in skip_p:
                return None
            stored = selection.person(pid)
            if stored is None:
                return None
            try:
                return stored.record()
            except ValueError as exc:  # stored under older rules, no longer valid (pydantic)
                skip("person", pid, exc)
                skip_p.add(pid)
                return None

        infos = write_run_to_dir(
            header,
            _records(selection.persons, "person", skip_p, skip),
            _records(itertools.chain(selection.activities, selection.deletes), "activity", skip_a, skip),
            max_file_bytes=limit,
            directory=directory,
            person_lookup=person_record,
            on_skip=skip,
        )
        refused: list[tuple[FileInfo, InvalidExportFile]] = []
        for info in infos:
            try:
                validate_file(directory / info.name)
            except InvalidExportFile as exc:
                refused.append((info, exc))
        if not refused:
            return BuiltRun(infos, list(skipped.values()))
        new = 0
        for info, first_error in refused:
            culprits = _refused_records(directory / info.name)
            if not culprits or any(rid is None for _, rid, _ in culprits):
                raise first_error  # not about a record (the header, or a rule across records): the run fails
            for kind, rid, why in culprits:
                assert rid is not None
                if (kind, rid) not in skipped:
                    skip(kind, rid, why, "record-invalid")
                    new += 1
        if not new:
            raise refused[0][1]
    raise refused[0][1]


def _records(
    stored: Iterable[StoredPerson] | Iterable[StoredActivity],
    kind: str,
    skip_ids: set[str],
    skip: Callable[[str, str, Exception], None],
) -> Iterator[Any]:
    """The writer's records of ``stored``, built one at a time; one whose stored data no longer
    validates (pydantic) is skipped."""
    for r in stored:
        if r.record_id in skip_ids:
            continue
        try:
            yield r.record()
        except ValueError as exc:  # stored under older rules, no longer valid (pydantic)
            skip(kind, r.record_id, exc)
            skip_ids.add(r.record_id)


def _refused_records(path: Path) -> list[tuple[str, str | None, Exception]]:
    """The records of a refused file that the XSD refuses on their own (``[]`` when none does, or
    when even the file's header alone is refused). An activity that refers to a refused person
    is not listed: it is skipped in the next round because that person cannot be sent."""
    from shared.idrott.xsd import InvalidExportFile, single_record_documents, validate_file

    try:
        header_only, records = single_record_documents(path)
        validate_file(header_only)
    except (InvalidExportFile, ValueError):  # lxml's XMLSyntaxError is a ValueError too
        return []
    out: list[tuple[str, str | None, Exception]] = []
    bad_persons: set[str | None] = set()
    for rec in records:
        if rec.kind == "activity" and bad_persons.intersection(rec.refers_to):
            continue
        try:
            validate_file(rec.document)
        except InvalidExportFile as exc:
            out.append((rec.kind, rec.record_id, exc))
            if rec.kind == "person":
                bad_persons.add(rec.record_id)
    return out
