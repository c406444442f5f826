"""Export orchestration: lock → select delta → write files → XSD → SFTP → advance state → ledger.

One run per club, never two at once: a lock row (``IdrottExportState``, ``RowKey="lock"``) with
an owner and an expiry, taken with an insert-if-absent or an ETag-conditional takeover of an
expired lock. A run that finds the lock held logs "skipped: ... holds the export lock" and
returns ``status="skipped"`` without writing a ledger row.

The exported state (``exported_hash`` of each record, the dirty markers, ``full_load_done``)
advances only after **every** file of the run is on the server: first the club's state row
(``full_load_done``), then the records, so a worker that dies in between never makes the next run
a full load again. A failure anywhere (writing, XSD, SFTP, storage) leaves the records untouched
and records ``status="failed"`` with an error code in the ledger; the next run selects the same
records again (same ids: harmless for IdrottOnline).

**A record that cannot be sent** (too large for one file with what it needs, or refused by the
XSD, or no longer valid) is skipped: left out of the files, reported (ledger ``skipped``, log line
``export.record_skipped``, preview), kept pending (its dirty marker stays), and the others go.

Ledger: table ``IdrottExportRuns``, ``PartitionKey=<clubId>``, ``RowKey=<inverted µs>_<batchId>``
(newest first). Status: ``running`` → ``succeeded`` | ``empty`` (nothing to send) | ``failed`` |
``abandoned`` (a later run found it ``running`` past the lock lease: the worker died). Each
file's ``uploaded`` is written as soon as the server confirmed it. Function-key views show an
error *code* and a plain sentence (:data:`ERROR_CODES`); the technical detail (host, user, secret
names) is for the admin views and the logs only.

The timer exports every enabled Swedish club; one club's failure never stops the others.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shared.clubs import Club

log = logging.getLogger(__name__)

STATE_TABLE = "IdrottExportState"
RUNS_TABLE = "IdrottExportRuns"
LOCK_ROW = "lock"
STATE_ROW = "state"
_INVERT = 10**13


def _now() -> datetime:
    return datetime.now(UTC)


# ---- error codes ---------------------------------------------------------------------------------
#: What a function-key caller sees of a failed run or a skipped record: a stable code and a plain
#: sentence (docs/idrottonline.md, "Error codes"). Never a host, port, user name or secret name:
#: those are in ``errorDetail`` of the admin views (``…/exports/full``, ``POST …/export``) and in
#: the logs.
ERROR_CODES: dict[str, str] = {
    # a run failed
    "sftp-auth-failed": "The SFTP server refused our credentials; check the club's SFTP settings.",
    "sftp-credentials-missing": "The SFTP password or key for this club could not be read; "
    "check the club's SFTP settings.",
    "sftp-host-key-rejected": "The SFTP server presented a host key other than the one pinned for this club; "
    "verify the key with RF before changing the club's SFTP settings.",
    "sftp-host-key-invalid": "The SFTP host key pinned for this club is not valid; fix the club's SFTP settings.",
    "sftp-unreachable": "The SFTP server could not be reached or the connection dropped; the next run sends again.",
    "sftp-deadline": "The upload did not finish in time; the next run sends again.",
    "sftp-refused": "The SFTP server refused to store a file (permissions or folder); check the upload folder with RF.",
    "sftp-failed": "The SFTP transfer failed; the next run sends again.",
    "export-file-invalid": "A generated file did not pass the IdrottOnline schema, so nothing was sent.",
    "file-limit-too-small": "The configured maximum file size leaves no room for any record.",
    "storage-unavailable": "Our storage could not be reached; the next run tries again.",
    "run-abandoned": "The run stopped without recording its end (the worker was stopped); a later run "
    "closed it and sends again what was not confirmed.",
    "internal-error": "The export failed for an unexpected reason; an administrator can see the details.",
    # one record was skipped (the run goes on; the record stays pending)
    "record-too-large": "The record, with everything it needs in the same file (an activity with its "
    "participants), does not fit in one import file, so it is not sent; it stays pending.",
    "record-invalid": "The record cannot be written as a valid IdrottOnline record, so it is not sent; "
    "it stays pending until it is corrected.",
    "participant-not-sendable": "A participant of the activity cannot be sent (see that person's entry), "
    "so the activity is not sent either; it stays pending.",
}

#: Exception class name (anywhere in the MRO, most specific first) → run error code.
_CODE_BY_CLASS: dict[str, str] = {
    "SftpSecretMissing": "sftp-credentials-missing",
    "SftpAuthError": "sftp-auth-failed",
    "HostKeyRejected": "sftp-host-key-rejected",
    "InvalidHostKey": "sftp-host-key-invalid",
    "SftpDeadlineExceeded": "sftp-deadline",
    "SftpTransientError": "sftp-unreachable",
    "SftpRefused": "sftp-refused",
    "SftpError": "sftp-failed",
    "InvalidExportFile": "export-file-invalid",
    "RecordTooLarge": "file-limit-too-small",
    "StorageError": "storage-unavailable",
}


def error_code(exc: BaseException) -> str:
    """The :data:`ERROR_CODES` code of a run that failed with ``exc``."""
    for cls in type(exc).__mro__:
        code = _CODE_BY_CLASS.get(cls.__name__)
        if code is not None:
            return code
    return "internal-error"


def _legacy_code(detail: str) -> str:
    """The code of a ledger row written before codes existed (its error reads ``"<Class>: …"``)."""
    name = detail.split(":", 1)[0].strip()
    if name == "SftpAuthError" and ("secret not found" in detail or "no SFTP password" in detail):
        return "sftp-credentials-missing"
    if name == "SftpError" and "refused the operation" in detail:
        return "sftp-refused"
    return _CODE_BY_CLASS.get(name, "internal-error")


def _skip_code(exc: Exception) -> str:
    from shared.idrott.xmlwriter import RecordTooLarge, UnresolvedParticipant

    if isinstance(exc, RecordTooLarge):
        return "record-too-large"
    if isinstance(exc, UnresolvedParticipant):
        return "participant-not-sendable"
    return "record-invalid"


def _skip_detail(exc: Exception) -> str:
    """A short, redacted reason about the record's own data (shown with the skipped record)."""
    from shared.idrott.xmlwriter import UnresolvedParticipant

    if isinstance(exc, UnresolvedParticipant):
        text = f"participant {exc.person_id!r} cannot be sent"
    elif callable(getattr(exc, "errors", None)) and hasattr(exc, "error_count"):  # pydantic
        parts = [
            f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}"
            for e in exc.errors(include_input=False, include_url=False)[:3]  # type: ignore[attr-defined]
        ]
        text = "the stored record no longer passes validation: " + "; ".join(parts)
    else:
        text = str(exc)
    return _redact(text)[:300]


