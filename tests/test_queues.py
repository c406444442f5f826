"""shared/queues.py against Azurite's real Queue service: the adapter's operations, its timeouts
and how it translates errors (``StorageError`` / ``TransientStorageError``, as for tables)."""

from __future__ import annotations

import base64
import time

import pytest

from devtools.azurite import connection_string
from devtools.ports import free_port
from shared.config import get_settings
from shared.queues import QueueStore, WorkQueue, poison_name
from shared.tables_codec import StorageError, TransientStorageError


def _queue(queues: QueueStore) -> WorkQueue:
    return queues.queue(get_settings().IDROTTONLINE_EXPORT_QUEUE)


def test_send_peek_receive_delete(queues: QueueStore) -> None:
    q = _queue(queues)
    first = q.send('{"clubId": "c-1"}')
    q.send("second")
    peeked = q.peek()
    assert [m.content for m in peeked] == ['{"clubId": "c-1"}', "second"]
    assert peeked[0].id == first and peeked[0].pop_receipt is None and peeked[0].dequeue_count == 0
    assert q.length() == 2

    got = q.receive(1, visibility_timeout=30)
    assert len(got) == 1 and got[0].content == '{"clubId": "c-1"}' and got[0].dequeue_count == 1
    assert got[0].pop_receipt and got[0].inserted_on and got[0].expires_on and got[0].next_visible_on
    assert [m.content for m in q.peek()] == ["second"]  # hidden while received
    q.delete(got[0])
    assert q.length() == 1


def test_messages_are_base64_text_on_the_wire(queues: QueueStore, azurite_queues: str) -> None:
    """What the host's queue trigger expects with ``messageEncoding: base64`` (its default)."""
    from azure.storage.queue import QueueClient

    q = _queue(queues)
    q.send("blåbær ✓")
    with QueueClient.from_connection_string(azurite_queues, q.name) as raw:
        [wire] = list(raw.peek_messages())
    assert base64.b64decode(wire.content).decode("utf-8") == "blåbær ✓"


def test_hide_and_send_with_visibility(queues: QueueStore) -> None:
    q = _queue(queues)
    q.send("later", visibility_timeout=1)
    assert q.peek() == [] and q.length() == 1  # hidden messages still count
    time.sleep(1.3)
    [got] = q.receive(1, visibility_timeout=30)
    visible_now = q.hide(got, 0)
    assert visible_now.pop_receipt and visible_now.pop_receipt != got.pop_receipt
    assert [m.content for m in q.peek()] == ["later"]
    [again] = q.receive(1)
    assert again.dequeue_count == 2
    q.hide(again, 30)
    assert q.peek() == []


def test_drain_yields_everything_once(queues: QueueStore) -> None:
    q = _queue(queues)
    sent = {f"m{i}" for i in range(40)}  # more than one receive (32 at most)
    for text in sent:
        q.send(text)
    seen = []
    for item in q.drain(visibility_timeout=30):
        seen.append(item.content)
        q.delete(item)
    assert sorted(seen) == sorted(sent) and q.length() == 0


def test_the_store_caches_one_client_per_queue(queues: QueueStore) -> None:
    name = get_settings().IDROTTONLINE_EXPORT_QUEUE
    assert queues.queue(name) is queues.queue(name)
    assert poison_name(name) == f"{name}-poison"


def test_timeouts_are_configured(azurite_queues: str) -> None:
    store = QueueStore(connection_string=azurite_queues, timeout=3.5)
    client = store._client("timeouts")
    config = client._pipeline._transport.connection_config
    assert (config.timeout, config.read_timeout) == (3.5, 3.5)
    retry = next(p for p in client._pipeline._impl_policies if type(p).__name__ == "ExponentialRetry")
    assert retry.total_retries == 2 and retry.initial_backoff == 1  # not the SDK's 15 s


def test_a_bad_queue_name_is_a_storage_error(azurite_queues: str) -> None:
    store = QueueStore(connection_string=azurite_queues)
    with pytest.raises(StorageError) as caught:
        store.queue("Not_A_Valid_Name")
    assert not isinstance(caught.value, TransientStorageError)
    assert "create queue Not_A_Valid_Name" in str(caught.value) and "400" in str(caught.value)


def test_an_unreachable_endpoint_is_transient() -> None:
    """Two retries with short waits (shared.queues sets them; the SDK's default would wait ~40 s)."""
    store = QueueStore(connection_string=connection_string(None, queue_port=free_port()), timeout=1.0)
    with pytest.raises(TransientStorageError, match="create queue q-unreachable: ServiceRequestError"):
        store.queue("q-unreachable")


def test_no_connection_is_a_missing_setting() -> None:
    from shared.config import MissingSetting

    with pytest.raises(MissingSetting):
        QueueStore()
