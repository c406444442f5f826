"""The nightly fan-out: the timer enqueues one work item per enabled Swedish club, and returns.

The export itself runs in the queue-triggered worker (:mod:`shared.idrott.worker`), one club per
message, scaled out by the Functions host across instances. The timer's own work is small (two
storage calls and one queue message per club: ~1 000 clubs in well under a minute), so
``functionTimeout`` no longer bounds how many clubs a night can export.

- **Idempotent per club and night.** A club is enqueued only if its roll-call row for tonight
  (:func:`shared.idrott.nights.claim`) did not exist. A timer that fires twice (a lost singleton
  lease, a restart) finds the rows and sends nothing again. A row left ``queued`` without a
  ``messageId`` (the timer died between the claim and the send) is sent again by the next firing
  after :data:`RESEND_AFTER`.
- **One club's failure never stops the others**: an error for one club is logged
  (``export.enqueue_failed``) and the loop goes on; the timer fails at the end if any club could
  not be enqueued, so the failure is visible in the host's invocation log too.
- **Overdue clubs**: before enqueueing, every enabled club none of whose last
  ``IDROTTONLINE_OVERDUE_NIGHTS`` nights ended well is logged as ``export.overdue`` (an alert).

``POST /api/idrottonline/export`` (admin) enqueues every enabled club now with ``reason=manual``
(:func:`enqueue_all`): not deduplicated per night, and the club lock still keeps two runs of one
club apart.
"""

from __future__ import annotations

import logging
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
    for late in nights.overdue([c.club_id for c in enabled], night, settings.IDROTTONLINE_OVERDUE_NIGHTS):
        result.overdue.append(late.club_id)
        log.error(
            "export.overdue club_id=%s: no successful export for %d night(s) (last good night: %s)",
            late.club_id,
            late.nights,
            late.last_ok_night.isoformat() if late.last_ok_night else "never",
        )
    queue = export_queue()
    for club in enabled:
        try:
            _enqueue_for_night(queue, club, night, result, now)
        except Exception as exc:  # noqa: BLE001 - one club's failure never stops the others
            result.failed.append(club.club_id)
            log.error(
                "export.enqueue_failed club_id=%s night=%s: %s",
                club.club_id,
                night,
                redact(f"{type(exc).__name__}: {exc}"),
            )
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


def _enqueue_for_night(queue: WorkQueue, club: Club, night: date, result: FanOut, now: Clock) -> None:
    from shared.idrott import nights

    created, row = nights.claim(night, club.club_id, now=now)
    if not created:
        stale = (
            row is not None
            and row.get("status") == "queued"
            and not row.get("messageId")
            and row.get("queuedAt") is not None
            and now() - row["queuedAt"] >= RESEND_AFTER
        )
        if not stale:
            result.already.append(club.club_id)
            return
    message_id = _send(queue, club.club_id, "timer", night, now)
    nights.record(night, club.club_id, "queued", now=now, messageId=message_id)
    result.enqueued.append(club.club_id)


def enqueue_all(*, now: Clock = utc_now) -> FanOut:
    """Enqueue every enabled Swedish club now (``reason=manual``); not deduplicated per night. Each
    work item names who asked (:func:`shared.auth.attribution`), for the run's ledger row."""
    from shared import clubs
    from shared.auth import attribution

    result = FanOut(None)
    queue = export_queue()
    actor = attribution()
    for club in clubs.list_enabled_clubs("SE"):
        try:
            _send(queue, club.club_id, "manual", None, now, actor)
            result.enqueued.append(club.club_id)
        except Exception as exc:  # noqa: BLE001
            result.failed.append(club.club_id)
            log.error("export.enqueue_failed club_id=%s: %s", club.club_id, redact(f"{type(exc).__name__}: {exc}"))
    return result