_DIGIT_RUN = re.compile(r"\d{6}[-+]?\d{4}")


def new_batch_id() -> str:
    """A UUID4 that contains no digit run a personnummer redactor would blank out of log lines
    (``…821639-7801…``): the BatchId must stay searchable in logs."""
    from shared.logs import redact

    while True:
        value = str(uuid.uuid4())
        if not _DIGIT_RUN.search(value) and redact(value) == value:
            return value


def _tables():
    from shared.tables import get_table_store

    store = get_table_store()
    return store.table(STATE_TABLE), store.table(RUNS_TABLE)


def _redact(text: str) -> str:
    from shared.logs import redact

    return redact(text)[:2000]


# ---- lock ----------------------------------------------------------------------------------------
@dataclass
class LockHolder:
    owner: str
    expires_at: datetime | None


def acquire_lock(club_id: str, owner: str, seconds: int) -> tuple[bool, LockHolder | None]:
    """Take the club's export lock for ``seconds``; ``(False, holder)`` if someone holds it."""
    from shared.tables import Conflict

    state, _ = _tables()
    now = _now()
    entity = {
        "PartitionKey": club_id,
        "RowKey": LOCK_ROW,
        "owner": owner,
        "acquired_at": now,
        "expires_at": now + timedelta(seconds=seconds),
    }
    for _ in range(3):
        if state.insert(entity):
            return True, None
        row = state.get(club_id, LOCK_ROW)
        if row is None:
            continue  # released between our insert and read: try again
        expires = row.get("expires_at")
        if expires is not None and expires > now:
            return False, LockHolder(row.get("owner", "?"), expires)
        try:  # expired: take it over, but only if nobody else did first
            state.update(entity, etag=row["_etag"], replace=True)
            log.warning("club %s: took over an expired export lock of run %s", club_id, row.get("owner"))
            return True, None
        except Conflict:
            row = state.get(club_id, LOCK_ROW) or {}
            return False, LockHolder(row.get("owner", "?"), row.get("expires_at"))
    return False, None


