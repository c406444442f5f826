"""Azure Storage queues adapter: the one module that talks to azure-storage-queue.

The app's own storage (the account the Functions host uses) carries the IdrottOnline export work
items (:mod:`shared.idrott.fanout`); the host's queue trigger consumes them. Where it connects:

- ``AzureWebJobsStorage``: a connection string (locally Azurite, ``UseDevelopmentStorage=true``
  or the explicit one ``make run`` and the tests set);
- otherwise ``AzureWebJobsStorage__queueServiceUri`` with the app's managed identity
  (:func:`shared.identity.get_credential`), as the Bicep templates provision it.

Messages are base64 text (``TextBase64EncodePolicy``), as the host's queue extension expects with
``messageEncoding: base64`` (its default). Every call has the ``STORAGE_TIMEOUT_SECONDS`` connect
and read timeouts; errors become :class:`~shared.tables_codec.StorageError` /
:class:`~shared.tables_codec.TransientStorageError` exactly as for tables.

A message that the trigger gives up on (``maxDequeueCount`` deliveries) is moved by the host to
``<queue>-poison`` (:func:`poison_name`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared import lifecycle
from shared.config import MissingSetting
from shared.tables_codec import translate

__all__ = ["POISON_SUFFIX", "QueueItem", "QueueStore", "WorkQueue", "get_queue_store", "poison_name"]

POISON_SUFFIX = "-poison"
PEEK_MAX = 32  # the service returns at most 32 messages per peek or receive


def poison_name(queue: str) -> str:
    """The poison queue the Functions host moves a queue's failing messages to."""
    return f"{queue}{POISON_SUFFIX}"


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A message as read from a queue (``pop_receipt`` is None for a peeked one)."""

    id: str
    content: str
    dequeue_count: int
    inserted_on: datetime | None
    expires_on: datetime | None
    next_visible_on: datetime | None = None
    pop_receipt: str | None = None

    @classmethod
    def from_sdk(cls, msg: Any) -> QueueItem:
        return cls(
            id=msg.id,
            content=msg.content if isinstance(msg.content, str) else bytes(msg.content).decode("utf-8", "replace"),
            dequeue_count=int(msg.dequeue_count or 0),
            inserted_on=msg.inserted_on,
            expires_on=msg.expires_on,
            next_visible_on=getattr(msg, "next_visible_on", None),
            pop_receipt=getattr(msg, "pop_receipt", None),
        )


class WorkQueue:
    """One queue. Created (if absent) on first use by :meth:`QueueStore.queue`."""

    def __init__(self, client: Any, name: str) -> None:
        self._client = client
        self.name = name

    def send(self, content: str, *, visibility_timeout: int | None = None, time_to_live: int | None = None) -> str:
        """Enqueue ``content``; visible after ``visibility_timeout`` seconds. Returns the message id."""
        with translate(f"send {self.name}"):
            sent = self._client.send_message(content, visibility_timeout=visibility_timeout, time_to_live=time_to_live)
        return str(sent.id)

    def receive(self, max_messages: int = 1, *, visibility_timeout: int = 30) -> list[QueueItem]:
        """Up to ``max_messages`` (≤ 32) messages, hidden for ``visibility_timeout`` seconds."""
        with translate(f"receive {self.name}"):
            page = self._client.receive_messages(
                messages_per_page=min(max(max_messages, 1), PEEK_MAX),
                max_messages=max_messages,
                visibility_timeout=visibility_timeout,
            )
            return [QueueItem.from_sdk(m) for m in page]

    def peek(self, max_messages: int = PEEK_MAX) -> list[QueueItem]:
        """The first ``max_messages`` (≤ 32) visible messages, without hiding them."""
        with translate(f"peek {self.name}"):
            return [QueueItem.from_sdk(m) for m in self._client.peek_messages(max_messages=min(max_messages, PEEK_MAX))]

    def delete(self, item: QueueItem) -> None:
        with translate(f"delete {self.name}"):
            self._client.delete_message(item.id, item.pop_receipt)

    def hide(self, item: QueueItem, seconds: int) -> QueueItem:
        """Make a received message invisible for ``seconds`` more (0: visible now). Returns it with
        its new pop receipt."""
        with translate(f"update {self.name}"):
            updated = self._client.update_message(item.id, item.pop_receipt, visibility_timeout=seconds)
        return QueueItem(
            item.id,
            item.content,
            item.dequeue_count,
            item.inserted_on,
            item.expires_on,
            next_visible_on=updated.next_visible_on,
            pop_receipt=updated.pop_receipt,
        )

    def length(self) -> int:
        """The service's approximate message count."""
        with translate(f"properties {self.name}"):
            return int(self._client.get_queue_properties().approximate_message_count or 0)

    def drain(self, *, visibility_timeout: int = 60) -> Iterator[QueueItem]:
        """Receive until the queue looks empty (each yielded item is hidden; delete it when done)."""
        while True:
            batch = self.receive(PEEK_MAX, visibility_timeout=visibility_timeout)
            if not batch:
                return
            yield from batch


class QueueStore:
    """Queue clients over one account: a connection string or an endpoint with an identity."""

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        endpoint: str | None = None,
        credential: Any = None,
        timeout: float = 10.0,
    ) -> None:
        if not connection_string and not endpoint:
            raise MissingSetting("AzureWebJobsStorage")
        self._conn = connection_string
        self._endpoint = endpoint
        self._credential = credential
        self._timeout = timeout
        self._queues: dict[str, WorkQueue] = {}
        self._lock = threading.Lock()

    def _client(self, name: str) -> Any:
        from azure.storage.queue import ExponentialRetry, QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

        opts: dict[str, Any] = {
            "message_encode_policy": TextBase64EncodePolicy(),
            "message_decode_policy": TextBase64DecodePolicy(),
            "connection_timeout": self._timeout,
            "read_timeout": self._timeout,
            # the SDK's default waits 15 s, then 15 + 3² s: a storage blip would outlast a request
            "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=2, random_jitter_range=1),
        }
        if self._conn:
            return QueueClient.from_connection_string(self._conn, name, **opts)
        credential = self._credential
        if credential is None:
            from shared.identity import get_credential

            credential = get_credential()
        return QueueClient(self._endpoint, name, credential=credential, **opts)  # type: ignore[arg-type]

    def queue(self, name: str) -> WorkQueue:
        """The queue ``name``, created on first use in this process."""
        with self._lock:
            found = self._queues.get(name)
            if found is not None:
                return found
            client = self._client(name)
            from azure.core.exceptions import ResourceExistsError

            with translate(f"create queue {name}"):
                try:
                    client.create_queue()
                except ResourceExistsError:
                    pass
            self._queues[name] = WorkQueue(client, name)
            return self._queues[name]

    def close(self) -> None:
        with self._lock:
            for q in self._queues.values():
                q._client.close()
            self._queues.clear()


def _queue_store_from_settings() -> QueueStore:
    from shared.config import get_settings

    s = get_settings()
    conn = s.AzureWebJobsStorage.get_secret_value() if s.AzureWebJobsStorage else None
    return QueueStore(
        connection_string=conn, endpoint=s.AzureWebJobsStorage__queueServiceUri, timeout=s.STORAGE_TIMEOUT_SECONDS
    )


get_queue_store = lifecycle.process_wide(_queue_store_from_settings, close=QueueStore.close)
