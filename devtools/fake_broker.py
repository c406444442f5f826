"""A fake AMQP 1.0 broker for azure-servicebus SDK tests (test double, NOT an emulator).

Built on python-qpid-proton (platform notes §4). Enough for the dead-letter drain:

- anonymous SASL; every CBS ``put-token`` on ``$cbs`` answered 200;
- in-memory queues named by the link address path (``nif-entity-changes``,
  ``nif-entity-changes/$deadletterqueue``; case-insensitive);
- peek-lock deliveries (random 16-character tag = lock token) with ``x-opt-sequence-number``,
  ``x-opt-enqueued-time`` and ``x-opt-locked-until`` annotations and the header delivery count;
- outcomes: accepted (complete) removes, released/modified (abandon) requeues at the front with
  the delivery count + 1, rejected (dead-letter) moves the message to ``<queue>/$deadletterqueue``.
  Each outcome is echoed before settling (the SDK settles in "second" mode).

Not supported: sessions, lock renewal, TTL, duplicate detection, ``$management`` (peek),
batched sends (put messages in with :meth:`FakeBroker.put`). Usage::

    with FakeBroker() as broker:
        broker.put("q/$deadletterqueue", body=b"{}", application_properties={...})
        conn = broker.connection_string  # UseDevelopmentEmulator=true, plain TCP
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from devtools.ports import free_port, wait_for_port

DLQ_SUFFIX = "/$deadletterqueue"


@dataclass
class StoredMessage:
    body: bytes
    application_properties: dict[str, Any]
    message_id: str
    sequence_number: int
    enqueued_time: datetime
    delivery_count: int = 0
    content_type: str | None = None
    dead_letter_reason: str | None = None


def _queue_name(address: str | None) -> str:
    address = (address or "").strip()
    if "://" in address:
        address = address.split("://", 1)[1]
        address = address.split("/", 1)[1] if "/" in address else ""
    return address.strip("/").lower()


@dataclass
class FakeBroker:
    host: str = "127.0.0.1"
    port: int = 0
    lock_seconds: float = 60.0
    queues: dict[str, deque] = field(default_factory=dict)
    settled: list[tuple[str, str, str]] = field(default_factory=list)  # (queue, message id, outcome)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._container: Any = None
        self._stop = threading.Event()

    # -- test API ---------------------------------------------------------------------------
    @property
    def connection_string(self) -> str:
        # key is a dummy: the fake answers every CBS token request with 200
        return (
            f"Endpoint=sb://{self.host}:{self.port};SharedAccessKeyName=fake;"
            f"SharedAccessKey=ZmFrZQ==;UseDevelopmentEmulator=true"
        )

    def put(
        self,
        queue: str,
        *,
        body: bytes,
        application_properties: dict[str, Any] | None = None,
        message_id: str | None = None,
        delivery_count: int = 0,
        content_type: str | None = None,
    ) -> StoredMessage:
        msg = StoredMessage(
            body=body,
            application_properties=dict(application_properties or {}),
            message_id=message_id or uuid.uuid4().hex,
            sequence_number=next(self._seq),
            enqueued_time=datetime.now(UTC),
            delivery_count=delivery_count,
            content_type=content_type,
        )
        with self._lock:
            self.queues.setdefault(queue.lower(), deque()).append(msg)
        return msg

    def count(self, queue: str) -> int:
        with self._lock:
            return len(self.queues.get(queue.lower(), ()))

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Self:
        from proton.reactor import Container

        if not self.port:
            self.port = free_port(self.host)
        handler = _Handler(self)
        self._container = Container(handler.handler)
        self._container.sasl_enabled = True
        self._container.allowed_mechs = "ANONYMOUS PLAIN MSSBCBS"
        self._container.allow_insecure_mechs = True
        handler.container = self._container
        self._thread = threading.Thread(target=self._container.run, name="fake-amqp-broker", daemon=True)
        self._thread.start()
        wait_for_port(self.port, self.host, 10.0)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler:
    """proton event handler (runs on the broker thread only)."""

    def __init__(self, broker: FakeBroker) -> None:
        from proton.handlers import MessagingHandler

        self.broker = broker
        self.container: Any = None
        self.unsettled: dict[str, tuple[str, StoredMessage]] = {}
        self.senders: list[Any] = []
        outer = self

        class H(MessagingHandler):
            def __init__(self) -> None:
                super().__init__(prefetch=0, auto_accept=False, auto_settle=False)

            def on_start(self, event: Any) -> None:
                event.container.listen(f"{broker.host}:{broker.port}")
                event.container.schedule(0.05, self)

            def on_timer_task(self, event: Any) -> None:
                if broker._stop.is_set():
                    event.container.stop()
                    return
                for link in list(outer.senders):
                    outer.pump(link)
                event.container.schedule(0.05, self)

            def on_link_opening(self, event: Any) -> None:
                link = event.link
                if link.is_sender:
                    link.source.copy(link.remote_source)
                    link.target.copy(link.remote_target)
                    if _queue_name(link.remote_source.address) != "$cbs":
                        outer.senders.append(link)
                else:
                    link.target.copy(link.remote_target)
                    link.source.copy(link.remote_source)
                    link.flow(100)

            def on_link_closing(self, event: Any) -> None:
                if event.link in outer.senders:
                    outer.senders.remove(event.link)

            def on_sendable(self, event: Any) -> None:
                outer.pump(event.link)

            def on_message(self, event: Any) -> None:
                outer.on_message(event)

            def on_accepted(self, event: Any) -> None:
                outer.settle(event.delivery, "accepted")

            def on_released(self, event: Any) -> None:
                outer.settle(event.delivery, "released")

            def on_modified(self, event: Any) -> None:
                outer.settle(event.delivery, "modified")

            def on_rejected(self, event: Any) -> None:
                outer.settle(event.delivery, "rejected")

        self.handler = H()

    def __getattr__(self, name: str) -> Any:  # Container(handler) looks up on_* hooks
        return getattr(self.handler, name)

    def on_message(self, event: Any) -> None:
        from proton import Message

        link, delivery, msg = event.link, event.delivery, event.message
        address = _queue_name(link.target.address or link.remote_target.address)
        if address == "$cbs":
            reply = Message(
                correlation_id=msg.id,
                properties={
                    "status-code": 200,
                    "status-description": "OK",
                    "statusCode": 200,
                    "statusDescription": "OK",
                },
            )
            from proton import Endpoint

            link_ = event.connection.link_head(Endpoint.LOCAL_ACTIVE)
            while link_ is not None:
                if link_.is_sender and _queue_name(link_.remote_source.address) == "$cbs":
                    link_.send(reply)
                    break
                link_ = link_.next(Endpoint.LOCAL_ACTIVE)
        else:
            body = msg.body
            if isinstance(body, str):
                body = body.encode()
            props = {str(k): v for k, v in (msg.properties or {}).items()}
            self.broker.put(
                address,
                body=bytes(body or b""),
                application_properties=props,
                message_id=str(msg.id) if msg.id else None,
            )
        delivery.update(delivery.ACCEPTED)
        delivery.settle()

    def pump(self, link: Any) -> None:
        from proton import Message, symbol, timestamp

        queue = _queue_name(link.source.address or link.remote_source.address)
        while link.credit > 0:
            with self.broker._lock:
                q = self.broker.queues.get(queue)
                if not q:
                    return
                stored = q.popleft()
            stored.delivery_count += 1
            now_ms = int(time.time() * 1000)
            msg = Message(
                body=stored.body,
                id=stored.message_id,
                properties=dict(stored.application_properties),
                content_type=stored.content_type,
            )
            msg.inferred = True  # bytes body as a data section
            msg.delivery_count = stored.delivery_count - 1
            msg.annotations = {
                symbol("x-opt-sequence-number"): stored.sequence_number,
                symbol("x-opt-enqueued-time"): timestamp(int(stored.enqueued_time.timestamp() * 1000)),
                symbol("x-opt-locked-until"): timestamp(now_ms + int(self.broker.lock_seconds * 1000)),
            }
            tag = uuid.uuid4().hex[
                :16
            ]  # 16 bytes (the SDK reads the lock token from it); ASCII so proton can decode it
            delivery = link.send(msg, tag=tag)
            self.unsettled[tag] = (queue, stored)
            _ = delivery

    def settle(self, delivery: Any, outcome: str) -> None:
        entry = self.unsettled.pop(delivery.tag, None)
        delivery.update(delivery.remote_state)
        delivery.settle()
        if entry is None:
            return
        queue, stored = entry
        self.broker.settled.append((queue, stored.message_id, outcome))
        with self.broker._lock:
            if outcome in ("released", "modified"):
                self.broker.queues.setdefault(queue, deque()).appendleft(stored)
            elif outcome == "rejected" and not queue.endswith(DLQ_SUFFIX):
                self.broker.queues.setdefault(queue + DLQ_SUFFIX, deque()).append(stored)