def release_lock(club_id: str, owner: str) -> None:
    from shared.tables import Conflict, StorageError

    state, _ = _tables()
    try:
        row = state.get(club_id, LOCK_ROW)
        if row is not None and row.get("owner") == owner:
            state.delete(club_id, LOCK_ROW, etag=row["_etag"])
    except (Conflict, StorageError) as exc:  # it expires by itself
        log.warning(
            "club %s: could not release the export lock (%s); it expires on its own", club_id, type(exc).__name__
        )


# ---- ledger ------------------------------------------------------------------------------------
#: Skipped records listed in one ledger row (``skippedCount`` has the total).
MAX_SKIPPED_LISTED = 50


@dataclass
class RunResult:
    club_id: str
    status: str  # running | succeeded | empty | failed | abandoned | skipped
    batch_id: str | None = None
    trigger: str = "manual"
    full_load: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    files: list[dict] = field(default_factory=list)
    persons: int = 0
    activities: int = 0
    deletes: int = 0
    error: str | None = None  # technical detail, redacted of personal data: admin views and logs only
    held_by: str | None = None
    error_code: str | None = None  # ERROR_CODES
    skipped: list[dict] = field(default_factory=list)  # {"kind", "id", "code", "detail"}
    skipped_count: int = 0

    def to_json(self, *, admin: bool = False) -> dict:
        """The run as the API shows it. ``admin=False`` (function key): ``error`` is the code's plain
        sentence; ``admin=True`` adds ``errorDetail`` (may name hosts, users, secret names)."""
        code = self.error_code
        if code is None and self.error:
            code = _legacy_code(self.error)
        out = {
            "clubId": self.club_id,
            "batchId": self.batch_id,
            "status": self.status,
            "trigger": self.trigger,
            "fullLoad": self.full_load,
            "startedAt": self.started_at.isoformat() if self.started_at else None,
            "finishedAt": self.finished_at.isoformat() if self.finished_at else None,
            "files": [dict(f) for f in self.files],
            "persons": self.persons,
            "activities": self.activities,
            "deletes": self.deletes,
            "error": ERROR_CODES.get(code, ERROR_CODES["internal-error"]) if code else None,
            "errorCode": code,
            "skipped": [skipped_view(s) for s in self.skipped],
            "skippedCount": max(self.skipped_count, len(self.skipped)),
        }
        if admin:
            out["errorDetail"] = self.error
        return out


def skipped_view(entry: dict) -> dict:
    """A skipped record as the API shows it: ``kind``, ``id``, ``code``, ``message`` (the code's
    sentence) and ``detail`` (about the record's own data only, redacted)."""
    code = entry.get("code") or "record-invalid"
    return {
        "kind": entry.get("kind"),
        "id": entry.get("id"),
        "code": code,
        "message": ERROR_CODES.get(code, ERROR_CODES["record-invalid"]),
        "detail": entry.get("detail"),
    }


def _run_key(started: datetime, batch_id: str) -> str:
    micros = int(started.timestamp()) * 1_000_000 + started.microsecond
    return f"{_INVERT * 1000 - micros:016d}_{batch_id}"


