"""Admin HTTP handlers of the export fan-out: enqueue every club now, the nightly roll call,
overdue clubs, and the poison queue (bound in ``functions/idrott.py``, admin key)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from shared.http import ApiRequest, ApiResponse, json_response
from shared.problems import FieldError, validation_problem

__all__ = ["get_night", "get_overdue", "get_poison", "post_export_all", "post_poison_requeue"]


def post_export_all(req: ApiRequest) -> ApiResponse:
    """Enqueue every enabled Swedish club now: 202 with the clubs (the runs happen in the worker)."""
    from shared.idrott.fanout import enqueue_all

    done = enqueue_all()
    return json_response(
        {"enqueued": len(done.enqueued), "clubs": done.enqueued, "failed": done.failed},
        status=202 if not done.failed else 207,
    )


def _night(req: ApiRequest) -> date:
    raw = req.route_param("night")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        raise validation_problem([FieldError("night", "must be a date YYYY-MM-DD")], "Invalid night.")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise validation_problem([FieldError("night", "is not a calendar date")], "Invalid night.") from None


def get_night(req: ApiRequest) -> dict[str, Any]:
    """The roll call of one night: each enabled club's row, and the enabled clubs without one."""
    from shared import clubs
    from shared.idrott import nights

    night = _night(req)
    rows = nights.list_night(night)
    seen = {r["RowKey"] for r in rows}
    return {
        "night": night.isoformat(),
        "clubs": [_night_row(r) for r in rows],
        "notRolled": sorted(c.club_id for c in clubs.list_enabled_clubs("SE") if c.club_id not in seen),
    }


def _night_row(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("status", "attempts", "messageId", "batchId", "errorCode", "heldBy", "queuedAt", "updatedAt")
    return {"clubId": row["RowKey"], **{k: row[k] for k in keep if row.get(k) is not None}}


def get_overdue(req: ApiRequest) -> dict[str, Any]:
    """Enabled clubs none of whose last ``IDROTTONLINE_OVERDUE_NIGHTS`` nights ended well."""
    from shared import clubs
    from shared.config import get_settings
    from shared.idrott import nights
    from shared.idrott.clock import local_date, utc_now

    limit = get_settings().IDROTTONLINE_OVERDUE_NIGHTS
    night = local_date(utc_now())
    late = nights.overdue([c.club_id for c in clubs.list_enabled_clubs("SE")], night, limit)
    return {
        "night": night.isoformat(),
        "overdueNights": limit,
        "clubs": [
            {
                "clubId": o.club_id,
                "nightsWithoutSuccess": o.nights,
                "lastOkNight": o.last_ok_night.isoformat() if o.last_ok_night else None,
                "firstNight": o.first_night.isoformat() if o.first_night else None,
            }
            for o in late
        ],
    }


def get_poison(req: ApiRequest) -> dict[str, Any]:
    from shared.idrott.poison import list_poison

    return list_poison()


def post_poison_requeue(req: ApiRequest) -> dict[str, Any]:
    """Requeue the poison items, or only those of ``?clubId=`` (repeat the parameter or comma-separate)."""
    from shared.clubs import CLUB_ID_PATTERN
    from shared.idrott.poison import requeue_poison

    wanted = [c for c in (req.params.get("clubId") or "").split(",") if c]
    bad = [c for c in wanted if not re.fullmatch(CLUB_ID_PATTERN, c)]
    if bad:
        raise validation_problem([FieldError("clubId", "must be club ids separated by commas")], "Invalid clubId.")
    return requeue_poison(wanted)
