"""Rebuild projections from the journal.

    python -m shared.nif.queue.rebuild <Entity|all>

Deletes the rows of the chosen projection table(s) (``all`` also clears the generic table, the
links and the merge map), then replays every journaled message of those entities, in journal
order, through the same merge code (no traceId confirmations). Run it while the trigger is
disabled, or accept that messages arriving meanwhile are applied twice (harmless: merges are
idempotent and guarded by version).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from shared.nif.queue import entities
from shared.nif.queue.envelope import KNOWN_ENTITIES, normalise_entity_name
from shared.nif.queue.journal import needs_overflow, raw_from_journal
from shared.tables_contract import Op

if TYPE_CHECKING:
    from shared.nif.queue.processor import QueueProcessor
    from shared.tables_contract import Storage

log = logging.getLogger("shared.nif.queue.rebuild")
CHUNK = 500


def _clear(store: Storage, table_name: str) -> int:
    table = store.table(table_name)
    ops = [
        Op("delete", {"PartitionKey": r["PartitionKey"], "RowKey": r["RowKey"]})
        for r in table.query(select=["PartitionKey", "RowKey"])
    ]
    if ops:
        table.submit(ops)
    return len(ops)


def rebuild(store: Storage, processor: QueueProcessor, target: str) -> dict[str, int]:
    if target.lower() == "all":
        only: set[str] | None = None
        tables = [
            *entities.PROJECTION_TABLES.values(),
            entities.GENERIC_TABLE,
            entities.LINKS_TABLE,
            entities.MERGE_TABLE,
        ]
    else:
        name, known = normalise_entity_name(target)
        if not known:
            raise SystemExit(f"unknown entity {target!r}: one of {', '.join(KNOWN_ENTITIES)} or all")
        only = {name}
        tables = [entities.PROJECTION_TABLES[name]]
    cleared = sum(_clear(store, t) for t in tables)
    processor.cache.clear()
    journal = store.table(entities.JOURNAL_TABLE)
    overflow = store.table(entities.JOURNAL_OVERFLOW_TABLE)
    pending, applied = [], 0
    for row in journal.query():
        entity = row.get("Entity") or ""  # "" = was poison when journaled (maybe replayed since)
        if entity and only is not None and entity not in only:
            continue
        extra = None
        if needs_overflow(row):
            extra = overflow.query(partition_key=f"{row['PartitionKey']}-{row['RowKey']}")
        pending.append(raw_from_journal(row, extra))
        if len(pending) >= CHUNK:
            applied += len(processor.apply_from_journal(pending, only))
            pending = []
    if pending:
        applied += len(processor.apply_from_journal(pending, only))
    return {"cleared": cleared, "applied": applied}


def main(argv: list[str] | None = None) -> int:
    from shared.nif.queue.processor import get_processor
    from shared.tables import get_table_store

    parser = argparse.ArgumentParser(prog="python -m shared.nif.queue.rebuild")
    parser.add_argument("entity", help="entity name (TpPerson, Tp_PaymentType, ...) or all")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    result = rebuild(get_table_store(), get_processor(), args.entity)
    print(" ".join(f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
