"""The ledger: one row per export run in ``IdrottExportRuns`` (``PartitionKey=<clubId>``,
``RowKey=<inverted µs>_<batchId>``, newest first).

Status (:data:`RunStatus`): ``running`` → ``succeeded`` | ``empty`` (nothing to send) |
``failed`` | ``abandoned`` (a later run found it ``running`` past the lock lease: the worker
died, :func:`close_abandoned`); ``skipped`` (the lock was held) is never stored. Each file's
``uploaded`` is written as soon as the server confirmed it, so the ledger says which files are on
the server even when a later one fails. :class:`RunResult` is mapped to a row and back in one
place (:meth:`RunResult.to_entity`, :meth:`RunResult.from_entity`) and shown by the API with
:meth:`RunResult.to_json`: function-key views get an error *code* and its plain sentence
(:mod:`shared.idrott.error_codes`); the technical detail (host, user, secret names) is for the
admin views and the logs only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

from shared.idrott.clock import Clock, utc_now
from shared.idrott.error_codes import ERROR_CODES, legacy_code
from shared.idrott.state import full_load_done, mark_full_load_done

if TYPE_CHECKING:
    from shared.tables_contract import StorageTable

__all__ = [
    "MAX_SKIPPED_LISTED",
    "RUNS_TABLE",
    "RunResult",
    "RunStatus",
    "close_abandoned",
    "list_runs",
    "run_key",
    "runs_table",
    "save_run",
    "skipped_view",
]

log = logging.getLogger(__name__)

RUNS_TABLE = "IdrottExportRuns"
#: Skipped records listed in one ledger row (``skippedCount`` has the total).
MAX_SKIPPED_LISTED = 50
_INVERT = 10**13

type RunStatus = Literal["running", "succeeded", "empty", "failed", "abandoned", "skipped"]


@dataclass
class RunResult:
    """One export run, as the ledger keeps it and the API shows it."""

    club_id: str
    status: RunStatus
    batch_id: str | None = None
    trigger: str = "manual"  # "manual" | "timer"
    full_load: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    files: list[dict] = field(default_factory=list)  # name, sequence, size, sha256, counts, uploaded
    persons: int = 0
    activities: int = 0
    deletes: int = 0
    error: str | None = None  # technical detail, redacted of personal data: admin views and logs only
    held_by: str | None = None  # status "skipped": the run holding the lock (never stored)
    error_code: str | None = None  # ERROR_CODES
    skipped: list[dict] = field(default_factory=list)  # {"kind", "id", "code", "detail"}
    skipped_count: int = 0
    closed_by: str | None = None  # status "abandoned": the run that closed it, and when
    closed_at: datetime | None = None
    #: who started a manual run (``actorKind``, a token's ``actorSubject``/``actorClientId``); empty
    #: for the timer's runs
    actor: dict[str, str] = field(default_factory=dict)

    def to_entity(self) -> dict[str, Any]:
        """The ledger row (at most :data:`MAX_SKIPPED_LISTED` skipped records listed)."""
        if self.started_at is None or self.batch_id is None:
            raise ValueError("a ledger row needs started_at and batch_id")
        return {
            "PartitionKey": self.club_id,
            "RowKey": run_key(self.started_at, self.batch_id),
            "batch_id": self.batch_id,
            "status": self.status,
            "trigger": self.trigger,
            "full_load": self.full_load,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "files": self.files,
            "persons": self.persons,
            "activities": self.activities,
            "deletes": self.deletes,
            "error": self.error,
            "error_code": self.error_code,
            "skipped": self.skipped[:MAX_SKIPPED_LISTED] or None,
            "skipped_count": self.skipped_count or None,
            "closed_by": self.closed_by,
            "closed_at": self.closed_at,
            "actor": self.actor or None,
        }

    @classmethod
    def from_entity(cls, club_id: str, row: dict) -> RunResult:
        """A ledger row back (rows written before error codes existed get theirs from the text)."""
        error = row.get("error")
        skipped = row.get("skipped") or []
        return cls(
            club_id=club_id,
            status=cast("RunStatus", row.get("status", "?")),  # always written by to_entity
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
            error_code=row.get("error_code") or (legacy_code(error) if error else None),
            skipped=skipped,
            skipped_count=row.get("skipped_count") or len(skipped),
            closed_by=row.get("closed_by"),
            closed_at=row.get("closed_at"),
            actor=row.get("actor") or {},
        )

    def to_json(self, *, admin: bool = False) -> dict:
        """The run as the API shows it. ``admin=False`` (function key): ``error`` is the code's plain
        sentence; ``admin=True`` adds ``errorDetail`` (may name hosts, users, secret names)."""
        code = self.error_code
        if code is None and self.error:
            code = legacy_code(self.error)
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
            "actor": self.actor or None,
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


def run_key(started: datetime, batch_id: str) -> str:
    """The ledger RowKey of a run: inverted microseconds, so the newest run comes first."""
    micros = int(started.timestamp()) * 1_000_000 + started.microsecond
    return f"{_INVERT * 1000 - micros:016d}_{batch_id}"


def runs_table() -> StorageTable:
    from shared.tables import get_table_store

    return get_table_store().table(RUNS_TABLE)


def save_run(run: RunResult) -> None:
    """Write the run's ledger row as it is now (replacing the previous version)."""
    runs_table().upsert(run.to_entity(), replace=True)


