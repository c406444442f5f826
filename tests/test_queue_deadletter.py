"""Dead-letter drain through azure-servicebus against the fake AMQP broker (devtools/fake_broker)."""

from __future__ import annotations

import json

import pytest

from shared.nif.queue import entities as E
from tests.queue_support import journaled, projection_row
from tests.support import load_event

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

    items = [load_event(f"queue/TpPerson_{c}.json")[0] for c in ("informational", "added", "modified")]
    for i, item in enumerate(items):
        _put(broker, item, f"dl-{i}")
    _put(broker, load_event("queue/poison.json")["not_json"], "dl-poison")
    source = SdkDeadLetterSource(broker.connection_string, QUEUE)
    try:
        report = drain(source, wait_seconds=2)
    finally:
        source.close()
    assert (report.completed, report.quarantined, report.failed) == (4, 1, 0)
    assert broker.count(DLQ) == 0
    assert [o for _, _, o in broker.settled] == ["accepted"] * 4
    assert projection_row(storage, "TpPerson", 8756934)["data"]["lastName"] == "Dunk-Hansen"
    assert sorted(raw.message_id for raw in journaled(storage)) == ["dl-0", "dl-1", "dl-2", "dl-poison"]
    assert len(list(storage.table(E.QUARANTINE_TABLE).query())) == 1


def test_failure_leaves_the_message_in_the_dead_letter_queue(broker, storage) -> None:
    from shared.nif.queue.deadletter import drain
    from shared.nif.queue.servicebus import SdkDeadLetterSource
    from shared.tables import TransientStorageError

    _put(broker, load_event("queue/TpPerson_added.json")[0], "dl-a")
    _put(broker, load_event("queue/ToSport_added.json")[0], "dl-b")

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


def test_drain_gets_past_any_message(broker, storage) -> None:
    """Every kind of undecodable or inapplicable message, between good ones: the drain journals
    and quarantines each, applies the rest and completes all of them; nothing stops it."""
    from shared.nif.queue.deadletter import drain
    from shared.nif.queue.servicebus import SdkDeadLetterSource

    person = load_event("queue/TpPerson_added.json")[0]
    props = person["properties"]
    bad = [
        (b'{"x":"\xff"}', props),  # not UTF-8
        (b"[" * 10_000 + b"]" * 10_000, props),  # nested 10 000 deep
        (b'{"Id": ' + b"9" * 5_000 + b"}", props),  # a number of 5 000 digits
        (json.dumps(person["body"]).encode(), {**props, "ObjectId": "9999999999999999999"}),  # > Edm.Int64
        (json.dumps(person["body"]).encode(), {**props, "ObjectId": -1}),
        (b"", {**props, "ChangeType": 2}),  # Modified without a body
    ]
    good = [load_event(f"queue/ToSport_{c}.json")[0] for c in ("added", "modified")]
    _put(broker, good[0], "good-0")
    for i, (body, p) in enumerate(bad):
        broker.put(DLQ, body=body, application_properties=p, message_id=f"bad-{i}")
    _put(broker, good[1], "good-1")
    source = SdkDeadLetterSource(broker.connection_string, QUEUE)
    try:
        report = drain(source, wait_seconds=2)
    finally:
        source.close()
    assert (report.completed, report.quarantined, report.failed) == (len(bad) + 2, len(bad), 0)
    assert broker.count(DLQ) == 0
    quarantined = {r["MessageId"] for r in storage.table(E.QUARANTINE_TABLE).query()}
    assert quarantined == {f"bad-{i}" for i in range(len(bad))}
    assert len(journaled(storage)) == len(bad) + 2


def test_value_bodies_are_kept_as_json() -> None:
    """An AMQP value or sequence body (not what NIF sends) is journaled as JSON text, not refused."""
    from shared.nif.queue.envelope import sdk_body

    assert sdk_body(iter([b"ab", b"c"])) == b"abc"
    assert json.loads(sdk_body({"a": 1})) == {"a": 1}
    assert json.loads(sdk_body(iter([[1, "x"], [b"y"]]))) == [[1, "x"], ["y"]]
    assert sdk_body(None) == b""
