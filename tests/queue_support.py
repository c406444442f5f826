"""Helpers for the queue tests: fixtures from tests/events/queue, messages built as the worker
builds them (``azure.functions.servicebus.ServiceBusMessage``), a local host over the queue and
mirror functions."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.functions.servicebus import ServiceBusMessage

EVENTS = Path(__file__).parent / "events" / "queue"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


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


def queue_app_host(app_host: Any) -> Any:
    """The session host (kept as a name so the queue tests read the same)."""
    return app_host


def projection_snapshot(store: Any, tables: list[str]) -> dict[str, dict]:
    """Rows of ``tables`` without ETags/timestamps (comparable across stores)."""
    out = {}
    for name in tables:
        rows = {}
        for r in store.table(name).query():
            rows[(r["PartitionKey"], r["RowKey"])] = {k: v for k, v in r.items() if not k.startswith("_")}
        out[name] = rows
    return out


import pytest


@pytest.fixture(autouse=True)
def _quiet_sdk_http_log():
    """The SDK's INFO header dumps carry random request ids (UUIDs) that the log guard's
    personnummer pattern sometimes matches (e.g. ``de056486-0243``): not our log lines."""
    import logging

    lg = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
    old = lg.level
    lg.setLevel(logging.WARNING)
    yield
    lg.setLevel(old)
