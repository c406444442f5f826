"""The nightly roll call: every enabled Swedish club ends each night with a row that says how it went.

Table ``IdrottExportNights``:

- ``PartitionKey=<night>`` (``YYYY-MM-DD``, RF's calendar), ``RowKey=<clubId>``: the club's
  status that night: ``queued`` (work item sent), ``running``, ``succeeded``, ``empty``,
  ``failed``, ``skipped`` (another run held the lock, or the club is no longer enabled), with
  ``attempts``, ``messageId``, ``batchId``, ``errorCode`` and times. The timer creates it by
  insert-if-absent (:func:`claim`), which is what makes enqueueing idempotent per club and night:
  a timer that fires twice finds the row and sends nothing.
- ``PartitionKey="clubs"``, ``RowKey=<clubId>``: ``firstNight`` (the first night the club was
  rolled) and ``lastOkNight`` (the last night, or manual run, that ended ``succeeded`` or
  ``empty``). :func:`overdue` reads them: a club none of whose last ``IDROTTONLINE_OVERDUE_NIGHTS``
  nights ended well is logged by the timer as ``export.overdue`` and listed by the admin route.

The ledger (:mod:`shared.idrott.ledger`) still holds one row per run with its files; this table
holds one row per club and night, including the clubs that never got to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from shared.idrott.clock import Clock, utc_now

if TYPE_CHECKING:
    from shared.tables_contract import Row, StorageTable

__all__ = [
    "NIGHTS_TABLE",
    "TERMINAL",
    "NightStatus",
    "Overdue",
    "claim",
    "club_rows",
    "is_done",
    "list_night",
    "mark_ok",
    "overdue",
    "record",
]

NIGHTS_TABLE = "IdrottExportNights"
CLUBS_PARTITION = "clubs"

NightStatus = Literal["queued", "running", "succeeded", "empty", "failed", "skipped"]
#: A night row in one of these states needs no further work that night.
TERMINAL: frozenset[str] = frozenset({"succeeded", "empty"})


def _table() -> StorageTable:
    from shared.tables import get_table_store

    return get_table_store().table(NIGHTS_TABLE)


def claim(night: date, club_id: str, *, now: Clock = utc_now, first: bool = True) -> tuple[bool, Row | None]:
    """Create the club's row for ``night`` as ``queued``; ``(False, existing row)`` if it exists.
    ``first``: the club may have no ``clubs`` row yet (its first roll call): insert one with
    ``firstNight``. The timer passes False for the clubs :func:`club_rows` found, so a night costs
    no such write for them."""
    t = _table()
    at = now()
    created = t.insert(
        {"PartitionKey": night.isoformat(), "RowKey": club_id, "status": "queued", "queuedAt": at, "updatedAt": at}
    )
    if created:
        if first:
            t.insert({"PartitionKey": CLUBS_PARTITION, "RowKey": club_id, "firstNight": night.isoformat()})
        return True, None
    return False, t.get(night.isoformat(), club_id)


def record(night: date, club_id: str, status: NightStatus, *, now: Clock = utc_now, **fields: object) -> None:
    """Merge the club's status for ``night`` (and the given fields, camelCase) into its row."""
    _table().upsert(
        {"PartitionKey": night.isoformat(), "RowKey": club_id, "status": status, "updatedAt": now(), **fields}
    )


def is_done(night: date, club_id: str) -> bool:
    """Whether the club's run for ``night`` already ended ``succeeded`` or ``empty``."""
    row = _table().get(night.isoformat(), club_id)
    return row is not None and row.get("status") in TERMINAL


def mark_ok(club_id: str, night: date) -> None:
    """Remember that the club's export ended well on ``night`` (never moves backwards)."""
    from shared.tables import Conflict

    t = _table()
    for _ in range(3):
        row = t.get(CLUBS_PARTITION, club_id)
        entity = {"PartitionKey": CLUBS_PARTITION, "RowKey": club_id, "lastOkNight": night.isoformat()}
        if row is None:
            if t.insert({**entity, "firstNight": night.isoformat()}):
                return
            continue
        if (row.get("lastOkNight") or "") >= night.isoformat():
            return
        try:
            t.update(entity, etag=row["_etag"])
            return
        except Conflict:
            continue


def list_night(night: date) -> list[Row]:
    """The roll call of ``night``, by club id."""
    return sorted(_table().query(partition_key=night.isoformat()), key=lambda r: r["RowKey"])


@dataclass(frozen=True)
class Overdue:
    club_id: str
    last_ok_night: date | None
    first_night: date | None
    nights: int  # nights since the last good one (or since the first roll call)


def club_rows() -> dict[str, Row]:
    """Every club's ``clubs`` row (``firstNight``, ``lastOkNight``), by club id."""
    return {r["RowKey"]: r for r in _table().query(partition_key=CLUBS_PARTITION)}


def overdue(club_ids: list[str], night: date, limit: int, *, rows: dict[str, Row] | None = None) -> list[Overdue]:
    """The clubs among ``club_ids`` none of whose ``limit`` nights before ``night`` ended well
    (``rows``: :func:`club_rows`, read now unless given).

    A club rolled for the first time fewer than ``limit`` nights ago is not overdue yet; one never
    rolled at all (registered today) neither.
    """
    rows = club_rows() if rows is None else rows
    out = []
    for club_id in club_ids:
        row = rows.get(club_id)
        if row is None:
            continue
        last_ok = _date(row.get("lastOkNight"))
        first = _date(row.get("firstNight"))
        since = last_ok if last_ok is not None else (first - timedelta(days=1) if first else None)
        if since is None:
            continue
        nights = (night - since).days - 1  # the nights strictly between the good one and tonight
        if nights >= limit:
            out.append(Overdue(club_id, last_ok, first, nights))
    return out


def _date(value: object) -> date | None:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.date()
    return None
