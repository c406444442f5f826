"""A club's export state: the ``state`` row of ``IdrottExportState`` (the ``lock`` row beside it
is :mod:`shared.idrott.lock`).

``full_load_done`` says whether a full load has reached the server (then runs send changes
only); ``last_created_at`` is the CreatedAt the club's latest attempt reserved, so that every
attempt, failed ones included, has a strictly later one; ``last_batch_id`` / ``last_success_at``
name the latest successful run. The row advances only after every file of a run is on the server
(:func:`mark_run_succeeded`), before the records are committed: a worker that dies in between
never makes the next run a full load again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.idrott.clock import Clock, utc_now

if TYPE_CHECKING:
    from shared.tables_contract import StorageTable

__all__ = [
    "STATE_TABLE",
    "full_load_done",
    "mark_full_load_done",
    "mark_run_succeeded",
    "read_state",
    "reserve_created_at",
    "state_table",
]

STATE_TABLE = "IdrottExportState"
STATE_ROW = "state"


def state_table() -> StorageTable:
    from shared.tables import get_table_store

    return get_table_store().table(STATE_TABLE)


def read_state(club_id: str) -> dict:
    """The club's state row (``{}`` before its first run)."""
    return state_table().get(club_id, STATE_ROW) or {}


def full_load_done(club_id: str) -> bool:
    return bool(read_state(club_id).get("full_load_done"))


def reserve_created_at(club_id: str, started: datetime, *, last: datetime | None) -> datetime:
    """The attempt's CreatedAt (second precision): its start, or one second after ``last`` (the
    club's latest reserved one) if that is not earlier. Reserved at once: the next attempt's is
    strictly later, also when this one fails."""
    created_at = started.replace(microsecond=0)
    if last is not None and created_at <= last:
        created_at = last + timedelta(seconds=1)
    state_table().upsert({"PartitionKey": club_id, "RowKey": STATE_ROW, "last_created_at": created_at})
    return created_at


def mark_run_succeeded(club_id: str, batch_id: str, created_at: datetime, *, now: Clock = utc_now) -> None:
    """Every file of the run is on the server: the full load is done, this run is the latest."""
    state_table().upsert(
        {
            "PartitionKey": club_id,
            "RowKey": STATE_ROW,
            "full_load_done": True,
            "last_batch_id": batch_id,
            "last_success_at": now(),
            "last_created_at": created_at,
        }
    )


def mark_full_load_done(club_id: str, batch_id: str) -> None:
    """An abandoned full load whose files all reached the server counts as done."""
    state_table().upsert(
        {"PartitionKey": club_id, "RowKey": STATE_ROW, "full_load_done": True, "full_load_batch_id": batch_id}
    )