def _write_ledger(result: RunResult) -> None:
    _, runs = _tables()
    assert result.started_at is not None and result.batch_id is not None
    runs.upsert(
        {
            "PartitionKey": result.club_id,
            "RowKey": _run_key(result.started_at, result.batch_id),
            "batch_id": result.batch_id,
            "status": result.status,
            "trigger": result.trigger,
            "full_load": result.full_load,
            "started_at": result.started_at,
            "finished_at": result.finished_at,
            "files": result.files,
            "persons": result.persons,
            "activities": result.activities,
            "deletes": result.deletes,
            "error": result.error,
            "error_code": result.error_code,
            "skipped": result.skipped[:MAX_SKIPPED_LISTED] or None,
            "skipped_count": result.skipped_count or None,
        },
        replace=True,
    )


def _from_row(club_id: str, row: dict) -> RunResult:
    error = row.get("error")
    skipped = row.get("skipped") or []
    return RunResult(
        club_id=club_id,
        status=row.get("status", "?"),
        batch_id=row.get("batch_id"),
        trigger=row.get("trigger", "?"),
        full_load=bool(row.get("full_load")),
        started_at=row.get("started_at"),
        finished_at=row.get("finished_at"),
        files=row.get("files") or [],
        persons=row.get("persons", 0),
        activities=row.get("activities", 0),
        deletes=row.get("deletes", 0),
        error=error,
        error_code=row.get("error_code") or (_legacy_code(error) if error else None),
        skipped=skipped,
        skipped_count=row.get("skipped_count") or len(skipped),
    )


def list_runs(club_id: str, limit: int = 50) -> list[RunResult]:
    _, runs = _tables()
    out = []
    for row in runs.query(partition_key=club_id):
        out.append(_from_row(club_id, row))
        if len(out) >= limit:
            break
    return out


def close_abandoned(club_id: str, *, by: str, lease_seconds: int, now: datetime | None = None) -> list[str]:
    """Close the club's ``running`` ledger rows that started more than ``lease_seconds`` ago as
    ``abandoned``; returns their batch ids. Call while holding the club's lock.

    No live run is older than the lease (the lock expires after ``EXPORT_LOCK_SECONDS``, above
    ``functionTimeout``), so such a row belongs to a worker that died. Its files keep the
    ``uploaded`` flags written as the server confirmed each one. If it was a full load whose files
    all reached the server, the club's full load counts as done (the records it did not get to
    commit stay pending and go as changes): a dead worker never makes the next run a full load.
    """
    from shared.tables import Conflict

    _, runs = _tables()
    now = now or _now()
    cutoff = now - timedelta(seconds=lease_seconds)
    closed: list[str] = []
    for row in list(runs.query("status eq @s", parameters={"s": "running"}, partition_key=club_id)):
        batch = row.get("batch_id") or "?"
        started = row.get("started_at")
        if batch == by or (started is not None and started > cutoff):
            continue
        files = row.get("files") or []
        confirmed = sum(1 for f in files if f.get("uploaded"))
        detail = (
            f"no end was recorded within the lock lease ({lease_seconds} s): the worker stopped; closed as "
            f"abandoned by run {by} at {now.isoformat()}; {confirmed} of {len(files)} file(s) confirmed on the server"
        )
        entity = {k: v for k, v in row.items() if not k.startswith("_")}
        entity.update(status="abandoned", error_code="run-abandoned", error=detail, closed_at=now, closed_by=by)
        try:
            runs.update(entity, etag=row["_etag"], replace=True)
        except Conflict:
            continue  # changed meanwhile: not ours to close
        closed.append(batch)
        log.warning("export.abandoned club_id=%s batch=%s: %s", club_id, batch, detail)
        if row.get("full_load") and files and confirmed == len(files) and not full_load_done(club_id):
            _mark_full_load_done(club_id, batch)
            log.warning(
                "club %s: the abandoned full load %s reached the server; the full load counts as done", club_id, batch
            )
    return closed


