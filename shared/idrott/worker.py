"""The export worker: one queue message, one club's export (bound to the queue trigger in
``functions/idrott.py``).

What each message becomes (the host completes the message when the function returns, and makes it
visible again after ``visibilityTimeout`` when it raises; after ``maxDequeueCount`` deliveries the
host moves it to ``<queue>-poison``):

==============================================  ==============================================
the message                                     outcome
==============================================  ==============================================
not a work item (not JSON, wrong fields)        copied to ``<queue>-poison`` at once, completed
                                                (``export.bad_work_item``): retrying cannot help
club unknown, disabled or not Swedish           night row ``skipped``, completed
tonight's run of the club already ended well    completed (a duplicate: nothing to do)
every export slot taken                         a copy is sent again, visible after a delay
                                                (:data:`DEFER_SECONDS` + jitter), completed
another run holds the club's lock               night row ``skipped``, completed
run ``succeeded`` / ``empty``                   night row so, ``lastOkNight`` advanced, completed
run ``failed``                                  night row ``failed`` (ledger row as always),
                                                **raises** :class:`ExportRunFailed`: retried,
                                                then poison
storage down before the run                     raises (retried, then poison)
==============================================  ==============================================
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

from shared.idrott.clock import Clock, local_date, utc_now

if TYPE_CHECKING:
    from shared.idrott.ledger import RunResult
    from shared.idrott.nights import NightStatus
    from shared.idrott.slots import Slot
    from shared.idrott.workitem import WorkItem

__all__ = ["DEFER_SECONDS", "ExportRunFailed", "handle_work_item"]

log = logging.getLogger(__name__)

#: How long a work item waits when every export slot is taken (plus up to 50 % jitter).
DEFER_SECONDS = 30


class ExportRunFailed(RuntimeError):
    """The club's run failed (recorded in the ledger and the roll call): let the host retry it."""


def handle_work_item(body: str | bytes, *, message_id: str = "", dequeue_count: int = 1, now: Clock = utc_now) -> str:
    """Handle one export-queue message; returns what happened (the table above), raises to retry."""
    from shared import clubs
    from shared.config import get_settings
    from shared.idrott import nights
    from shared.idrott.workitem import parse_work_item
    from shared.logs import log_context

    item = parse_work_item(body)
    if item is None:
        _poison_now(body, message_id)
        return "poisoned"
    settings = get_settings()
    night = item.night
    with log_context(club_id=item.club_id):
        club = clubs.get_club(item.club_id)
        if club is None or not club.enabled or club.country != "SE":
            why = "not registered" if club is None else "disabled" if not club.enabled else "not Swedish"
            log.warning("export.not_run club_id=%s: the club is %s", item.club_id, why)
            if night is not None:
                nights.record(night, item.club_id, "skipped", now=now, errorCode="club-not-exportable")
            return "not-exportable"
        if night is not None and nights.is_done(night, item.club_id):
            log.info("export.duplicate club_id=%s night=%s: already exported tonight", item.club_id, night)
            return "duplicate"
        slot = _acquire_slot(
            message_id or item.club_id, settings.IDROTTONLINE_EXPORT_CONCURRENCY, settings.EXPORT_LOCK_SECONDS, now
        )
        if slot is None:
            _defer(item, now)
            return "deferred"
        try:
            if night is not None:
                nights.record(night, item.club_id, "running", now=now, attempts=dequeue_count, messageId=message_id)
            from shared.idrott.export import export_club

            actor = {str(k): v for k, v in item.actor.items()} if item.actor else None
            result = export_club(club, trigger=item.reason, now=now, actor=actor)
        finally:
            from shared.idrott.slots import release_slot

            release_slot(slot, message_id or item.club_id)
        _record(item, result, dequeue_count, now)
        if result.status == "failed":
            raise ExportRunFailed(
                f"export of club {item.club_id} failed ({result.error_code}); attempt {dequeue_count}"
            )
        return result.status


def _acquire_slot(owner: str, capacity: int, lease: int, now: Clock) -> Slot | None:
    from shared.idrott.slots import acquire_slot

    return acquire_slot(owner, capacity, lease, now=now)


def _record(item: WorkItem, result: RunResult, attempts: int, now: Clock) -> None:
    from shared.idrott import nights

    if item.night is not None:
        nights.record(
            item.night,
            item.club_id,
            _night_status(result.status),
            now=now,
            attempts=attempts,
            batchId=result.batch_id,
            errorCode=result.error_code,
            heldBy=result.held_by,
        )
    if result.status in nights.TERMINAL:
        nights.mark_ok(item.club_id, item.night or local_date(now()))


def _night_status(status: str) -> NightStatus:
    if status in ("succeeded", "empty", "failed", "skipped"):
        return status  # type: ignore[return-value]
    return "failed"  # "running"/"abandoned" never come back from export_club; if they did, not ok


def _defer(item: WorkItem, now: Clock) -> None:
    from shared.idrott.fanout import export_queue

    delay = int(DEFER_SECONDS * (1 + random.random() / 2))
    again = item.model_copy(update={"deferrals": item.deferrals + 1})
    export_queue().send(again.to_json(), visibility_timeout=delay)
    log.info(
        "export.deferred club_id=%s: every export slot is taken; again in %d s (deferral %d)",
        item.club_id,
        delay,
        again.deferrals,
    )


def _poison_now(body: str | bytes, message_id: str) -> None:
    from shared.config import get_settings
    from shared.queues import get_queue_store, poison_name

    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    get_queue_store().queue(poison_name(get_settings().IDROTTONLINE_EXPORT_QUEUE)).send(text)
    log.error(
        "export.bad_work_item message_id=%s (%d bytes): not an export work item; moved to the poison queue",
        message_id,
        len(body),
    )