def list_runs(club_id: str, limit: int = 50) -> list[RunResult]:
    """The club's latest runs, newest first."""
    out = []
    for row in runs_table().query(partition_key=club_id):
        out.append(RunResult.from_entity(club_id, row))
        if len(out) >= limit:
            break
    return out


def close_abandoned(club_id: str, *, by: str, lease_seconds: int, now: Clock = utc_now) -> list[str]:
    """Close the club's ``running`` ledger rows that started more than ``lease_seconds`` ago as
    ``abandoned``; returns their batch ids. Call while holding the club's lock.

    No live run is older than the lease (the lock expires after ``EXPORT_LOCK_SECONDS``, above
    ``functionTimeout``), so such a row belongs to a worker that died. Its files keep the
    ``uploaded`` flags written as the server confirmed each one. If it was a full load whose files
    all reached the server, the club's full load counts as done (the records it did not get to
    commit stay pending and go as changes): a dead worker never makes the next run a full load.
    """
    from shared.tables import Conflict

    runs = runs_table()
    at = now()
    cutoff = at - timedelta(seconds=lease_seconds)
    closed: list[str] = []
    for row in list(runs.query("status eq @s", parameters={"s": "running"}, partition_key=club_id)):
        run = RunResult.from_entity(club_id, row)
        batch = run.batch_id or "?"
        if batch == by or (run.started_at is not None and run.started_at > cutoff):
            continue
        confirmed = sum(1 for f in run.files if f.get("uploaded"))
        run.status, run.error_code, run.closed_by, run.closed_at = "abandoned", "run-abandoned", by, at
        run.error = (
            f"no end was recorded within the lock lease ({lease_seconds} s): the worker stopped; closed as "
            f"abandoned by run {by} at {at.isoformat()}; {confirmed} of {len(run.files)} file(s) confirmed on the server"
        )
        try:
            runs.update({**run.to_entity(), "RowKey": row["RowKey"]}, etag=row["_etag"], replace=True)
        except Conflict:
            continue  # changed meanwhile: not ours to close
        closed.append(batch)
        log.warning("export.abandoned club_id=%s batch=%s: %s", club_id, batch, run.error)
        if run.full_load and run.files and confirmed == len(run.files) and not full_load_done(club_id):
            mark_full_load_done(club_id, batch)
            log.warning(
                "club %s: the abandoned full load %s reached the server; the full load counts as done", club_id, batch
            )
    return closed