def _state_row(club_id: str) -> dict:
    state, _ = _tables()
    return state.get(club_id, STATE_ROW) or {}


def full_load_done(club_id: str) -> bool:
    return bool(_state_row(club_id).get("full_load_done"))


def _mark_state(club_id: str, batch_id: str, created_at: datetime) -> None:
    state, _ = _tables()
    state.upsert(
        {
            "PartitionKey": club_id,
            "RowKey": STATE_ROW,
            "full_load_done": True,
            "last_batch_id": batch_id,
            "last_success_at": _now(),
            "last_created_at": created_at,
        }
    )


def _mark_full_load_done(club_id: str, batch_id: str) -> None:
    state, _ = _tables()
    state.upsert({"PartitionKey": club_id, "RowKey": STATE_ROW, "full_load_done": True, "full_load_batch_id": batch_id})


def _reserve_created_at(club_id: str, created_at: datetime) -> None:
    """Every attempt, failed ones too, takes its CreatedAt: the next one is strictly later."""
    state, _ = _tables()
    state.upsert({"PartitionKey": club_id, "RowKey": STATE_ROW, "last_created_at": created_at})


# ---- building files ----------------------------------------------------------------------------
def club_export_info(club: Any):
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


def _local_today() -> date:
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Europe/Stockholm")).date()


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
    files: list  # xmlwriter.FileInfo, validated
    skipped: list[dict]  # {"kind", "id", "code", "detail"}, in the order met


#: Rounds of "write, validate, isolate the refused records" before a run gives up.
_ISOLATION_ROUNDS = 3


