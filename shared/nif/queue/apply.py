"""Changes into projection rows: the pure merge, an ETag-conditional write, a retry on Conflict.

A row is read (or taken from the :class:`~shared.nif.queue.cache.RowCache`, or assumed absent when
an Added change is among its changes), merged with :func:`shared.nif.queue.merge.fold` and
written with ``update(etag=…)`` or create-if-absent, through a handle opened with ``chunked=True``
(:func:`projection_table`: the adapter splits a long ``data``). On :class:`~shared.tables.Conflict`
the row is re-read and the merge redone, at most :data:`MAX_CONFLICT_RETRIES` times; then
:class:`ConflictRetriesExhausted` (a :class:`~shared.tables.TransientStorageError`) is raised so
the message is redelivered.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.nif.queue.cache import CacheKey, RowCache
from shared.nif.queue.envelope import ChangeType, Envelope
from shared.nif.queue.merge import RowState, fold
from shared.nif.queue.pools import write_ops
from shared.nif.queue.rows import entity_to_state, state_to_entity
from shared.tables import Conflict, TransientStorageError
from shared.tables_contract import Op, Row, Storage, StorageTable

MAX_CONFLICT_RETRIES = 8

#: A row read while the journal row was being written: ``(row or None,)``.
Prefetched = tuple[Row | None]


class ConflictRetriesExhausted(TransientStorageError):
    """Too many concurrent writers on one row: like any transient storage error, the message is
    redelivered."""


def projection_table(store: Storage, table_name: str) -> StorageTable:
    """The handle every projection write goes through: ``chunked=True``, so a ``data`` longer than
    one property holds is stored in pieces by the adapter (reading needs no option)."""
    return store.table(table_name, chunked=True)


@dataclass
class Touched:
    """What the derived-row and confirmation steps need to know about one applied row."""

    entity: str
    before: RowState | None
    after: RowState
    envs: list[Envelope]


def _merged(before: RowState | None, envs: list[Envelope]) -> RowState:
    after = fold(envs, before)
    assert after is not None  # envs is never empty
    return after


def _adds(envs: list[Envelope]) -> bool:
    return any(e.change_type is ChangeType.ADDED for e in envs)


def apply_row(
    store: Storage, cache: RowCache, key: CacheKey, envs: list[Envelope], prefetched: Prefetched | None = None
) -> Touched:
    """One row, ETag-conditional, retried on Conflict."""
    table_name, pk, rk = key
    table = projection_table(store, table_name)
    entity = envs[0].entity
    force_read = False
    for _ in range(MAX_CONFLICT_RETRIES):
        hit = None if force_read else cache.get(key)
        if prefetched is not None and hit is None and not force_read:
            row = prefetched[0]  # read concurrently with the journal write (QueueProcessor.process)
            before, etag = (entity_to_state(row, entity), row.get("_etag")) if row else (None, None)
        elif hit is not None:
            before, etag = hit
        elif not force_read and _adds(envs):
            before, etag = None, None  # optimistic create; Conflict → read and merge
        else:
            row = table.get(pk, rk)
            before, etag = (entity_to_state(row, entity), row.get("_etag")) if row else (None, None)
        after = _merged(before, envs)
        if before is not None and after == before:
            return Touched(entity, before, after, envs)
        ent = state_to_entity(after, pk, rk)
        try:
            if etag is None:
                new_etag = table.create(ent)  # Conflict if the row exists
            else:
                new_etag = table.update(ent, etag=etag, replace=True)
        except Conflict:
            cache.drop(key)
            force_read = True
            continue
        cache.put(key, after, new_etag)
        return Touched(entity, before, after, envs)
    raise ConflictRetriesExhausted(f"row {table_name}/{pk}/{rk} kept changing")


def apply_rows(store: Storage, cache: RowCache, table_name: str, rows: dict[CacheKey, list[Envelope]]) -> list[Touched]:
    """Several rows of one table: one range read and transactions per partition."""
    table = projection_table(store, table_name)
    by_pk: dict[str, list[CacheKey]] = {}
    for key in rows:
        by_pk.setdefault(key[1], []).append(key)
    optimistic = True
    for _ in range(MAX_CONFLICT_RETRIES):
        touched: list[Touched] = []
        ops: list[Op] = []
        for pk, keys in by_pk.items():
            # rows that only this batch can have created (an Added among their changes) are
            # created without a read first; any Conflict re-reads everything
            need = [k[2] for k in keys if not (optimistic and _adds(rows[k]))]
            current = _read_rows(table, pk, need) if need else {}
            for key in keys:
                envs = rows[key]
                entity = envs[0].entity
                row = current.get(key[2])
                before = entity_to_state(row, entity) if row else None
                after = _merged(before, envs)
                touched.append(Touched(entity, before, after, envs))
                if before is not None and after == before:
                    continue
                ent = state_to_entity(after, pk, key[2])
                if row is None:
                    ops.append(Op("create", ent))
                else:
                    ops.append(Op("update", ent, {"etag": row.get("_etag"), "replace": True}))
        try:
            write_ops(table, ops)
        except Conflict:
            optimistic = False
            continue  # re-read and re-merge everything; rows already written merge to no-ops
        for key in rows:
            cache.drop(key)  # the transaction does not return ETags
        return touched
    raise ConflictRetriesExhausted(f"table {table_name}: rows kept changing")


def _read_rows(table: StorageTable, pk: str, rks: list[str]) -> dict[str, Row]:
    if len(rks) == 1:
        row = table.get(pk, rks[0])
        return {rks[0]: row} if row else {}
    wanted = set(rks)
    rows = table.query("RowKey ge @lo and RowKey le @hi", parameters={"lo": min(rks), "hi": max(rks)}, partition_key=pk)
    return {r["RowKey"]: r for r in rows if r["RowKey"] in wanted}
