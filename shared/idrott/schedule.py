"""The export timer: every enabled Swedish club, one after the other; one club's failure (even
one that cannot start, e.g. storage down for the lock) is logged and recorded, and the next club
runs. Never raises for a club (the timer would not retry anyway): alert on ``export.failed`` log
lines or ledger rows with ``status=failed``.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.idrott.clock import Clock, utc_now
from shared.idrott.error_codes import error_code, redact
from shared.idrott.export import export_club
from shared.idrott.ledger import RunResult

__all__ = ["run_scheduled"]

log = logging.getLogger(__name__)


def run_scheduled(timer: Any = None, *, now: Clock = utc_now) -> list[RunResult]:
    """Timer entry point: export every enabled Swedish club, one after the other. ``timer``: the
    trigger's ``TimerRequest`` (a past-due one is logged and runs normally)."""
    from shared.clubs import list_enabled_clubs

    if timer is not None and getattr(timer, "past_due", False):
        log.warning("IdrottOnline export timer is past due (missed schedule); running once now")
    clubs = list_enabled_clubs("SE")
    log.info("IdrottOnline export: %d enabled club(s)", len(clubs))
    results = []
    for club in clubs:
        try:
            results.append(export_club(club, trigger="timer", now=now))
        except Exception as exc:  # noqa: BLE001 - e.g. storage down for the lock: next club
            log.error(
                "export.failed club_id=%s: could not start: %s", club.club_id, redact(f"{type(exc).__name__}: {exc}")
            )
            results.append(
                RunResult(club.club_id, "failed", trigger="timer", error=type(exc).__name__, error_code=error_code(exc))
            )
    summary = {s: sum(1 for r in results if r.status == s) for s in ("succeeded", "empty", "failed", "skipped")}
    log.info("IdrottOnline export finished: %s", ", ".join(f"{k}={v}" for k, v in summary.items()))
    return results