def build_files(
    club: Any,
    selection: Any,
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
    from shared.idrott.xmlwriter import RunHeader, write_run_to_dir
    from shared.idrott.xsd import InvalidExportFile, validate_file

    header = RunHeader.for_club(club_export_info(club), batch_id=batch_id, created_at=created_at, name_tag=tag)
    limit = max_file_bytes or get_settings().IDROTTONLINE_MAX_FILE_BYTES
    skipped: dict[tuple[str, str], dict] = {}

    def skip(kind: str, record_id: str, exc: Exception, code: str | None = None) -> None:
        skipped.setdefault(
            (kind, record_id),
            {"kind": kind, "id": record_id, "code": code or _skip_code(exc), "detail": _skip_detail(exc)},
        )

    context = {p.external_id: p for p in selection.all_persons()}
    for _ in range(_ISOLATION_ROUNDS):
        for leftover in directory.iterdir():
            leftover.unlink()
        skip_p = {rid for kind, rid in skipped if kind == "person"}
        skip_a = {rid for kind, rid in skipped if kind == "activity"}

        def person_record(pid: str, skip_p: set[str] = skip_p) -> Any:
            """The writer's record, built on demand (memory stays flat); ``None`` if it cannot be sent."""
            if pid in skip_p or pid not in context:
                return None
            try:
                return context[pid].record()
            except ValueError as exc:  # stored under older rules, no longer valid (pydantic)
                skip("person", pid, exc)
                skip_p.add(pid)
                return None

        def persons(person_record: Any = person_record) -> Iterator[Any]:
            for p in selection.persons:
                rec = person_record(p.external_id)
                if rec is not None:
                    yield rec

        activities = []
        for a in selection.activities + selection.deletes:
            if a.activity_id in skip_a:
                continue
            try:
                activities.append(a.record())
            except ValueError as exc:  # stored under older rules, no longer valid (pydantic)
                skip("activity", a.activity_id, exc)
        infos = write_run_to_dir(
            header,
            persons(),
            activities,
            max_file_bytes=limit,
            directory=directory,
            person_lookup=person_record,
            on_skip=skip,
        )
        refused: list[tuple[Any, InvalidExportFile]] = []
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


def _refused_records(path: Path) -> list[tuple[str, str | None, Exception]]:
    """The records of a refused file that the XSD refuses on their own (``[]`` when none does, or
    when even the file's header alone is refused). An activity that refers to a refused person
    is not listed: it is skipped in the next round because that person cannot be sent."""
    from shared.idrott.xmlwriter import single_record_documents
    from shared.idrott.xsd import InvalidExportFile, validate_file

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


def _drop_skipped(sel: Any, skipped: list[dict]) -> None:
    """Take the skipped records out of a store selection, so the commit neither marks them exported
    nor deletes their dirty markers: they stay pending. Context persons are kept only for the
    activities that are still sent."""
    from shared.idrott.store import A, D, P

    if not skipped:
        return
    skip_p = {s["id"] for s in skipped if s["kind"] == "person"}
    skip_a = {s["id"] for s in skipped if s["kind"] == "activity"}
    sel.persons = [p for p in sel.persons if p.external_id not in skip_p]
    sel.activities = [a for a in sel.activities if a.activity_id not in skip_a]
    sel.deletes = [a for a in sel.deletes if a.activity_id not in skip_a]
    needed = {pt.get("personId") for a in sel.activities for pt in a.data.get("participants", [])}
    sel.context_persons = [p for p in sel.context_persons if p.external_id in needed and p.external_id not in skip_p]
    keep = {D + P + i for i in skip_p} | {D + A + i for i in skip_a}
    sel.markers = [(rk, etag) for rk, etag in sel.markers if rk not in keep]


def _log_skipped(club_id: str, batch_id: str, skipped: list[dict]) -> None:
    for entry in skipped[:MAX_SKIPPED_LISTED]:
        log.warning(
            "export.record_skipped club_id=%s batch=%s kind=%s id=%r code=%s: %s",
            club_id,
            batch_id,
            entry["kind"],
            entry["id"],
            entry["code"],
            entry["detail"],
        )
    if len(skipped) > MAX_SKIPPED_LISTED:
        log.warning(
            "export.record_skipped club_id=%s batch=%s: %d more record(s) skipped",
            club_id,
            batch_id,
            len(skipped) - MAX_SKIPPED_LISTED,
        )


# ---- one club ----------------------------------------------------------------------------------
def export_club(club_or_id: Club | str, *, trigger: str = "manual", today: date | None = None) -> RunResult:
    """Run one export for a club now. Never raises for a run failure: see ``RunResult.status``."""
    from shared.clubs import get_club
    from shared.config import get_settings
    from shared.logs import log_context

    if isinstance(club_or_id, str):
        club_id = club_or_id
        club = get_club(club_or_id)
        if club is None:
            raise LookupError(f"club {club_id} is not registered")
    else:
        club, club_id = club_or_id, club_or_id.club_id
    settings = get_settings()
    owner = new_batch_id()
    with log_context(club_id=club_id):
        ok, holder = acquire_lock(club_id, owner, settings.EXPORT_LOCK_SECONDS)
        if not ok:
            until = holder.expires_at.isoformat() if holder and holder.expires_at else "?"
            who = holder.owner if holder else "?"
            log.info("export.skipped club_id=%s: run %s holds the export lock until %s", club_id, who, until)
            return RunResult(club_id, "skipped", trigger=trigger, held_by=who)
        try:
            return _run_locked(club, trigger=trigger, today=today or _local_today(), settings=settings)
        finally:
            release_lock(club_id, owner)


def _run_locked(club: Any, *, trigger: str, today: date, settings: Any) -> RunResult:
    from shared.idrott.store import ClubRecords

    started = _now()
    batch_id = new_batch_id()
    result = RunResult(club.club_id, "running", batch_id=batch_id, trigger=trigger, started_at=started)
    t0 = time.monotonic()
    try:
        close_abandoned(club.club_id, by=batch_id, lease_seconds=settings.EXPORT_LOCK_SECONDS, now=started)
        state = _state_row(club.club_id)
        result.full_load = not state.get("full_load_done")
        # CreatedAt (second precision) is kept strictly increasing per club, failed attempts included;
        # the attempt tag (from the BatchId) makes every attempt's file names its own besides
        created_at = started.replace(microsecond=0)
        last = state.get("last_created_at")
        if last is not None and created_at <= last:
            created_at = last + timedelta(seconds=1)
        _reserve_created_at(club.club_id, created_at)
        _write_ledger(result)
        records = ClubRecords(club.club_id)
        sel = records.select(full_load=result.full_load, today=today)
        if sel.empty:
            records.commit(sel)  # clears markers of records that turned out unchanged
            result.status = "empty"
        else:
            with tempfile.TemporaryDirectory(prefix="idrott-export-") as tmp:
                directory = Path(tmp)
                built = build_files(
                    club, sel, directory, batch_id=batch_id, created_at=created_at, tag=name_tag(batch_id)
                )
                _drop_skipped(sel, built.skipped)
                result.skipped, result.skipped_count = built.skipped, len(built.skipped)
                _log_skipped(club.club_id, batch_id, built.skipped)
                result.persons = len(sel.persons)
                result.activities = len(sel.activities)
                result.deletes = len(sel.deletes)
                if not built.files:  # every selected record was skipped: they stay pending
                    records.commit(sel)
                    result.status = "empty"
                else:
                    _upload(club, result, built.files, directory, settings)
                    # every file is on the server. The club's state first: a worker that dies after
                    # this never makes the next run a full load; then the records (a death before
                    # this line leaves them pending: they go again, same ids, harmless)
                    _mark_state(club.club_id, batch_id, created_at)
                    records.commit(sel)
                    result.status = "succeeded"
    except Exception as exc:  # noqa: BLE001 - recorded in the ledger, never stops other clubs
        result.status = "failed"
        result.error_code = error_code(exc)
        result.error = _redact(f"{type(exc).__name__}: {exc}")
        log.error(
            "export.failed club_id=%s batch=%s code=%s: %s", club.club_id, batch_id, result.error_code, result.error
        )
    result.finished_at = _now()
    try:
        _write_ledger(result)
    except Exception as exc:  # noqa: BLE001
        log.error(
            "club %s: could not write the ledger row for batch %s: %s", club.club_id, batch_id, type(exc).__name__
        )
    if result.status != "failed":
        log.info(
            "export.%s club_id=%s batch=%s: %d file(s), %d person(s), %d activit(ies), %d delete(s), "
            "%d skipped in %.1fs",
            result.status,
            club.club_id,
            batch_id,
            len(result.files),
            result.persons,
            result.activities,
            result.deletes,
            result.skipped_count,
            time.monotonic() - t0,
        )
    return result


def _upload(club: Any, result: RunResult, infos: list, directory: Path, settings: Any) -> None:
    """Upload the run's files; each file's ``uploaded`` goes to the ledger as the server confirms it."""
    from shared import sftp  # lazy: paramiko

    result.files = [
        {
            "name": i.name,
            "sequence": i.sequence,
            "size": i.size,
            "sha256": i.sha256,
            "persons": i.persons,
            "activities": i.activities,
            "deletes": i.deletes,
            "uploaded": False,
        }
        for i in infos
    ]
    _write_ledger(result)  # the planned files, none confirmed yet
    by_name = {f["name"]: f for f in result.files}

    def confirmed(done: Any) -> None:
        by_name[done.name]["uploaded"] = True
        try:
            _write_ledger(result)
        except Exception as exc:  # noqa: BLE001 - the run's last ledger write records it
            log.warning(
                "club %s: could not record that %s is on the server (%s)", club.club_id, done.name, type(exc).__name__
            )

    info = club_export_info(club)
    stale = own_stale_part(info.application_id, info.rf_association_number)
    target = club.sftp_target(settings.IDROTTONLINE_REMOTE_DIR)

    def own_stale(name: str) -> bool:
        return stale.fullmatch(name) is not None

    sftp.upload_files(target, [(directory / i.name, i.name) for i in infos], on_uploaded=confirmed, stale=own_stale)


# ---- preview -----------------------------------------------------------------------------------
PREVIEW_MAX_XML_CHARS = 2_000_000


def preview(club: Any, *, today: date | None = None) -> dict:
    """What the next run would send: the XML (read-only; nothing is uploaded or recorded), the
    records it would skip, and a LOK-stöd prognosis per activity it would send, marked advisory."""
    from shared.idrott.store import ClubRecords

    today = today or _local_today()
    full = not full_load_done(club.club_id)
    records = ClubRecords(club.club_id)
    sel = records.select(full_load=full, today=today)
    files: list[dict] = []
    skipped: list[dict] = []
    budget = PREVIEW_MAX_XML_CHARS
    if not sel.empty:
        with tempfile.TemporaryDirectory(prefix="idrott-preview-") as tmp:
            directory = Path(tmp)
            built = build_files(
                club,
                sel,
                directory,
                batch_id="preview-" + uuid.uuid4().hex[:8],
                created_at=_now().replace(microsecond=0),
            )
            skipped = built.skipped
            _drop_skipped(sel, skipped)
            for info in built.files:
                entry = {
                    "name": info.name,
                    "size": info.size,
                    "sha256": info.sha256,
                    "persons": info.persons,
                    "activities": info.activities,
                    "deletes": info.deletes,
                    "xml": None,
                    "truncated": True,
                }
                if info.size <= budget:
                    entry["xml"] = (directory / info.name).read_text(encoding="utf-8")
                    entry["truncated"] = False
                    budget -= info.size
                files.append(entry)
    return {
        "clubId": club.club_id,
        "fullLoad": full,
        "persons": len(sel.persons),
        "referencedPersons": len(sel.context_persons),
        "activities": len(sel.activities),
        "deletes": len(sel.deletes),
        "files": files,
        "skipped": [skipped_view(s) for s in skipped[:MAX_SKIPPED_LISTED]],
        "skippedCount": len(skipped),
        "lokPrognosis": lok_prognosis(sel, today=today),
    }


def lok_prognosis(sel: Any, *, today: date) -> dict:
    """Advisory LOK-stöd prognosis per selected activity (the core's rules, ``shared.idrott.lok``).

    Only the activities of this run are considered together (day and week caps do not see
    activities sent earlier)."""
    from shared.idrott import lok

    persons = {p.external_id: p.record() for p in sel.all_persons()}
    return {
        "advisory": True,
        "note": "Prognosis only: IdrottOnline alone decides LOK-stöd (rules since 1 July 2023). "
        "Day and week caps consider only the activities of this run.",
        "rules": dict(lok.RULES),
        "activities": lok.prognose([a.record() for a in sel.activities], persons),
    }


# ---- timer -------------------------------------------------------------------------------------
def run_scheduled(timer: Any = None) -> list[RunResult]:
    """Timer entry point: export every enabled Swedish club, one after the other."""
    from shared.clubs import list_enabled_clubs

    if timer is not None and getattr(timer, "past_due", False):
        log.warning("IdrottOnline export timer is past due (missed schedule); running once now")
    clubs = list_enabled_clubs("SE")
    log.info("IdrottOnline export: %d enabled club(s)", len(clubs))
    results = []
    for club in clubs:
        try:
            results.append(export_club(club, trigger="timer"))
        except Exception as exc:  # noqa: BLE001 - e.g. storage down for the lock: next club
            log.error(
                "export.failed club_id=%s: could not start: %s", club.club_id, _redact(f"{type(exc).__name__}: {exc}")
            )
            results.append(
                RunResult(club.club_id, "failed", trigger="timer", error=type(exc).__name__, error_code=error_code(exc))
            )
    summary = {s: sum(1 for r in results if r.status == s) for s in ("succeeded", "empty", "failed", "skipped")}
    log.info("IdrottOnline export finished: %s", ", ".join(f"{k}={v}" for k, v in summary.items()))
    return results
