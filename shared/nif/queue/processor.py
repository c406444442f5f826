"""Journal-first processing of NIF queue messages over the table adapter.

``QueueProcessor(store)`` works with anything shaped like :class:`shared.tables.TableStore`
(``store.table(name)`` → get/insert/upsert/update/delete/query/submit): the Azurite/Azure
adapter in production and tests, ``devtools.memtables.MemoryTableStore`` in the property tests.

Per message (single path) and per batch (batch path):

1. **Journal** the raw message (idempotent: the key is the sequence number). Nothing else
   happens before the journal row exists; a storage failure here raises, so the trigger does
   not complete the message and Service Bus redelivers it.
2. **Poison** (not JSON, ChangeType outside the enum, no ObjectId …) → quarantine row with the
   reason and the raw message; the message is then completed (no exception).
3. **Apply** the change to its projection row (unknown entity → generic table + warning) with
   the pure merge (:mod:`shared.nif.queue.merge`), written with an ETag condition
   (``update(etag=…)`` / create-if-absent); on :class:`~shared.tables.Conflict` the row is re-read
   and the merge redone (bounded retries).
4. **Derived rows**: links (club → memberships, branch → active memberships, person →
   memberships/contacts), person-merge map (old → survivor) and merged marks on memberships.
5. **traceId confirmation** of recorded membership requests.

Transient storage errors propagate (the function raises → redelivery → dead letter after
``maxDeliveryCount``). Every step is idempotent, so redelivering a half-processed message or a
whole batch is harmless.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from shared import lifecycle
from shared.nif.queue import entities as E
from shared.nif.queue.envelope import ChangeType, Envelope, PoisonMessage, RawMessage
from shared.nif.queue.journal import classify, journal_rows
from shared.nif.queue.merge import RowState, apply_change
from shared.textsize import CHUNK_UNITS, text_chunks, utf16_units

log = logging.getLogger("shared.nif.queue")

MAX_CONFLICT_RETRIES = 8
DATA_CHUNK = CHUNK_UNITS
CACHE_SIZE = 20_000

ConfirmFn = Callable[..., bool]


# --- row <-> entity ----------------------------------------------------------------------


def state_to_entity(state: RowState, pk: str, rk: str) -> dict[str, Any]:
    """Projection row. Few properties on purpose (each costs serialisation in a transaction):
    the current values in ``data`` (JSON), the merge bookkeeping in ``st`` (JSON), and the
    promoted columns the readers use. ``None`` values are not stored."""
    links = E.links_of(state.entity, state.data)
    soft = E.as_bool(E.field(state.data, *E.SOFT_DELETE))
    ent: dict[str, Any] = {}
    text = json.dumps(state.data, ensure_ascii=False, separators=(",", ":"))
    if utf16_units(text) > DATA_CHUNK:  # a string property holds at most 32 768 UTF-16 code units
        chunks = text_chunks(text, DATA_CHUNK)
        ent["dataChunks"] = len(chunks)
        ent.update({f"data{i:02d}": c for i, c in enumerate(chunks)})
    else:
        ent["data"] = state.data
    return {
        **ent,
        "PartitionKey": pk,
        "RowKey": rk,
        "ObjectId": state.object_id,
        "st": {
            "fv": state.fv,
            "v": state.version,
            "dv": state.del_v,
            "iv": state.info_version,
            "lm": state.last_message_id,
            "ds": state.deleted_seq,
        },
        "Deleted": state.deleted or None,
        "SoftDeleted": soft or None,
        "DeletedAt": state.deleted_at,
        "DeletedBy": state.deleted_by,
        "MergedInto": state.merged_into,
        "PersonId": links.get("personId"),
        "ClubId": links.get("clubId"),
        "BranchId": links.get("branchId"),
    }


def row_data(ent: dict[str, Any]) -> dict[str, Any]:
    """The row's current values (reassembled when they were stored in chunks)."""
    n = ent.get("dataChunks")
    if n:
        return json.loads("".join(ent.get(f"data{i:02d}") or "" for i in range(int(n))))
    return dict(ent.get("data") or {})


