"""One export run of a club: lock → select → write files → XSD → SFTP → advance state → ledger.

One run per club, never two at once (:mod:`shared.idrott.lock`): a run that finds the lock held
logs "skipped: ... holds the export lock" and returns ``status="skipped"`` without a ledger row.

The exported state (``exported_hash`` of each record, the dirty markers, ``full_load_done``)
advances only after **every** file of the run is on the server: first the club's state row
(:mod:`shared.idrott.state`), then the records (:meth:`shared.idrott.store.ClubRecords.commit`:
one batched write per record on a full load), so a worker that dies in between never makes the
next run a full load again; a run that read the whole club leaves ``scan_needed`` set until its
records are committed, so after such a death the next run reads the whole club again and sends
what was not committed. A full load switches intake's dirty markers on before it reads
(:func:`shared.idrott.state.start_markers`). The selection is spooled to disk
(:mod:`shared.idrott.selection`): memory does not grow with the club. A failure anywhere (writing, XSD, SFTP, storage) leaves the records
untouched and records ``status="failed"`` with an error code in the ledger
(:mod:`shared.idrott.ledger`); the next run selects the same records again (same ids: harmless for
IdrottOnline).

**The SFTP login overlaps the run's own work**: a delta run with dirty markers opens its upload's
connection ahead (:func:`_connect_ahead`), so the server's login delay passes while it reads its
records and writes and checks its files; the connection is closed unused when nothing turns out
to be sendable or the run fails first.

**A record that cannot be sent** (:mod:`shared.idrott.files`) is skipped: left out of the files,
reported (ledger ``skipped``, log line ``export.record_skipped``, preview), kept pending (its
dirty marker stays), and the others go.

The preview is :mod:`shared.idrott.preview`; the timer fans out (:mod:`shared.idrott.fanout`) and the
queue worker (:mod:`shared.idrott.worker`) calls :func:`export_club` for one club per message.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from shared.idrott.clock import Clock, local_date, utc_now
from shared.idrott.error_codes import error_code, redact
from shared.idrott.files import build_files, club_export_info, name_tag, own_stale_part
from shared.idrott.ledger import MAX_SKIPPED_LISTED, RunResult, RunStatus, close_abandoned, save_run
from shared.idrott.lock import acquire_lock, release_lock
from shared.idrott.state import (
    mark_records_committed,
    mark_run_succeeded,
    markers_complete,
    markers_on,
    parts_possible,
    read_state,
    reserve_created_at,
    start_markers,
)

if TYPE_CHECKING:
    from shared.clubs import Club
    from shared.config import Settings
    from shared.idrott.selection import ClubSelection
    from shared.idrott.store import ClubRecords
    from shared.idrott.xmlwriter import FileInfo
    from shared.sftp import Connecting, UploadedFile, UploadReport
    from shared.tables_contract import Row

__all__ = ["export_club", "new_batch_id"]

log = logging.getLogger(__name__)

_DIGIT_RUN = re.compile(r"\d{6}[-+]?\d{4}")

#: A delta run with more dirty markers than this connects when its files are ready, as a full load
#: does: its preparation takes long enough that the login's second no longer matters, and the
#: connection would idle through it.
CONNECT_AHEAD_MAX_MARKERS = 1_000


def new_batch_id() -> str:
    """A UUID4 that contains no digit run a personnummer redactor would blank out of log lines
    (``…821639-7801…``): the BatchId must stay searchable in logs."""
    from shared.logs import redact as redact_log

    while True:
        value = str(uuid.uuid4())
        if not _DIGIT_RUN.search(value) and redact_log(value) == value:
            return value


def export_club(
    club_or_id: Club | str,
    *,
    trigger: str = "manual",
    now: Clock = utc_now,
    actor: dict[str, str] | None = None,
) -> RunResult:
    """Run one export for a club now. Never raises for a run failure: see ``RunResult.status``.
    ``actor``: who asked, for the ledger (default: the HTTP caller, if any)."""
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
        etag, holder = acquire_lock(club_id, owner, settings.EXPORT_LOCK_SECONDS, now=now)
        if not etag:
            until = holder.expires_at.isoformat() if holder and holder.expires_at else "?"
            who = holder.owner if holder else "?"
            log.info("export.skipped club_id=%s: run %s holds the export lock until %s", club_id, who, until)
            return RunResult(club_id, "skipped", trigger=trigger, held_by=who)
        try:
            return _run_locked(club, trigger=trigger, today=local_date(now()), settings=settings, now=now, actor=actor)
        finally:
            release_lock(club_id, owner, etag)


def _run_locked(
    club: Club, *, trigger: str, today: date, settings: Settings, now: Clock, actor: dict[str, str] | None
) -> RunResult:
    from shared.auth import attribution
    from shared.idrott.store import ClubRecords

    started = now()
    batch_id = new_batch_id()
    who = dict(actor) if actor is not None else attribution()
    result = RunResult(club.club_id, "running", batch_id=batch_id, trigger=trigger, started_at=started, actor=who)
    t0 = time.monotonic()
    try:
        close_abandoned(club.club_id, by=batch_id, lease_seconds=settings.EXPORT_LOCK_SECONDS, now=now)
        state = read_state(club.club_id)
        result.full_load = not state.get("full_load_done")
        records = ClubRecords(club.club_id, now=now)
        # the state row read above decides a scan: only this run writes full_load_done and
        # scan_needed while it holds the lock (start_markers sets markers_since only)
        scan = result.full_load or not markers_complete(state)
        markers = None if scan else records.dirty_markers()
        if scan or markers:
            result.status = _select_and_send(
                club, result, records, state, scan=scan, markers=markers, today=today, settings=settings, now=now
            )
        else:
            result.status = "empty"  # no dirty marker: nothing changed since the last run
    except Exception as exc:  # noqa: BLE001 - recorded in the ledger, never stops other clubs
        result.status = "failed"
        result.error_code = error_code(exc)
        result.error = redact(f"{type(exc).__name__}: {exc}")
        log.error(
            "export.failed club_id=%s batch=%s code=%s: %s", club.club_id, batch_id, result.error_code, result.error
        )
    result.finished_at = now()
    try:
        save_run(result)
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


def _select_and_send(
    club: Club,
    result: RunResult,
    records: ClubRecords,
    state: dict,
    *,
    scan: bool,
    markers: list[Row] | None,
    today: date,
    settings: Settings,
    now: Clock,
) -> RunStatus:
    """A run that may send: reserve its CreatedAt, select, then :func:`_send`. A delta run (dirty
    ``markers`` read) logs in to the SFTP server meanwhile (:func:`_connect_ahead`)."""
    assert result.started_at is not None and result.batch_id is not None
    connecting = _connect_ahead(club, settings) if markers and len(markers) <= CONNECT_AHEAD_MAX_MARKERS else None
    try:
        # CreatedAt (second precision) is kept strictly increasing per club, failed attempts
        # included; the attempt tag (from the BatchId) makes every attempt's file names its own
        created_at = reserve_created_at(club.club_id, result.started_at, last=state.get("last_created_at"))
        if result.full_load and not markers_on(state):
            start_markers(club.club_id, now=now)  # from now on intake marks what it writes
        sel = records.select(full_load=result.full_load, today=today, scan=scan, markers=markers)
        try:
            status = _send(
                club,
                result,
                sel,
                records,
                batch_id=result.batch_id,
                created_at=created_at,
                settings=settings,
                now=now,
                connecting=connecting,
                look_for_stale=parts_possible(state),
            )
            if sel.scan and (status == "succeeded" or state.get("full_load_done")):
                mark_records_committed(club.club_id)  # committed: every pending record has a marker again
            return status
        finally:
            sel.close()
    finally:
        if connecting is not None:
            connecting.close()  # unused (nothing to send, or the run failed first) or done with


def _send(
    club: Club,
    result: RunResult,
    sel: ClubSelection,
    records: ClubRecords,
    *,
    batch_id: str,
    created_at: datetime,
    settings: Settings,
    now: Clock,
    connecting: Connecting | None = None,
    look_for_stale: bool = True,
) -> RunStatus:
    """Write, validate and upload the selection's files, then advance the state and commit the
    records; the run's status (``empty`` when nothing was sent). ``connecting``: the upload's
    connection, opened ahead (:func:`_connect_ahead`); ``look_for_stale``: an earlier attempt may
    have left ``.part`` files (:func:`shared.idrott.state.parts_possible`)."""
    from shared.idrott.selection import leave_out

    if sel.empty:
        records.commit(sel)  # clears markers of records that turned out unchanged
        return "empty"
    with tempfile.TemporaryDirectory(prefix="idrott-export-") as tmp:
        directory = Path(tmp)
        built = build_files(club, sel, directory, batch_id=batch_id, created_at=created_at, tag=name_tag(batch_id))
        leave_out(sel, built.skipped)
        result.skipped, result.skipped_count = built.skipped, len(built.skipped)
        _log_skipped(club.club_id, batch_id, built.skipped)
        result.persons = len(sel.persons)
        result.activities = len(sel.activities)
        result.deletes = len(sel.deletes)
        if not built.files:  # every selected record was skipped: they stay pending
            records.commit(sel)
            return "empty"
        report = _upload(club, result, built.files, directory, settings, connecting, look_for_stale=look_for_stale)
    # every file is on the server. The club's state first: a worker that dies after this never
    # makes the next run a full load (and, after a run that read the whole club, the next one reads
    # it again to find what was not committed); then the records (a death before this line leaves
    # them pending: they go again, same ids, harmless)
    mark_run_succeeded(club.club_id, batch_id, created_at, now=now, scan=sel.scan, folder_clean=report.clean)
    records.commit(sel)
    return "succeeded"


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


def _connect_ahead(club: Club, settings: Settings) -> Connecting:
    """Start the upload's SFTP connection now, in a thread of its own, so the server's login delay
    (a second or two for RF's) passes while the run reads its records and writes and checks its
    files (:class:`shared.sftp.Connecting`). Only a delta run with dirty markers (at most
    :data:`CONNECT_AHEAD_MAX_MARKERS`) does this: it has something to send, and little to prepare,
    so the connection waits only briefly. A full load or a scan reads the whole club first, and
    connects when its files are ready."""
    from shared import sftp  # lazy: paramiko

    return sftp.Connecting(club.sftp_target(settings.IDROTTONLINE_REMOTE_DIR), settings=settings)


def _upload(
    club: Club,
    result: RunResult,
    infos: list[FileInfo],
    directory: Path,
    settings: Settings,
    connecting: Connecting | None = None,
    *,
    look_for_stale: bool = True,
) -> UploadReport:
    """Upload the run's files; each file's ``uploaded`` goes to the ledger as the server confirms it.
    ``look_for_stale``: first remove the club's own ``.part`` files an earlier attempt left."""
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
    save_run(result)  # the run's first ledger row: running, with its planned files, none confirmed yet
    by_name = {f["name"]: f for f in result.files}

    def confirmed(done: UploadedFile) -> None:
        by_name[done.name]["uploaded"] = True
        try:
            save_run(result)
        except Exception as exc:  # noqa: BLE001 - the run's last ledger write records it
            log.warning(
                "club %s: could not record that %s is on the server (%s)", club.club_id, done.name, type(exc).__name__
            )

    info = club_export_info(club)
    stale = own_stale_part(info.application_id, info.rf_association_number)
    target = club.sftp_target(settings.IDROTTONLINE_REMOTE_DIR)

    def own_stale(name: str) -> bool:
        return stale.fullmatch(name) is not None

    return sftp.upload_files(
        target,
        [(directory / i.name, i.name) for i in infos],
        on_uploaded=confirmed,
        stale=own_stale if look_for_stale else None,
        opened=connecting,
    )
