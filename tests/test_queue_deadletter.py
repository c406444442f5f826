"""Dead-letter drain through azure-servicebus against the fake AMQP broker (devtools/fake_broker)."""

from __future__ import annotations

import json

import pytest

from shared.nif.queue import entities as E
from tests.queue_support import _quiet_sdk_http_log, load  # noqa: F401

QUEUE = "nif-entity-changes"
DLQ = QUEUE + "/$deadletterqueue"

pytest.importorskip("proton")


@pytest.fixture
def broker():
    from devtools.fake_broker import FakeBroker

    with FakeBroker() as b:
        yield b


def _put(broker, item, message_id):
    body = b"" if item.get("body") is None else json.dumps(item["body"]).encode()
    if "raw_body" in item:
        body = item["raw_body"].encode()
    broker.put(DLQ, body=body, application_properties=item["properties"], message_id=message_id)


def test_drain_applies_then_completes(broker, storage, env) -> None:
    from shared.nif.queue.deadletter import drain
    from shared.nif.queue.servicebus import SdkDeadLetterSource

    items = [load(f"TpPerson_{c}.json")[0] for c in ("informational", "added", "modified")]
    for i, item in enumerate(items):
        _put(broker, item, f"dl-{i}")
    _put(broker, load("poison.json")["not_json"], "dl-poison")
    source = SdkDeadLetterSource(broker.connection_string, QUEUE)
    try:
        report = drain(source, wait_seconds=2)
    finally:
        source.close()
    assert (report.completed, report.quarantined, report.failed) == (4, 1, 0)
    assert broker.count(DLQ) == 0
    assert [o for _, _, o in broker.settled] == ["accepted"] * 4
    pk, rk = E.row_keys("TpPerson", True, 8756934)
    assert storage.table(E.PROJECTION_TABLES["TpPerson"]).get(pk, rk)["data"]["lastName"] == "Dunk-Hansen"
    journal = list(storage.table(E.JOURNAL_TABLE).query())
    assert sorted(r["MessageId"] for r in journal) == ["dl-0", "dl-1", "dl-2", "dl-poison"]
    assert len(list(storage.table(E.QUARANTINE_TABLE).query())) == 1


def test_failure_leaves_the_message_in_the_dead_letter_queue(broker, storage) -> None:
    from shared.nif.queue.deadletter import drain
    from shared.nif.queue.servicebus import SdkDeadLetterSource
    from shared.tables import TransientStorageError

    _put(broker, load("TpPerson_added.json")[0], "dl-a")
    _put(broker, load("ToSport_added.json")[0], "dl-b")

    class Failing:
        def process(self, raw):
            raise TransientStorageError("storage down")

    source = SdkDeadLetterSource(broker.connection_string, QUEUE)
    try:
        report = drain(source, Failing(), wait_seconds=2)
    finally:
        source.close()
    assert (report.completed, report.failed) == (0, 1)
    assert broker.count(DLQ) == 2  # abandoned: still there for the next drain
    assert all(o in ("released", "modified") for _, _, o in broker.settled)