def entity_to_state(ent: dict[str, Any], entity: str) -> RowState:
    st = ent.get("st") or {}
    return RowState(
        entity=entity,
        object_id=int(ent.get("ObjectId") or 0),
        data=row_data(ent),
        fv=dict(st.get("fv") or {}),
        version=st.get("v") or "",
        deleted=bool(ent.get("Deleted")),
        del_v=st.get("dv") or "",
        deleted_at=ent.get("DeletedAt"),
        deleted_by=ent.get("DeletedBy"),
        deleted_seq=st.get("ds"),
        info_version=st.get("iv") or "",
        last_message_id=st.get("lm"),
        merged_into=ent.get("MergedInto"),
    )


def row_version(ent: dict[str, Any]) -> str:
    return (ent.get("st") or {}).get("v") or ""


def is_ended(state: RowState) -> bool:
    return state.deleted or E.as_bool(E.field(state.data, *E.SOFT_DELETE))


# --- a small write-through cache of rows and their ETags -----------------------------------


class RowCache:
    """Last known ``(state, etag)`` per row written by this process. Only an optimisation: a
    stale entry costs one Conflict and a re-read, never a wrong write."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._rows: OrderedDict[tuple[str, str, str], tuple[RowState, str]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> tuple[RowState, str] | None:
        with self._lock:
            hit = self._rows.get(key)
            if hit is not None:
                self._rows.move_to_end(key)
            return hit

    def put(self, key: tuple[str, str, str], state: RowState, etag: str | None) -> None:
        with self._lock:
            if not etag:
                self._rows.pop(key, None)
                return
            self._rows[key] = (state, etag)
            self._rows.move_to_end(key)
            while len(self._rows) > self._size:
                self._rows.popitem(last=False)

    def drop(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._rows.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()


class ConflictRetriesExhausted(RuntimeError):
    """Too many concurrent writers on one row: raise so the message is redelivered."""


@dataclass
class Outcome:
    message_id: str
    sequence_number: int | None
    status: str  # applied | stale | quarantined | generic
    entity: str = ""
    object_id: int | None = None
    reason: str | None = None


@dataclass
class _Touched:
    """What the derived-row step needs to know about one written row."""

    table: str
    pk: str
    rk: str
    entity: str
    before: RowState | None
    after: RowState
    envs: list[Envelope] = field(default_factory=list)


def _default_confirm(trace_id: str, *, person_id: int | None, membership_id: int | None, source: str) -> bool:
    from shared.nif.requests import confirm_request

    return confirm_request(trace_id, person_id=person_id, membership_id=membership_id, source=source)


class QueueProcessor:
    def __init__(
        self,
        store: Any,
        *,
        confirm: ConfirmFn | None = None,
        cache: RowCache | None = None,
        confirm_traces: bool = True,
    ) -> None:
        self.store = store
        self.confirm = confirm or _default_confirm
        self.cache = cache if cache is not None else RowCache()
        self.confirm_traces = confirm_traces

    # ------------------------------------------------------------------ single message
    def process(self, raw: RawMessage) -> Outcome:
        env, poison = classify(raw)
        prefetch = self._prefetch(env) if env is not None else None
        try:
            created = self._journal([(raw, env, poison)])
        except BaseException:
            if prefetch is not None:
                prefetch.exception()  # wait for it (never left running); the journal error wins
            raise
        fetched = (prefetch.result(),) if prefetch is not None else None
        if poison is not None:
            self._quarantine([(raw, poison)])
            return Outcome(raw.message_id, raw.sequence_number, "quarantined", reason=poison.reason)
        assert env is not None
        from shared.tables import Conflict, TransientStorageError

        try:
            return self._apply_envelopes(
                [env], redelivered=not created or (raw.delivery_count or 1) > 1, prefetched=fetched
            )[0]
        except (TransientStorageError, Conflict, ConflictRetriesExhausted):
            raise
        except Exception as exc:  # noqa: BLE001 - refused row or a bug: redelivery cannot help
            reason = _apply_failure(exc)
            self._quarantine([(raw, PoisonMessage(reason))])
            return Outcome(raw.message_id, raw.sequence_number, "quarantined", env.entity, env.object_id, reason)

    def _prefetch(self, env: Envelope) -> Any:
        """Read the row while the journal row is written (a read has no effect, so journal-first
        still holds: nothing is written before the journal row exists)."""
        table = E.table_for(env.entity, env.known)
        pk, rk = E.row_keys(env.entity, env.known, env.object_id)
        if env.change_type is ChangeType.ADDED or self.cache.get((table, pk, rk)) is not None:
            return None
        t = self.store.table(table)
        return _pool_submit(lambda: t.get(pk, rk))

    # ------------------------------------------------------------------ batch
    def process_batch(self, raws: list[RawMessage]) -> list[Outcome]:
        """Journal every message of the batch (one transaction per partition), then apply the
        batch with reads and writes grouped per partition."""
        from shared.tables import Conflict, TransientStorageError

        if not raws:
            return []
        if len(raws) == 1:  # cheaper as single operations than as a transaction of one
            return [self.process(raws[0])]
        parsed = [(raw, *classify(raw)) for raw in raws]
        self._journal(parsed, batch=True)
        poison = [(raw, p) for raw, env, p in parsed if p is not None]
        if poison:
            self._quarantine(poison)
        outcomes = [Outcome(raw.message_id, raw.sequence_number, "quarantined", reason=p.reason) for raw, p in poison]
        envs = [env for _, env, p in parsed if env is not None]
        if envs:
            redelivered = any((r.delivery_count or 1) > 1 for r in raws)
            try:
                outcomes.extend(self._apply_envelopes(envs, redelivered=redelivered))
            except (TransientStorageError, Conflict, ConflictRetriesExhausted):
                raise
            except Exception as exc:  # noqa: BLE001 - see _apply_failure
                # a row the service refuses (too large, bad property) or a message our code
                # cannot apply: isolate message by message so only that one is quarantined
                log.warning("batch apply failed (%s); retrying message by message", type(exc).__name__)
                outcomes = [o for o in outcomes if o.status == "quarantined"]
                for env in envs:
                    outcomes.append(self._apply_isolated(env))
        return outcomes

    def _apply_isolated(self, env: Envelope) -> Outcome:
        from shared.tables import Conflict, TransientStorageError

        try:
            return self._apply_envelopes([env], redelivered=True)[0]
        except (TransientStorageError, Conflict, ConflictRetriesExhausted):
            raise
        except Exception as exc:  # noqa: BLE001 - see _apply_failure
            reason = _apply_failure(exc)
            self._quarantine([(env.raw, PoisonMessage(reason))])
            return Outcome(env.message_id, env.sequence_number, "quarantined", env.entity, env.object_id, reason)

    # ------------------------------------------------------------------ journal / quarantine
    def _journal(
        self, items: Iterable[tuple[RawMessage, Envelope | None, PoisonMessage | None]], *, batch: bool = False
    ) -> bool:
        """Write journal rows; returns True if (single path) the row was new."""
        journal = self.store.table(E.JOURNAL_TABLE)
        rows, overflow = [], []
        for raw, env, poison in items:
            row, extra = journal_rows(raw, env, poison)
            rows.append(row)
            overflow.extend(extra)
        if overflow:
            self.store.table(E.JOURNAL_OVERFLOW_TABLE).submit([("upsert", r) for r in overflow])
        if batch or len(rows) > 1:
            journal.submit([("upsert", r) for r in rows])
            return True
        return journal.insert(rows[0])

    def _quarantine(self, items: list[tuple[RawMessage, PoisonMessage]]) -> None:
        q = self.store.table(E.QUARANTINE_TABLE)
        ops = []
        for raw, poison in items:
            row, _ = journal_rows(raw, None, poison)
            jpk, jrk = row["PartitionKey"], row["RowKey"]
            row.update(
                PartitionKey="quarantined",
                RowKey=jrk,
                JournalPartitionKey=jpk,
                JournalRowKey=jrk,
                Reason=poison.reason,
                Status="quarantined",
            )
            ops.append(("upsert", row))
            # event name and ids in the text: the Functions worker ships only the message to App Insights
            log.warning(
                "queue.quarantined message_id=%s sequence_number=%s reason=%s",
                raw.message_id,
                raw.sequence_number,
                poison.reason,
                extra={
                    "fields": {
                        "messageId": raw.message_id,
                        "sequenceNumber": raw.sequence_number,
                        "reason": poison.reason,
                    }
                },
            )
        q.submit(ops)

    # ------------------------------------------------------------------ apply
    def _apply_envelopes(
        self, envs: list[Envelope], *, redelivered: bool, confirm: bool | None = None, prefetched: Any = None
    ) -> list[Outcome]:
        groups: dict[tuple[str, str, str], list[Envelope]] = {}
        for env in envs:
            table = E.table_for(env.entity, env.known)
            pk, rk = E.row_keys(env.entity, env.known, env.object_id)
            groups.setdefault((table, pk, rk), []).append(env)
            if not env.known:
                log.warning(
                    "NIF queue: unknown EntityName kept in the generic table",
                    extra={
                        "fields": {
                            "entityName": env.entity_name,
                            "messageId": env.message_id,
                            "objectId": env.object_id,
                        }
                    },
                )

        by_table: dict[str, dict[tuple[str, str, str], list[Envelope]]] = {}
        for key, items in groups.items():
            by_table.setdefault(key[0], {})[key] = items

        touched: list[_Touched] = []
        outcomes: list[Outcome] = []

        def apply_table(table: str, rows: dict) -> list[_Touched]:
            if len(rows) == 1:
                ((key, items),) = rows.items()
                result = [self._apply_row(key, items, prefetched)]
            else:
                result = self._apply_rows_batch(table, rows)
            # this table's index rows go out now, overlapping the other tables' projection writes
            self._write_links(result, redelivered=redelivered)
            return result

        for result in _parallel([partial(apply_table, t, r) for t, r in by_table.items()]):
            touched.extend(result)
        for t in touched:
            for env in t.envs:
                applied = (
                    any(t.after.fv.get(k) == env.version for k in env.body)
                    or t.after.del_v == env.version
                    or t.after.info_version == env.version
                )
                status = "generic" if not env.known else ("applied" if applied else "stale")
                outcomes.append(Outcome(env.message_id, env.sequence_number, status, env.entity, env.object_id))

        self._derived(touched, redelivered=redelivered)
        if confirm if confirm is not None else self.confirm_traces:
            self._confirm_traces(touched)
        return outcomes

    def _apply_row(self, key: tuple[str, str, str], envs: list[Envelope], prefetched: Any = None) -> _Touched:
        """One row, ETag-conditional, retried on Conflict."""
        from shared.tables import Conflict

        table_name, pk, rk = key
        table = self.store.table(table_name)
        entity = envs[0].entity
        force_read = False
        for _ in range(MAX_CONFLICT_RETRIES):
            hit = None if force_read else self.cache.get(key)
            if prefetched is not None and hit is None and not force_read:
                row = prefetched[0]  # read concurrently with the journal write (see process())
                before, etag = (entity_to_state(row, entity), row.get("_etag")) if row else (None, None)
            elif hit is not None:
                before, etag = hit
            elif not force_read and any(e.change_type is ChangeType.ADDED for e in envs):
                before, etag = None, None  # optimistic create; Conflict → read and merge
            else:
                row = table.get(pk, rk)
                before, etag = (entity_to_state(row, entity), row.get("_etag")) if row else (None, None)
            after = before
            for env in sorted(envs, key=lambda e: e.version):
                after, _ = apply_change(after, env)
            assert after is not None
            if before is not None and after == before:
                return _Touched(table_name, pk, rk, entity, before, after, envs)
            ent = state_to_entity(after, pk, rk)
            try:
                if etag is None:
                    new_etag = self._create(table, ent)
                else:
                    new_etag = table.update(ent, etag=etag, replace=True)
            except Conflict:
                self.cache.drop(key)
                force_read = True
                continue
            self.cache.put(key, after, new_etag)
            return _Touched(table_name, pk, rk, entity, before, after, envs)
        raise ConflictRetriesExhausted(f"row {table_name}/{pk}/{rk} kept changing")

    @staticmethod
    def _create(table: Any, ent: dict[str, Any]) -> str | None:
        return table.create(ent)  # the new ETag; Conflict if the row exists

    def _apply_rows_batch(self, table_name: str, rows: dict[tuple[str, str, str], list[Envelope]]) -> list[_Touched]:
        """Several rows of one table: one range read and transactions per partition."""
        from shared.tables import Conflict

        table = self.store.table(table_name)
        by_pk: dict[str, list[tuple[str, str, str]]] = {}
        for key in rows:
            by_pk.setdefault(key[1], []).append(key)
        optimistic = True
        for _ in range(MAX_CONFLICT_RETRIES):
            touched: list[_Touched] = []
            ops: list[tuple] = []
            for pk, keys in by_pk.items():
                # rows that only this batch can have created (an Added among their changes) are
                # created without a read first; any Conflict re-reads everything
                need = [
                    k[2] for k in keys if not (optimistic and any(e.change_type is ChangeType.ADDED for e in rows[k]))
                ]
                current = self._read_rows(table, pk, need) if need else {}
                for key in keys:
                    envs = rows[key]
                    entity = envs[0].entity
                    row = current.get(key[2])
                    before = entity_to_state(row, entity) if row else None
                    after = before
                    for env in sorted(envs, key=lambda e: e.version):
                        after, _ = apply_change(after, env)
                    assert after is not None
                    touched.append(_Touched(table_name, pk, key[2], entity, before, after, envs))
                    if before is not None and after == before:
                        continue
                    ent = state_to_entity(after, pk, key[2])
                    if row is None:
                        ops.append(("create", ent))
                    else:
                        ops.append(("update", ent, {"etag": row.get("_etag"), "replace": True}))
            try:
                _write(table, ops)
            except Conflict:
                optimistic = False
                continue  # re-read and re-merge everything; rows already written merge to no-ops
            for key in rows:
                self.cache.drop(key)  # the transaction does not return ETags
            return touched
        raise ConflictRetriesExhausted(f"table {table_name}: rows kept changing")

    @staticmethod
    def _read_rows(table: Any, pk: str, rks: list[str]) -> dict[str, dict[str, Any]]:
        if len(rks) == 1:
            row = table.get(pk, rks[0])
            return {rks[0]: row} if row else {}
        wanted = set(rks)
        rows = table.query(
            "RowKey ge @lo and RowKey le @hi", parameters={"lo": min(rks), "hi": max(rks)}, partition_key=pk
        )
        return {r["RowKey"]: r for r in rows if r["RowKey"] in wanted}

    # ------------------------------------------------------------------ derived rows
    def _write_links(self, touched: list[_Touched], *, redelivered: bool) -> None:
        """Index rows (club → memberships, person → memberships/contacts) of freshly written rows.

        Written after the rows' own projection write; stale index rows are harmless (readers
        check the projection row), so they are never deleted."""
        ops: list[tuple] = []
        for t in touched:
            links = E.links_of(t.entity, t.after.data)
            old_links = E.links_of(t.entity, t.before.data) if t.before is not None else {}
            if links and (redelivered or links != old_links or t.before is None):
                ops.extend(("upsert", r) for r in link_rows(t.entity, t.after.object_id, links))
        if not ops:
            return
        table = self.store.table(E.LINKS_TABLE)
        by_partition: dict[str, list[tuple]] = {}
        for op in ops:
            by_partition.setdefault(op[1]["PartitionKey"], []).append(op)
        _parallel([partial(_write, table, o) for o in by_partition.values()], pool=_links_pool)

    def _derived(self, touched: list[_Touched], *, redelivered: bool) -> None:
        merge_ops: list[tuple] = []
        marks: list[tuple[str, int, int]] = []  # (entity, object id, survivor person)
        deleted_memberships: list[_Touched] = []
        for t in touched:
            after, before = t.after, t.before
            links = E.links_of(t.entity, after.data)
            if t.entity == "TpPerson":
                old = set(E.as_ids(E.field(before.data, *E.MERGED_PERSONS))) if before else set()
                new = set(E.as_ids(E.field(after.data, *E.MERGED_PERSONS)))
                merged = new if redelivered else new - old
                for pid in sorted(merged):
                    if pid == after.object_id:
                        continue
                    merge_ops.append(
                        (
                            "upsert",
                            {
                                "PartitionKey": "person",
                                "RowKey": E.pad(pid),
                                "OldId": pid,
                                "SurvivorId": after.object_id,
                            },
                        )
                    )
                    marks.extend(self._memberships_of_person(pid, after.object_id))
            if t.entity in ("TpMembership", "TpActiveMembership"):
                names = E.MERGED_MEMBERSHIPS if t.entity == "TpMembership" else E.MERGED_ACTIVE
                kind = "membership" if t.entity == "TpMembership" else "activeMembership"
                old = set(E.as_ids(E.field(before.data, *names))) if before else set()
                new = set(E.as_ids(E.field(after.data, *names)))
                survivor_person = links.get("personId")
                for mid in sorted(new if redelivered else new - old):
                    if mid == after.object_id:
                        continue
                    merge_ops.append(
                        (
                            "upsert",
                            {
                                "PartitionKey": kind,
                                "RowKey": E.pad(mid),
                                "OldId": mid,
                                "SurvivorId": after.object_id,
                                "SurvivorPersonId": survivor_person,
                            },
                        )
                    )
                    if survivor_person:
                        marks.append((t.entity, mid, survivor_person))
                if is_ended(after) and after.merged_into is None:
                    deleted_memberships.append(t)
        if merge_ops:
            table = self.store.table(E.MERGE_TABLE)
            by_partition: dict[str, list[tuple]] = {}
            for op in merge_ops:
                by_partition.setdefault(op[1]["PartitionKey"], []).append(op)
            _parallel([partial(_write, table, o) for o in by_partition.values()])
        if deleted_memberships:
            marks.extend(self._merged_ends(deleted_memberships))
        for entity, object_id, survivor in marks:
            self._mark_merged(entity, object_id, survivor)

    def _memberships_of_person(self, person_id: int, survivor: int) -> list[tuple[str, int, int]]:
        links = self.store.table(E.LINKS_TABLE)
        p = E.pad(person_id)
        out = []
        for row in links.query(
            "RowKey ge @lo and RowKey lt @hi",
            parameters={"lo": p + "-", "hi": p + "."},
            partition_key=f"person-{E.bucket(person_id)}",
        ):
            kind = row.get("Kind")
            if kind == "m":
                out.append(("TpMembership", int(row["ObjectId"]), survivor))
            elif kind == "a":
                out.append(("TpActiveMembership", int(row["ObjectId"]), survivor))
        return out

    def _merged_ends(self, ended: list[_Touched]) -> list[tuple[str, int, int]]:
        """Ended memberships whose person (or membership id) was merged away → merged, not left."""
        persons = {pid for t in ended if (pid := E.links_of(t.entity, t.after.data).get("personId")) is not None}
        person_map = {old: int(r["SurvivorId"]) for old, r in self._lookup("person", persons).items()}
        out = []
        for entity, kind in (("TpMembership", "membership"), ("TpActiveMembership", "activeMembership")):
            mine = [t for t in ended if t.entity == entity]
            if not mine:
                continue
            mem_map = self._lookup(kind, {t.after.object_id for t in mine})
            for t in mine:
                pid = E.links_of(t.entity, t.after.data).get("personId")
                if pid in person_map:
                    out.append((entity, t.after.object_id, resolve(person_map, pid)))
                elif t.after.object_id in mem_map and mem_map[t.after.object_id].get("SurvivorPersonId"):
                    out.append((entity, t.after.object_id, int(mem_map[t.after.object_id]["SurvivorPersonId"])))
        return out

    def _lookup(self, partition: str, ids: set[int]) -> dict[int, dict[str, Any]]:
        """Merge-map rows of ``partition`` for ``ids`` (one point read or one range query)."""
        if not ids:
            return {}
        merge = self.store.table(E.MERGE_TABLE)
        ordered = sorted(ids)
        if len(ordered) == 1:
            row = merge.get(partition, E.pad(ordered[0]))
            return {ordered[0]: row} if row else {}
        rows = merge.query(
            "RowKey ge @lo and RowKey le @hi",
            parameters={"lo": E.pad(ordered[0]), "hi": E.pad(ordered[-1])},
            partition_key=partition,
        )
        return {int(r["OldId"]): r for r in rows if int(r["OldId"]) in ids}

    def _mark_merged(self, entity: str, object_id: int, survivor: int) -> None:
        """Set ``MergedInto`` on an existing membership row (ETag-conditional, idempotent)."""
        from shared.tables import Conflict

        table_name = E.PROJECTION_TABLES[entity]
        pk, rk = E.row_keys(entity, True, object_id)
        table = self.store.table(table_name)
        key = (table_name, pk, rk)
        for _ in range(MAX_CONFLICT_RETRIES):
            row = table.get(pk, rk)
            if row is None:
                return  # the row's own deletion will look the merge up when it arrives
            state = entity_to_state(row, entity)
            value = max(survivor, state.merged_into or 0)
            if state.merged_into == value:
                return
            state.merged_into = value
            try:
                etag = table.update(state_to_entity(state, pk, rk), etag=row["_etag"], replace=True)
            except Conflict:
                continue
            self.cache.put(key, state, etag)
            return
        raise ConflictRetriesExhausted(f"row {table_name}/{pk}/{rk} kept changing")

    # ------------------------------------------------------------------ traceId
    def _confirm_traces(self, touched: list[_Touched]) -> None:
        for t in touched:
            if t.entity not in ("TpPerson", "TpMembership", "TpActiveMembership"):
                continue
            for env in t.envs:
                trace = E.field(env.body, *E.TRACE_ID)
                if not isinstance(trace, str) or not trace.strip():
                    continue
                data = t.after.data
                person_id: int | None
                membership_id: int | None
                if t.entity == "TpPerson":
                    person_id, membership_id = env.object_id, E.as_id(E.field(data, *E.MEMBERSHIP_ID))
                elif t.entity == "TpMembership":
                    person_id, membership_id = E.as_id(E.field(data, *E.PERSON_ID)), env.object_id
                else:
                    person_id, membership_id = (
                        E.as_id(E.field(data, *E.PERSON_ID)),
                        E.as_id(E.field(data, *E.MEMBERSHIP_ID)),
                    )
                found = self.confirm(
                    trace.strip(), person_id=person_id, membership_id=membership_id, source=f"queue:{t.entity}"
                )
                log.info(
                    "NIF queue traceId confirmation",
                    extra={
                        "fields": {
                            "entity": t.entity,
                            "objectId": env.object_id,
                            "messageId": env.message_id,
                            "matched": bool(found),
                        }
                    },
                )

    # ------------------------------------------------------------------ rebuild / replay
    def apply_from_journal(self, raws: list[RawMessage], entities: set[str] | None = None) -> list[Outcome]:
        """Apply already-journaled messages (rebuild): no journal write, no confirmations."""
        envs = []
        for raw in raws:
            env, _poison = classify(raw)
            if env is not None and (entities is None or env.entity in entities):
                envs.append(env)
        if not envs:
            return []
        return self._apply_envelopes(envs, redelivered=True, confirm=False)


PARALLEL = True
_pool_lock = threading.Lock()


def _apply_failure(exc: BaseException) -> str:
    """Why a journaled message could not be applied, for its quarantine row.

    Only storage being unavailable (transient errors, ETag conflicts) is worth a redelivery: the
    function raises and Service Bus delivers again. Anything else (the service refuses the row,
    a value the SDK cannot type, a bug of ours) would fail the same way on every delivery and
    hold the whole batch back until it is dead-lettered, so the message is quarantined instead;
    it is journaled, and ``python -m shared.nif.queue.quarantine replay`` applies it after a fix.
    """
    from shared.tables import StorageError

    if isinstance(exc, StorageError):
        return f"storage refused the projection write: {type(exc).__name__}"
    return f"could not be applied: {type(exc).__name__}"


def _parallel(jobs: list[Callable[[], Any]], *, pool: Callable[[], Any] | None = None) -> list[Any]:
    """Run independent storage calls concurrently (I/O overlaps; the GIL is released while
    waiting). The first exception is raised after all jobs finished. Jobs running in one pool
    must not wait on jobs of the same pool (bounded pools deadlock): nested work uses ``pool``."""
    if len(jobs) <= 1 or not PARALLEL:
        return [job() for job in jobs]
    futures = [(pool or _get_pool)().submit(job) for job in jobs]
    results, error = [], None
    for f in futures:
        try:
            results.append(f.result())
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            error = error or exc
    if error is not None:
        raise error
    return results


_pools: dict[str, Any] = {}


def _named_pool(name: str) -> Any:
    with _pool_lock:
        pool = _pools.get(name)
        if pool is None:
            from concurrent.futures import ThreadPoolExecutor

            pool = _pools[name] = ThreadPoolExecutor(max_workers=8, thread_name_prefix=name)
    return pool


def _get_pool() -> Any:
    return _named_pool("nifq")


def _links_pool() -> Any:
    """Pool for index-row writes, which are submitted from jobs running in the main pool."""
    return _named_pool("nifq-links")


def _pool_submit(job: Callable[[], Any]) -> Any:
    return _get_pool().submit(job)


def _write(table: Any, ops: list[tuple]) -> None:
    """One operation as a plain call (cheaper than a transaction of one), more as transactions."""
    if not ops:
        return
    if len(ops) > 1:
        table.submit(ops)
        return
    op = ops[0]
    kind, entity = op[0], op[1]
    opts = op[2] if len(op) > 2 else {}
    if kind == "upsert":
        table.upsert(entity, replace=bool(opts.get("replace")))
    elif kind == "create":
        from shared.tables import Conflict

        if not table.insert(entity):
            raise Conflict("row exists")
    elif kind == "update":
        table.update(entity, etag=opts["etag"], replace=bool(opts.get("replace")))
    else:
        table.submit(ops)


def resolve(person_map: dict[int, int], person_id: int) -> int:
    """Follow old → new until a survivor (cycle-safe)."""
    seen = {person_id}
    while person_id in person_map:
        person_id = person_map[person_id]
        if person_id in seen:
            break
        seen.add(person_id)
    return person_id


def link_rows(entity: str, object_id: int, links: dict[str, int]) -> list[dict[str, Any]]:
    """``NifLinks`` rows for a row's links (keys documented in docs/queue.md)."""
    kind = {
        "TpMembership": "m",
        "TpActiveMembership": "a",
        "TpPersonContactInformation": "c",
        "TpMembershipPeriod": "p",
    }[entity]
    oid = E.pad(object_id)
    rows = []
    pid = links.get("personId")
    if pid:
        rows.append(
            {
                "PartitionKey": f"person-{E.bucket(pid)}",
                "RowKey": f"{E.pad(pid)}-{kind}-{oid}",
                "Kind": kind,
                "ObjectId": object_id,
                "PersonId": pid,
            }
        )
    if entity == "TpMembership" and links.get("clubId"):
        rows.append(
            {
                "PartitionKey": f"club-{links['clubId']}",
                "RowKey": f"m-{oid}",
                "Kind": "m",
                "ObjectId": object_id,
                "PersonId": pid,
            }
        )
    return rows


# --- process-wide processor -----------------------------------------------------------------


def _processor() -> QueueProcessor:
    """The process-wide QueueProcessor over the process-wide TableStore."""
    from shared.tables import get_table_store

    return QueueProcessor(get_table_store())


get_processor = lifecycle.process_wide(_processor)
