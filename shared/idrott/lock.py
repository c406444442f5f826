"""One export run per club at a time: the ``lock`` row of ``IdrottExportState``.

The row (``owner`` = the run's id, ``expires_at``) is taken by insert-if-absent; an expired lock
(``EXPORT_LOCK_SECONDS``, above ``functionTimeout``) is taken over by an ETag-conditional
replace, so of two contenders exactly one wins. A run that does not get it skips (no ledger row);
a run that dies holding it blocks the club until it expires.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.idrott.clock import Clock, utc_now
from shared.idrott.state import delete_lease, state_table

__all__ = ["LOCK_ROW", "LockHolder", "acquire_lock", "release_lock"]

log = logging.getLogger(__name__)

LOCK_ROW = "lock"


@dataclass
class LockHolder:
    owner: str
    expires_at: datetime | None


def acquire_lock(
    club_id: str, owner: str, seconds: int, *, now: Clock = utc_now
) -> tuple[str | None, LockHolder | None]:
    """Take the club's export lock for ``seconds``: ``(etag, None)``, the ETag of the row we wrote
    (``"*"`` if storage gave none), for :func:`release_lock`; ``(None, holder)`` if someone holds it."""
    from shared.tables import Conflict

    state = state_table()
    at = now()
    entity = {
        "PartitionKey": club_id,
        "RowKey": LOCK_ROW,
        "owner": owner,
        "acquired_at": at,
        "expires_at": at + timedelta(seconds=seconds),
    }
    for _ in range(3):
        try:
            return state.create(entity) or "*", None
        except Conflict:
            pass  # held, or an expired lease to take over
        row = state.get(club_id, LOCK_ROW)
        if row is None:
            continue  # released between our insert and read: try again
        expires = row.get("expires_at")
        if expires is not None and expires > at:
            return None, LockHolder(row.get("owner", "?"), expires)
        try:  # expired: take it over, but only if nobody else did first
            etag = state.update(entity, etag=row["_etag"], replace=True)
            log.warning("club %s: took over an expired export lock of run %s", club_id, row.get("owner"))
            return etag or "*", None
        except Conflict:
            row = state.get(club_id, LOCK_ROW) or {}
            return None, LockHolder(row.get("owner", "?"), row.get("expires_at"))
    return None, None


def release_lock(club_id: str, owner: str, etag: str | None = None) -> None:
    """Give the lock back if ``owner`` still holds it (otherwise, or on a storage error, it
    expires on its own): :func:`shared.idrott.state.delete_lease`, with the ``etag``
    :func:`acquire_lock` returned."""
    from shared.tables import StorageError

    try:
        if not delete_lease(club_id, LOCK_ROW, owner, etag):
            log.info("club %s: the export lock of run %s was taken over meanwhile; left to its holder", club_id, owner)
    except StorageError as exc:  # it expires by itself
        log.warning(
            "club %s: could not release the export lock (%s); it expires on its own", club_id, type(exc).__name__
        )
