"""Time on the Swedish side: one clock, one zone (pure, standard library only).

**The clock.** :func:`utc_now` is the only reader of the system clock in ``shared.idrott``. A
function that needs the current time takes ``now: Clock = utc_now`` and calls it (a test freezes
time by passing ``now=lambda: moment``) and hands ``now`` on to what it calls. The pure rules
(delta selection, LOK prognosis, the XML writer) never call a clock: their caller passes the value
they need (``today``, ``created_at``). The one default that reads it is a personnummer's century
(``normalize_personnummer(today=None)``: today in Sweden), so that intake validation works
without a context.

**The zone.** :data:`SWEDISH_TIMEZONE` is RF's calendar: the LOK-stöd half-years, the days and
ISO weeks of the LOK prognosis, the century of a 10-digit personnummer and "today" of an export
run. It is a constant, not the ``LOCAL_TIMEZONE`` setting: that one is NIF's calendar
(``Europe/Oslo`` by default), while RF's rules are Swedish whatever the deployment. Pure functions
take it as a ``timezone_name`` parameter that defaults to it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

__all__ = ["SWEDISH_TIMEZONE", "Clock", "local_date", "utc_now"]

#: RF's calendar (IANA name).
SWEDISH_TIMEZONE = "Europe/Stockholm"

#: What a function that needs the current time takes: returns an aware UTC datetime.
type Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, aware, in UTC: the default ``now`` everywhere."""
    return datetime.now(UTC)


def local_date(moment: datetime, timezone_name: str = SWEDISH_TIMEZONE) -> date:
    """The calendar date of an aware ``moment`` in ``timezone_name`` (Swedish by default)."""
    from zoneinfo import ZoneInfo

    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no calendar date: pass a timezone-aware one")
    return moment.astimezone(ZoneInfo(timezone_name)).date()
