"""A club's export state: the ``state`` row of ``IdrottExportState`` (the ``lock`` row beside it
is :mod:`shared.idrott.lock`).

``full_load_done`` says whether a full load has reached the server (then runs send changes
only); ``last_created_at`` is the CreatedAt the club's latest attempt reserved, so that every
attempt, failed ones included, has a strictly later one; ``last_batch_id`` / ``last_success_at``
name the latest successful run. The row advances only after every file of a run is on the server
(:func:`mark_run_succeeded`), before the records are committed: a worker that dies in between
never makes the next run a full load again.

``parts_possible`` says whether an upload since the last clean one may have left a ``.part`` file
of the club's in its folder: set by every attempt that may upload (:func:`reserve_created_at`),
cleared by a successful run whose upload left the folder clean (:func:`mark_run_succeeded`). Only
while it is set does an upload list the folder for stale files.

Two fields say how complete the club's dirty markers are (:mod:`shared.idrott.store`):

- ``markers_since``: set when the club's first full load starts (:func:`start_markers`). Before
  it, intake writes no dirty markers (the full load reads the whole club anyway, and its commit
  then costs one write per record instead of two); from then on, and once ``full_load_done``,
  intake writes a marker with every record (:func:`markers_on`).
- ``scan_needed``: records may be pending without a marker (a full load reached the server but
  its records are not all committed yet, or a worker died in between): the next run reads the
  whole club instead of the markers. Set with ``full_load_done`` by a run that read the whole club
  (:func:`mark_run_succeeded` with ``scan=True``, :func:`mark_full_load_done`), cleared by
  :func:`mark_records_committed` once its commit is done.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.idrott.clock import Clock, utc_now

if TYPE_CHECKING:
    from shared.tables_contract import StorageTable

__all__ = [
    "STATE_ROW",
    "STATE_TABLE",
    "delete_lease",
    "full_load_done",
    "mark_full_load_done",
    "mark_records_committed",
    "mark_run_succeeded",
    "markers_complete",
    "markers_on",
    "parts_possible",
    "read_state",
    "reserve_created_at",
    "start_markers",
    "state_table",
]

STATE_TABLE = "IdrottExportState"
STATE_ROW = "state"


def state_table() -> StorageTable:
    from shared.tables import get_table_store

    return get_table_store().table(STATE_TABLE)


def delete_lease(partition_key: str, row_key: str, owner: str, etag: str | None) -> bool:
    """Give back a lease row of this table that ``owner`` took (a club's lock, an export slot).
    With the ETag its take returned, one conditional delete; without one (``None``, or ``"*"``:
    taken, but storage gave no ETag), after reading that ``owner`` still holds it. False when the
    row is no longer ours (another holder took over our expired lease): it stays. A storage error
    is raised (the lease then expires on its own)."""
    from shared.tables import Conflict

    t = state_table()
    try:
        if etag and etag != "*":
            t.delete(partition_key, row_key, etag=etag)
            return True
        row = t.get(partition_key, row_key)
        if row is None:
            return True  # nothing left to give back
        if row.get("owner") != owner:
            return False
        t.delete(partition_key, row_key, etag=row["_etag"])
        return True
    except Conflict:
        return False


def read_state(club_id: str) -> dict:
    """The club's state row (``{}`` before its first run)."""
    return state_table().get(club_id, STATE_ROW) or {}


def full_load_done(club_id: str) -> bool:
    return bool(read_state(club_id).get("full_load_done"))


def reserve_created_at(club_id: str, started: datetime, *, last: datetime | None) -> datetime:
    """The attempt's CreatedAt (second precision): its start, or one second after ``last`` (the
    club's latest reserved one) if that is not earlier. Reserved at once: the next attempt's is
    strictly later, also when this one fails. Only an attempt that may upload reserves one, so the
    same write says that it may leave ``.part`` files behind (``parts_possible``)."""
    created_at = started.replace(microsecond=0)
    if last is not None and created_at <= last:
        created_at = last + timedelta(seconds=1)
    state_table().upsert(
        {"PartitionKey": club_id, "RowKey": STATE_ROW, "last_created_at": created_at, "parts_possible": True}
    )
    return created_at


def parts_possible(row: dict | None) -> bool:
    """Whether a ``.part`` file of the club's may be left in its upload folder (an attempt may have
    uploaded since the last run that left the folder clean): the next upload looks for stale ones.
    True when unknown (a row written before the field existed)."""
    return (row or {}).get("parts_possible") is not False


def markers_on(row: dict | None) -> bool:
    """Whether intake must write dirty markers, by the club's state row (module docstring)."""
    return bool(row and (row.get("full_load_done") or row.get("markers_since")))


def markers_complete(row: dict | None) -> bool:
    """Whether every pending record of the club has a dirty marker (a run may read only those)."""
    return bool(row and row.get("full_load_done") and not row.get("scan_needed"))


def start_markers(club_id: str, *, now: Clock = utc_now) -> None:
    """From now on intake writes dirty markers (called when a full load starts, before it reads)."""
    state_table().upsert({"PartitionKey": club_id, "RowKey": STATE_ROW, "markers_since": now()})


def mark_run_succeeded(
    club_id: str,
    batch_id: str,
    created_at: datetime,
    *,
    now: Clock = utc_now,
    scan: bool = False,
    folder_clean: bool = False,
) -> None:
    """Every file of the run is on the server: the full load is done, this run is the latest.
    ``scan``: the run read the whole club, so until its records are committed
    (:func:`mark_records_committed`) some may be pending without a marker. ``folder_clean``: the
    upload left no file of the club's but its own in the folder (``parts_possible`` cleared)."""
    entity: dict = {
        "PartitionKey": club_id,
        "RowKey": STATE_ROW,
        "full_load_done": True,
        "last_batch_id": batch_id,
        "last_success_at": now(),
        "last_created_at": created_at,
    }
    if scan:
        entity["scan_needed"] = True
    if folder_clean:
        entity["parts_possible"] = False
    state_table().upsert(entity)


def mark_records_committed(club_id: str) -> None:
    """The records of a run that read the whole club are committed: markers are complete again."""
    state_table().upsert({"PartitionKey": club_id, "RowKey": STATE_ROW, "scan_needed": False})


def mark_full_load_done(club_id: str, batch_id: str) -> None:
    """An abandoned full load whose files all reached the server counts as done (its records were
    not committed: the next run reads the whole club to find them)."""
    state_table().upsert(
        {
            "PartitionKey": club_id,
            "RowKey": STATE_ROW,
            "full_load_done": True,
            "full_load_batch_id": batch_id,
            "scan_needed": True,
        }
    )
