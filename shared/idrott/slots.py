"""Export slots: at most ``IDROTTONLINE_EXPORT_CONCURRENCY`` clubs export at once, across instances.

RF's server is one endpoint for every club of the vendor, and its tolerance for concurrent SFTP
sessions per vendor is unknown; the queue trigger alone bounds concurrency per instance
(``batchSize + newBatchThreshold``), not in total. So a worker holds a slot for its run.

Table ``IdrottExportState``, ``PartitionKey="_slots"``, ``RowKey="000"…`` (one row per slot while
held): ``owner`` and ``expiresAt``. A slot is taken by insert-if-absent, or, once its lease has
expired (a worker that died), by an ETag-conditional replace, so two workers never hold one slot.
One query reads every held slot, so taking a free one costs two storage calls, and giving it back
one (a delete conditional on the ETag the take returned). The lease is ``EXPORT_LOCK_SECONDS``
(above ``functionTimeout``), like the club lock.

A worker that finds no free slot puts its work item back with a delay (:mod:`shared.idrott.worker`).
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import NamedTuple

from shared.idrott.clock import Clock, utc_now

__all__ = ["SLOTS_PARTITION", "Slot", "acquire_slot", "held_slots", "release_slot"]

log = logging.getLogger(__name__)

SLOTS_PARTITION = "_slots"  # not a club id (those start with a letter or digit)


class Slot(NamedTuple):
    """A slot taken: its row key and the ETag of the row we wrote (None if storage gave none)."""

    key: str
    etag: str | None


def _key(i: int) -> str:
    return f"{i:03d}"


def held_slots(*, now: Clock = utc_now) -> int:
    """How many slots are held by a live lease now."""
    from shared.idrott.state import state_table

    at = now()
    return sum(
        1
        for r in state_table().query(partition_key=SLOTS_PARTITION)
        if r.get("expiresAt") is not None and r["expiresAt"] > at
    )


def acquire_slot(owner: str, capacity: int, lease_seconds: int, *, now: Clock = utc_now) -> Slot | None:
    """Take a free slot of ``capacity`` for ``owner``; None when all are held."""
    from shared.idrott.state import state_table
    from shared.tables import Conflict

    t = state_table()
    at = now()
    held = {r["RowKey"]: r for r in t.query(partition_key=SLOTS_PARTITION)}
    entity = {
        "PartitionKey": SLOTS_PARTITION,
        "owner": owner,
        "acquiredAt": at,
        "expiresAt": at + timedelta(seconds=lease_seconds),
    }
    free = [_key(i) for i in range(capacity) if _key(i) not in held]
    expired = [k for k, r in held.items() if int(k) < capacity and (r.get("expiresAt") is None or r["expiresAt"] <= at)]
    random.shuffle(free)  # contenders spread over the free slots instead of racing for the first
    for key in free:
        try:
            return Slot(key, t.create({**entity, "RowKey": key}))
        except Conflict:
            continue  # another worker took it first
    for key in expired:
        try:
            etag = t.update({**entity, "RowKey": key}, etag=held[key]["_etag"], replace=True)
        except Conflict:
            continue
        log.warning("export slot %s: took over an expired lease of %s", key, held[key].get("owner"))
        return Slot(key, etag)
    return None


def release_slot(slot: Slot, owner: str) -> None:
    """Give the slot back if ``owner`` still holds it (otherwise, or on a storage error, its lease
    expires on its own): :func:`shared.idrott.state.delete_lease` on the slot's ETag."""
    from shared.idrott.state import delete_lease
    from shared.tables import StorageError

    try:
        if not delete_lease(SLOTS_PARTITION, slot.key, owner, slot.etag):
            log.info("export slot %s: taken over from %s meanwhile; left to its holder", slot.key, owner)
    except StorageError as exc:
        log.warning("export slot %s: could not release it (%s); its lease expires", slot.key, type(exc).__name__)
