"""Export orchestration: lock → select delta → write files → XSD → SFTP → advance state → ledger.

One run per club, never two at once: a lock row (``IdrottExportState``, ``RowKey="lock"``) with
an owner and an expiry, taken with an insert-if-absent or an ETag-conditional takeover of an
expired lock. A run that finds the lock held logs "skipped: ... holds the export lock" and
returns ``status="skipped"`` without writing a ledger row.

The exported state (``exported_hash`` of each record, the dirty markers, ``full_load_done``)
advances only after **every** file of the run is on the server. A failure anywhere (writing,
XSD, SFTP, storage) leaves it untouched and records ``status="failed"`` with the error in the
ledger; the next run selects the same records again (same ids: harmless for IdrottOnline).

Ledger: table ``IdrottExportRuns``, ``PartitionKey=<clubId>``, ``RowKey=<inverted ms>_<batchId>``
(newest first). Status: ``running`` → ``succeeded`` | ``empty`` (nothing to send) | ``failed``.

The timer exports every enabled Swedish club; one club's failure never stops the others.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.clubs import Club

log = logging.getLogger(__name__)

STATE_TABLE = "IdrottExportState"
RUNS_TABLE = "IdrottExportRuns"
LOCK_ROW = "lock"
STATE_ROW = "state"
_INVERT = 10**13


def _now() -> datetime:
    return datetime.now(UTC)


_DIGIT_RUN = __import__("re").compile(r"\d{6}[-+]?\d{4}")


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
@dataclass
class RunResult:
    club_id: str
    status: str  # succeeded | empty | failed | skipped
    batch_id: str | None = None
    trigger: str = "manual"
    full_load: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    files: list[dict] = field(default_factory=list)
    persons: int = 0
    activities: int = 0
    deletes: int = 0
    error: str | None = None
    held_by: str | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        out = {
            "clubId": d["club_id"],
            "batchId": d["batch_id"],
            "status": d["status"],
            "trigger": d["trigger"],
            "fullLoad": d["full_load"],
            "startedAt": self.started_at.isoformat() if self.started_at else None,
            "finishedAt": self.finished_at.isoformat() if self.finished_at else None,
            "files": self.files,
            "persons": self.persons,
            "activities": self.activities,
            "deletes": self.deletes,
            "error": self.error,
        }
        return out


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
        },
        replace=True,
    )


def list_runs(club_id: str, limit: int = 50) -> list[RunResult]:
    _, runs = _tables()
    out = []
    for row in runs.query(partition_key=club_id):
        out.append(
            RunResult(
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
                error=row.get("error"),
            )
        )
        if len(out) >= limit:
            break
    return out


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


def build_files(
    club: Any,
    selection: Any,
    directory: Path,
    *,
    batch_id: str,
    created_at: datetime,
    max_file_bytes: int | None = None,
) -> list:
    """Write the run's files into ``directory`` (streaming, split) and validate each against the XSD."""
    from shared.config import get_settings
    from shared.idrott.xmlwriter import RunHeader, write_run_to_dir
    from shared.idrott.xsd import validate_file

    header = RunHeader.for_club(club_export_info(club), batch_id=batch_id, created_at=created_at)
    context = {p.external_id: p for p in selection.all_persons()}
    infos = write_run_to_dir(
        header,
        (p.record() for p in selection.persons),
        [a.record() for a in selection.activities] + [a.record() for a in selection.deletes],
        max_file_bytes=max_file_bytes or get_settings().IDROTTONLINE_MAX_FILE_BYTES,
        directory=directory,
        person_lookup=lambda pid: context[pid].record() if pid in context else None,
    )
    for info in infos:
        validate_file(directory / info.name)
    return infos


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
        state = _state_row(club.club_id)
        result.full_load = not state.get("full_load_done")
        # CreatedAt (second precision) names the files: keep it strictly increasing per club so a
        # quick second run can never overwrite a file IdrottOnline has not read yet
        created_at = started.replace(microsecond=0)
        last = state.get("last_created_at")
        if last is not None and created_at <= last:
            created_at = last + timedelta(seconds=1)
        _write_ledger(result)
        records = ClubRecords(club.club_id)
        sel = records.select(full_load=result.full_load, today=today)
        if sel.empty:
            records.commit(sel)  # clears markers of records that turned out unchanged
            result.status = "empty"
        else:
            with tempfile.TemporaryDirectory(prefix="idrott-export-") as tmp:
                directory = Path(tmp)
                infos = build_files(club, sel, directory, batch_id=batch_id, created_at=created_at)
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
                result.persons = len(sel.persons)
                result.activities = len(sel.activities)
                result.deletes = len(sel.deletes)
                from shared import sftp  # lazy: paramiko

                target = club.sftp_target(settings.IDROTTONLINE_REMOTE_DIR)
                report = sftp.upload_files(target, [(directory / i.name, i.name) for i in infos])
                uploaded = {f.name for f in report.files}
                for f in result.files:
                    f["uploaded"] = f["name"] in uploaded
            records.commit(sel)
            _mark_state(club.club_id, batch_id, created_at)
            result.status = "succeeded"
    except Exception as exc:  # noqa: BLE001 - recorded in the ledger, never stops other clubs
        result.status = "failed"
        result.error = _redact(f"{type(exc).__name__}: {exc}")
        log.error("export.failed club_id=%s batch=%s: %s", club.club_id, batch_id, result.error)
    result.finished_at = _now()
    try:
        _write_ledger(result)
    except Exception as exc:  # noqa: BLE001
        log.error(
            "club %s: could not write the ledger row for batch %s: %s", club.club_id, batch_id, type(exc).__name__
        )
    if result.status != "failed":
        log.info(
            "export.%s club_id=%s batch=%s: %d file(s), %d person(s), %d activit(ies), %d delete(s) in %.1fs",
            result.status,
            club.club_id,
            batch_id,
            len(result.files),
            result.persons,
            result.activities,
            result.deletes,
            time.monotonic() - t0,
        )
    return result


# ---- preview -----------------------------------------------------------------------------------
PREVIEW_MAX_XML_CHARS = 2_000_000


def preview(club: Any, *, today: date | None = None) -> dict:
    """What the next run would send: the XML (read-only; nothing is uploaded or recorded) and a
    LOK-stöd prognosis per selected activity, marked advisory."""
    from shared.idrott.store import ClubRecords

    today = today or _local_today()
    full = not full_load_done(club.club_id)
    records = ClubRecords(club.club_id)
    sel = records.select(full_load=full, today=today)
    files: list[dict] = []
    budget = PREVIEW_MAX_XML_CHARS
    if not sel.empty:
        with tempfile.TemporaryDirectory(prefix="idrott-preview-") as tmp:
            directory = Path(tmp)
            infos = build_files(
                club,
                sel,
                directory,
                batch_id="preview-" + uuid.uuid4().hex[:8],
                created_at=_now().replace(microsecond=0),
            )
            for info in infos:
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
            results.append(RunResult(club.club_id, "failed", trigger="timer", error=type(exc).__name__))
    summary = {s: sum(1 for r in results if r.status == s) for s in ("succeeded", "empty", "failed", "skipped")}
    log.info("IdrottOnline export finished: %s", ", ".join(f"{k}={v}" for k, v in summary.items()))
    return results
