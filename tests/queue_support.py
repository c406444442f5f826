"""Helpers for the queue tests: messages built as the worker builds them
(``azure.functions.servicebus.ServiceBusMessage``) from the events in tests/events/queue
(``tests.support.load_event("queue/…")``), and what the queue stored, read back through the
queue modules' own keys and readers."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions.servicebus import ServiceBusMessage

from shared.nif.queue import entities as E
from shared.nif.queue.envelope import RawMessage
from shared.nif.queue.journal import needs_overflow, raw_from_journal
from shared.nif.queue.links import merge_row

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def body_bytes(item: dict[str, Any]) -> bytes:
    if "raw_body" in item:
        return item["raw_body"].encode()
    if item.get("body") is None:
        return b""
    return json.dumps(item["body"], ensure_ascii=False).encode()


def sb_message(
    item: dict[str, Any],
    seq: int,
    *,
    delivery_count: int = 1,
    props_as: str = "native",
    enqueued: datetime | None = None,
) -> ServiceBusMessage:
    """A full ServiceBusMessage; ``props_as`` = native | str | bytes (how the SDK may deliver them)."""
    props = dict(item["properties"])
    if props_as == "str":
        props = {k: str(v) for k, v in props.items()}
    elif props_as == "bytes":
        props = {k: str(v).encode() for k, v in props.items()}
    return ServiceBusMessage(
        body=body_bytes(item),
        message_id=item.get("messageId") or f"msg-{seq}",
        sequence_number=seq,
        enqueued_time_utc=enqueued or (T0 + timedelta(milliseconds=seq)),
        delivery_count=delivery_count,
        content_type="application/json",
        application_properties=props,
        user_properties={},
    )


def messages(items: list[dict[str, Any]], start: int = 1) -> list[ServiceBusMessage]:
    return [sb_message(item, seq) for seq, item in zip(itertools.count(start), items)]


def projection_snapshot(store: Any, tables: list[str]) -> dict[str, dict]:
    """Rows of ``tables`` without ETags/timestamps (comparable across stores)."""
    out = {}
    for name in tables:
        rows = {}
        for r in store.table(name).query():
            rows[(r["PartitionKey"], r["RowKey"])] = {k: v for k, v in r.items() if not k.startswith("_")}
        out[name] = rows
    return out


def projection_row(store: Any, entity: str, object_id: int) -> dict[str, Any] | None:
    """The projection row of a known entity's object (``None`` if absent), found by its id alone
    as the queue finds it (``entities.row_keys``)."""
    pk, rk = E.row_keys(entity, True, object_id)
    return store.table(E.PROJECTION_TABLES[entity]).get(pk, rk)


def journaled(store: Any) -> list[RawMessage]:
    """Every journaled message, read back as it was delivered (body and properties whole, however
    the journal stored them), in journal order."""
    overflow = store.table(E.JOURNAL_OVERFLOW_TABLE)
    out = []
    for row in store.table(E.JOURNAL_TABLE).query():
        extra = None
        if needs_overflow(row):  # as shared.nif.queue.rebuild reads it
            extra = overflow.query(partition_key=f"{row['PartitionKey']}-{row['RowKey']}")
        out.append(raw_from_journal(row, extra))
    return out


def merge_map(store: Any, kind: str) -> dict[int, int]:
    """One kind of the merge map (``"person"``, ``"membership"``, ``"activeMembership"``): each
    merged-away id and the id it was merged into, read where ``links.merge_row`` writes that kind."""
    partition = merge_row(kind, 0, 0)["PartitionKey"]
    return {r["OldId"]: r["SurvivorId"] for r in store.table(E.MERGE_TABLE).query(partition_key=partition)}
