"""Quarantined NIF queue messages: list them, replay them after a fix.

    python -m shared.nif.queue.quarantine list
    python -m shared.nif.queue.quarantine replay [--id ROWKEY ...]

Replay re-runs each quarantined message through the same processing code (journal row is
already there and is updated in place). A message that now applies is marked ``replayed``
(kept for audit, no longer listed); one that is still poison stays ``quarantined`` with the
new reason.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.nif.queue import entities
from shared.nif.queue.journal import needs_overflow, raw_from_journal

if TYPE_CHECKING:
    from shared.nif.queue.processor import QueueProcessor
    from shared.tables_contract import Row, Storage

log = logging.getLogger("shared.nif.queue.quarantine")


def list_quarantined(store: Storage) -> list[Row]:
    return [
        r
        for r in store.table(entities.QUARANTINE_TABLE).query(partition_key="quarantined")
        if r.get("Status") == "quarantined"
    ]


def replay(store: Storage, processor: QueueProcessor, ids: list[str] | None = None) -> dict[str, int]:
    q = store.table(entities.QUARANTINE_TABLE)
    counts = {"replayed": 0, "still_poison": 0}
    for row in list_quarantined(store):
        if ids and row["RowKey"] not in ids:
            continue
        overflow = None
        if needs_overflow(row):
            overflow = store.table(entities.JOURNAL_OVERFLOW_TABLE).query(
                partition_key=f"{row['JournalPartitionKey']}-{row['JournalRowKey']}"
            )
        raw = raw_from_journal(row, overflow)
        outcome = processor.process(raw)
        if outcome.status == "quarantined":
            counts["still_poison"] += 1
            continue
        q.upsert(
            {
                "PartitionKey": row["PartitionKey"],
                "RowKey": row["RowKey"],
                "Status": "replayed",
                "ReplayedUtc": datetime.now(UTC),
                "ReplayStatus": outcome.status,
            }
        )
        counts["replayed"] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    from shared.nif.queue.processor import get_processor
    from shared.tables import get_table_store

    parser = argparse.ArgumentParser(prog="python -m shared.nif.queue.quarantine")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    rp = sub.add_parser("replay")
    rp.add_argument("--id", action="append", default=None, help="RowKey of one quarantined message")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    store = get_table_store()
    if args.cmd == "list":
        for row in list_quarantined(store):
            print(f"{row['RowKey']}  messageId={row.get('MessageId')}  reason={row.get('Reason')}")
        return 0
    counts = replay(store, get_processor(), args.id)
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
