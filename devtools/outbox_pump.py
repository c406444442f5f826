"""Feed the NIF sandbox's queue outbox into the registered Service Bus function (``make run``).

The sandbox (devtools, another module) exposes ``GET /_sandbox/outbox?after=<seq>`` →
``[{"messageId", "sequenceNumber", "enqueuedTimeUtc", "applicationProperties": {"ObjectId",
"EntityName", "ChangeType"}, "body"}]``. Each item becomes a
:class:`devtools.runtime.invocations.BrokerMessage` (the message as the broker holds it) and the
batch is handed to the queue function through :class:`devtools.host.LocalHost`, which builds
the invocation as the host does and runs it on Microsoft's runtime. The cursor advances only after the function returned, so a failed
invocation is retried on the next poll, like a redelivery.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from devtools.runtime.invocations import BrokerMessage

log = logging.getLogger("devtools.outbox_pump")

_cursors: dict[str, int] = {}
_delivery: dict[str, int] = {}


def to_message(item: dict[str, Any]) -> BrokerMessage:
    body = item.get("body")
    if isinstance(body, (dict, list)):
        raw = json.dumps(body).encode()
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = bytes(body or b"")
    enq = item.get("enqueuedTimeUtc")
    enqueued = datetime.fromisoformat(enq) if isinstance(enq, str) else datetime.now(UTC)
    mid = str(item.get("messageId") or item.get("sequenceNumber"))
    _delivery[mid] = _delivery.get(mid, 0) + 1
    return BrokerMessage(
        body=raw,
        message_id=mid,
        sequence_number=int(item["sequenceNumber"]),
        enqueued_time=enqueued,
        delivery_count=_delivery[mid],
        content_type="application/json",
        application_properties=dict(item.get("applicationProperties") or {}),
    )


def queue_function(host: Any) -> tuple[str, str, bool]:
    """``(function name, trigger argument name, many)`` of the Service Bus function."""
    fns = host.function_of_type("serviceBusTrigger")
    if not fns:
        raise RuntimeError("no Service Bus-triggered function is registered")
    info = fns[0]
    return info.name, info.trigger["name"], str(info.trigger.get("cardinality", "one")).lower() == "many"


def pump_once(sandbox_url: str, host: Any, *, batch_size: int = 100, client: Any = None) -> int:
    """Deliver everything new in the outbox; returns how many messages were delivered."""
    import httpx

    base = sandbox_url.rstrip("/")
    after = _cursors.get(base, 0)
    http = client or httpx.Client(timeout=10.0)
    try:
        res = http.get(f"{base}/_sandbox/outbox", params={"after": after})
        res.raise_for_status()
        items = sorted(res.json(), key=lambda i: int(i["sequenceNumber"]))
    finally:
        if client is None:
            http.close()
    if not items:
        return 0
    name, arg, many = queue_function(host)
    delivered = 0
    for start in range(0, len(items), batch_size if many else 1):
        chunk = items[start : start + (batch_size if many else 1)]
        msgs = [to_message(i) for i in chunk]
        host.invoke(name, **{arg: msgs if many else msgs[0]})  # raises → cursor stays → retried
        _cursors[base] = int(chunk[-1]["sequenceNumber"])
        delivered += len(chunk)
    return delivered


def run(sandbox_url: str, host: Any, *, interval: float = 1.0, stop: threading.Event | None = None) -> threading.Thread:
    """Poll in a daemon thread until ``stop`` is set; errors are logged and retried."""
    stop = stop or threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                n = pump_once(sandbox_url, host)
                if n:
                    log.info("outbox pump delivered %d message(s)", n)
            except Exception as exc:  # noqa: BLE001 - keep pumping; the next poll retries
                log.warning("outbox pump: %s", type(exc).__name__)
            stop.wait(interval)

    t = threading.Thread(target=loop, name="outbox-pump", daemon=True)
    t.start()
    return t
