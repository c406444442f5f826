"""The nightly fan-out: the timer enqueues one work item per enabled Swedish club, and returns.

The export itself runs in the queue-triggered worker (:mod:`shared.idrott.worker`), one club per
message, scaled out by the Functions host across instances. The timer's own work is small (two
storage calls and one queue message per club, :data:`FANOUT_THREADS` clubs at a time), so
``functionTimeout`` no longer bounds how many clubs a night can export.

- **Idempotent per club and night.** A club is enqueued only if its roll-call row for tonight
  (:func:`shared.idrott.nights.claim`) did not exist. A timer that fires twice (a lost singleton
  lease, a restart) finds the rows and sends nothing again. A row left ``queued`` without a
  ``messageId`` (the timer died between the claim and the send) is sent again by the next firing
  after :data:`RESEND_AFTER`.
- **One club's failure never stops the others**: an error for one club is logged
  (``export.enqueue_failed``) and the others go on; the timer fails at the end if any club could
  not be enqueued, so the failure is visible in the host's invocation log too.
- **Overdue clubs**: before enqueueing, every enabled club none of whose last
  ``IDROTTONLINE_OVERDUE_NIGHTS`` nights ended well is logged as ``export.overdue`` (an alert).

``POST /api/idrottonline/export`` (admin) enqueues every enabled club now with ``reason=manual``
(:func:`enqueue_all`): not deduplicated per night, and the club lock still keeps two runs of one
club apart.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from shared.idrott.clock import Clock, local_date, utc_now
from shared.idrott.error_codes import redact
from shared.idrott.workitem import Reason, WorkItem

if TYPE_CHECKING:
    from shared.clubs import Club
    from shared.queues import WorkQueue

__all__ = ["RESEND_AFTER", "FanOut", "enqueue_all", "export_queue", "fan_out"]

log = logging.getLogger(__name__)

#: A roll-call row still ``queued`` without a message id this long after its claim is sent again.
RESEND_AFTER = timedelta(minutes=10)
#: Clubs enqueued at once. A club costs three storage round trips (claim, message, record), so
#: 8 at once put ~1 000 writes/s on the night's roll-call partition, half of Table Storage's
#: 2 000 entities/s per partition; 100 000 clubs then fit well inside ``functionTimeout``.
FANOUT_THREADS = 8


@dataclass
class FanOut:
    night: date | None
    enqueued: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # rolled for this night before
    failed: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)


class EnqueueFailed(RuntimeError):
    """Some clubs could not be enqueued (each is logged as ``export.enqueue_failed``)."""


def export_queue() -> WorkQueue:
    from shared.config import get_settings
    from shared.queues import get_queue_store

    return get_queue_store().queue(get_settings().IDROTTONLINE_EXPORT_QUEUE)


def _send(
    queue: WorkQueue, club_id: str, reason: Reason, night: date | None, now: Clock, actor: dict[str, str] | None = None
) -> str:
    item = WorkItem.model_validate(
        {"club_id": club_id, "reason": reason, "night": night, "requested_at": now(), "actor": actor or None}
    )
    return queue.send(item.to_json())


def fan_out(timer: Any = None, *, now: Clock = utc_now) -> FanOut:
    """Timer entry point: roll tonight's call and enqueue every enabled Swedish club not yet on it."""
    from shared import clubs
    from shared.config import get_settings
    from shared.idrott import nights

    if timer is not None and getattr(timer, "past_due", False):
        log.warning("IdrottOnline export timer is past due (missed schedule); enqueueing now")
    settings = get_settings()
    night = local_date(now())
    enabled = clubs.list_enabled_clubs("SE")
    result = FanOut(night)
    known = nights.club_rows()
    for late in nights.overdue([c.club_id for c in enabled], night, settings.IDROTTONLINE_OVERDUE_NIGHTS, rows=known):
        result.overdue.append(late.club_id)
        log.error(
            "export.overdue club_id=%s: no successful export for %d night(s) (last good night: %s)",
            late.club_id,
            late.nights,
            late.last_ok_night.isoformat() if late.last_ok_night else "never",
        )
    queue = export_queue()
    for club, outcome in _for_each_club(
        enabled, lambda club: _enqueue_for_night(queue, club, night, now, first=club.club_id not in known)
    ):
        if isinstance(outcome, Exception):
            result.failed.append(club.club_id)
            log.error(
                "export.enqueue_failed club_id=%s night=%s: %s",
                club.club_id,
                night,
                redact(f"{type(outcome).__name__}: {outcome}"),
            )
        elif outcome:
            result.enqueued.append(club.club_id)
        else:
            result.already.append(club.club_id)
    log.info(
        "IdrottOnline export night %s: %d club(s) enqueued, %d already rolled, %d failed to enqueue, %d overdue",
        night,
        len(result.enqueued),
        len(result.already),
        len(result.failed),
        len(result.overdue),
    )
    if result.failed:
        raise EnqueueFailed(f"{len(result.failed)} club(s) could not be enqueued for night {night}")
    return result


def _for_each_club[T](clubs: Sequence[Club], work: Callable[[Club], T]) -> list[tuple[Club, T | Exception]]:
    """``work(club)`` for every club, :data:`FANOUT_THREADS` at a time (each in a copy of the
    caller's context, so log lines keep the invocation's fields); ``(club, result or the exception
    it raised)`` in the clubs' order. One club's failure never stops the others."""

    def guarded(club: Club) -> T | Exception:
        try:
            return work(club)
        except Exception as exc:  # noqa: BLE001 - reported per club by the caller
            return exc

    with ThreadPoolExecutor(max_workers=FANOUT_THREADS, thread_name_prefix="fanout") as pool:
        futures = [pool.submit(contextvars.copy_context().run, guarded, club) for club in clubs]
        return [(club, f.result()) for club, f in zip(clubs, futures, strict=True)]


def _enqueue_for_night(queue: WorkQueue, club: Club, night: date, now: Clock, *, first: bool) -> bool:
    """Claim the club's roll-call row for the night and send its work item; ``False`` if the
    club was rolled already (and its item sent). ``first``: the club had no ``clubs`` row when the
    timer read them (:func:`shared.idrott.nights.claim`)."""
    from shared.idrott import nights

    created, row = nights.claim(night, club.club_id, now=now, first=first)
    if not created:
        stale = (
            row is not None
            and row.get("status") == "queued"
            and not row.get("messageId")
            and row.get("queuedAt") is not None
            and now() - row["queuedAt"] >= RESEND_AFTER
        )
        if not stale:
            return False
    message_id = _send(queue, club.club_id, "timer", night, now)
    nights.record(night, club.club_id, "queued", now=now, messageId=message_id)
    return True


def enqueue_all(*, now: Clock = utc_now) -> FanOut:
    """Enqueue every enabled Swedish club now (``reason=manual``); not deduplicated per night. Each
    work item names who asked (:func:`shared.auth.attribution`), for the run's ledger row."""
    from shared import clubs
    from shared.auth import attribution

    result = FanOut(None)
    queue = export_queue()
    actor = attribution()
    enabled = clubs.list_enabled_clubs("SE")
    for club, outcome in _for_each_club(enabled, lambda club: _send(queue, club.club_id, "manual", None, now, actor)):
        if isinstance(outcome, Exception):
            result.failed.append(club.club_id)
            log.error(
                "export.enqueue_failed club_id=%s: %s", club.club_id, redact(f"{type(outcome).__name__}: {outcome}")
            )
        else:
            result.enqueued.append(club.club_id)
    return result
