"""Journal-first processing of NIF queue messages over the table adapter.

``QueueProcessor(store)`` works with any :class:`shared.tables_contract.Storage`: the Azurite/Azure
adapter in production and tests, ``devtools.memtables.MemoryTableStore`` in the property tests.
Tables holding values longer than one property (journal, overflow, quarantine, projections) are
opened with ``chunked=True``.

Per message (single path) and per batch (batch path):

1. **Journal** the raw message (idempotent: the key is the sequence number). Nothing else
   happens before the journal row exists; a storage failure here raises, so the trigger does
   not complete the message and Service Bus redelivers it.
2. **Poison** (not JSON, ChangeType outside the enum, no ObjectId …) → quarantine row with the
   reason and the raw message; the message is then completed (no exception).
3. **Apply** the change to its projection row (unknown entity → generic table + warning) with
   the pure merge, ETag-conditional and retried on Conflict (:mod:`shared.nif.queue.apply`,
   rows encoded by :mod:`shared.nif.queue.rows`). A batch that fails for any other reason is
   applied again message by message, so only the message at fault is quarantined.
4. **Derived rows** (:mod:`shared.nif.queue.derived`): links, person-merge map (old → survivor)
   and merged marks on memberships.
5. **traceId confirmation** of recorded membership requests (:mod:`shared.nif.queue.confirm`).

Transient storage errors propagate (the function raises → redelivery → dead letter after
``maxDeliveryCount``). Every step is idempotent, so redelivering a half-processed message or a
whole batch is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal

from shared import lifecycle
from shared.nif.queue import entities
from shared.nif.queue.apply import Prefetched, Touched, apply_row, apply_rows, projection_table
from shared.nif.queue.cache import CacheKey, RowCache
from shared.nif.queue.confirm import Confirm, confirm_traces, default_confirm
from shared.nif.queue.derived import write_links, write_merges
from shared.nif.queue.envelope import ChangeType, Envelope, PoisonMessage, RawMessage
from shared.nif.queue.journal import classify, journal_rows
from shared.nif.queue.pools import main_pool, parallel
from shared.tables_contract import Op

if TYPE_CHECKING:
    from concurrent.futures import Future

    from shared.tables_contract import Row, Storage

log = logging.getLogger("shared.nif.queue")

#: ``applied``: the change set at least one field or event; ``stale``: older than the row (or a
#: duplicate), journaled only; ``quarantined``: poison or refused, see the quarantine row;
#: ``generic``: unknown entity, kept in the generic table.
OutcomeStatus = Literal["applied", "stale", "quarantined", "generic"]


@dataclass
class Outcome:
    message_id: str
    sequence_number: int | None
    status: OutcomeStatus
    entity: str = ""
    object_id: int | None = None
    reason: str | None = None


class QueueProcessor:
    def __init__(
        self,
        store: Storage,
        *,
        confirm: Confirm | None = None,
        cache: RowCache | None = None,
    ) -> None:
        self.store = store
        self.confirm: Confirm = confirm or default_confirm
        self.cache = cache if cache is not None else RowCache()

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
        return self._apply_or_quarantine(
            env, redelivered=not created or (raw.delivery_count or 1) > 1, prefetched=fetched
        )

    def _prefetch(self, env: Envelope) -> Future[Row | None] | None:
        """Read the row while the journal row is written (a read has no effect, so journal-first
        still holds: nothing is written before the journal row exists)."""
        table = entities.table_for(env.entity, env.known)
        pk, rk = entities.row_keys(env.entity, env.known, env.object_id)
        if env.change_type is ChangeType.ADDED or self.cache.get((table, pk, rk)) is not None:
            return None
        t = projection_table(self.store, table)
        return main_pool().submit(lambda: t.get(pk, rk))

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
            except (TransientStorageError, Conflict):  # ConflictRetriesExhausted is transient
                raise
            except Exception as exc:  # noqa: BLE001 - see _apply_failure
                # a row the service refuses (too large, bad property) or a message our code
                # cannot apply: isolate message by message so only that one is quarantined
                log.warning("batch apply failed (%s); retrying message by message", type(exc).__name__)
                outcomes = [o for o in outcomes if o.status == "quarantined"]
                for env in envs:
                    outcomes.append(self._apply_or_quarantine(env, redelivered=True))
        return outcomes

    def _apply_or_quarantine(
        self, env: Envelope, *, redelivered: bool, prefetched: Prefetched | None = None
    ) -> Outcome:
        """Apply one message; quarantine it when redelivery cannot help (see _apply_failure)."""
        from shared.tables import Conflict, TransientStorageError

        try:
            return self._apply_envelopes([env], redelivered=redelivered, prefetched=prefetched)[0]
        except (TransientStorageError, Conflict):  # ConflictRetriesExhausted is transient
            raise
        except Exception as exc:  # noqa: BLE001 - refused row or a bug: redelivery cannot help
            reason = _apply_failure(exc)
            self._quarantine([(env.raw, PoisonMessage(reason))])
            return Outcome(env.message_id, env.sequence_number, "quarantined", env.entity, env.object_id, reason)

    # ------------------------------------------------------------------ journal / quarantine
    def _journal(
        self, items: Iterable[tuple[RawMessage, Envelope | None, PoisonMessage | None]], *, batch: bool = False
    ) -> bool:
        """Write journal rows; returns True if (single path) the row was new."""
        journal = self.store.table(entities.JOURNAL_TABLE, chunked=True)
        rows, overflow = [], []
        for raw, env, poison in items:
            row, extra = journal_rows(raw, env, poison)
            rows.append(row)
            overflow.extend(extra)
        if overflow:
            self.store.table(entities.JOURNAL_OVERFLOW_TABLE, chunked=True).submit(Op("upsert", r) for r in overflow)
        if batch or len(rows) > 1:
            # REPLACE: a redelivered message journaled in the earlier layout keeps no Body00… beside Body
            journal.submit(Op("upsert", r, {"replace": True}) for r in rows)
            return True
        return journal.insert(rows[0])

    def _quarantine(self, items: list[tuple[RawMessage, PoisonMessage]]) -> None:
        q = self.store.table(entities.QUARANTINE_TABLE, chunked=True)
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
            ops.append(Op("upsert", row))
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
        self,
        envs: list[Envelope],
        *,
        redelivered: bool,
        confirmations: bool = True,
        prefetched: Prefetched | None = None,
    ) -> list[Outcome]:
        groups: dict[CacheKey, list[Envelope]] = {}
        for env in envs:
            table = entities.table_for(env.entity, env.known)
            pk, rk = entities.row_keys(env.entity, env.known, env.object_id)
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

        by_table: dict[str, dict[CacheKey, list[Envelope]]] = {}
        for key, items in groups.items():
            by_table.setdefault(key[0], {})[key] = items

        def apply_table(table: str, rows: dict[CacheKey, list[Envelope]]) -> list[Touched]:
            if len(rows) == 1:
                ((key, items),) = rows.items()
                result = [apply_row(self.store, self.cache, key, items, prefetched)]
            else:
                result = apply_rows(self.store, self.cache, table, rows)
            # this table's index rows go out now, overlapping the other tables' projection writes
            write_links(self.store, result, redelivered=redelivered)
            return result

        touched = [t for result in parallel([partial(apply_table, t, r) for t, r in by_table.items()]) for t in result]
        outcomes = [_outcome(env, t) for t in touched for env in t.envs]
        write_merges(self.store, self.cache, touched, redelivered=redelivered)
        if confirmations:
            confirm_traces(self.confirm, touched)
        return outcomes

    # ------------------------------------------------------------------ rebuild / replay
    def apply_from_journal(self, raws: list[RawMessage], only: set[str] | None = None) -> list[Outcome]:
        """Apply already-journaled messages (rebuild), of the entities ``only`` (None: all): no
        journal write, no confirmations."""
        envs = []
        for raw in raws:
            env, _poison = classify(raw)
            if env is not None and (only is None or env.entity in only):
                envs.append(env)
        if not envs:
            return []
        return self._apply_envelopes(envs, redelivered=True, confirmations=False)


def _outcome(env: Envelope, t: Touched) -> Outcome:
    applied = (
        any(t.after.fv.get(k) == env.version for k in env.body)
        or t.after.del_v == env.version
        or t.after.info_version == env.version
    )
    status: OutcomeStatus = "generic" if not env.known else ("applied" if applied else "stale")
    return Outcome(env.message_id, env.sequence_number, status, env.entity, env.object_id)


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


# --- process-wide processor -----------------------------------------------------------------


def _processor() -> QueueProcessor:
    """The process-wide QueueProcessor over the process-wide TableStore."""
    from shared.tables import get_table_store

    return QueueProcessor(get_table_store())


get_processor = lifecycle.process_wide(_processor)
