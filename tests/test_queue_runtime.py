"""Service Bus batches as the host delivers them, through Microsoft's runtime, into a real Azurite.

The host builds a batch's bodies and ``*Array`` trigger metadata by its own rules
(``devtools.runtime.invocations``): string arrays lose their null and empty entries, enqueued
times carry no offset, bodies are bytes (``dataType: binary``). Generated batches mix good
messages with bodies of any bytes (empty, not UTF-8, nested 10 000 deep, numbers of 5 000
digits, JSON of the wrong shape, text larger than a table property, in characters outside the
BMP that count twice), envelope properties that are missing, of odd types, out of range or
larger than a table property, and optional properties (ContentType, CorrelationId, Subject)
present on only some messages, with naive or aware enqueued times.

Invariants (each example):
- the function completes: a poison message never makes it raise (nothing is abandoned, so
  nothing heads for dead letters; only a storage failure may, and none is injected here);
- the journal holds exactly one row per delivered message, with its body and application
  properties intact, and every property in it is that message's own (content type its own or
  unknown, message id its own, enqueued time its own instant in UTC), never another message's;
- the projections equal those of a plain model run over the same messages, and every message
  is either applied or quarantined with a reason.
"""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.memtables import MemoryTableStore
from devtools.runtime.invocations import BrokerMessage
from shared.nif.queue import entities as E
from shared.nif.queue.envelope import RawMessage
from shared.nif.queue.processor import QueueProcessor
from tests.queue_support import T0, body_bytes, journaled, projection_snapshot
from tests.support import event_names, load_event

TABLES = [*E.PROJECTION_TABLES.values(), E.MERGE_TABLE, E.GENERIC_TABLE]
POOL = [item for name in event_names("queue/T*_*.json") for item in load_event(name)]
_SEQ = itertools.count(1_000_000)

BAD_BODIES = {
    "invalid utf-8": b'{"x":"\xff"}',
    "deep": b"[" * 10_000 + b"]" * 10_000,
    "huge integer": b'{"Id": ' + b"9" * 5_000 + b"}",
    "not an object": b"[1, 2]",
    "wide text": json.dumps({"note": "\U0001f600" * 40_000}, ensure_ascii=False).encode(),  # > a property, in UTF-16
}
#: What a property may hold besides the fixture's value: missing, odd types, out of range, huge.
ODD_VALUES = st.sampled_from([None, "", -1, 0, 2**63, 2**70, "9223372036854775808", 1.5, True, "x" * 40_000, "\u00e6"])


@st.composite
def envelope_properties(draw: st.DrawFn, fixture: dict[str, Any]) -> dict[str, Any]:
    props = dict(fixture)
    if draw(st.integers(0, 5)) == 0:  # one in six: spoil one property
        name = draw(st.sampled_from(["ObjectId", "EntityName", "ChangeType"]))
        value = draw(ODD_VALUES)
        if value is None:
            props.pop(name)
        else:
            props[name] = value
    if draw(st.integers(0, 9)) == 0:
        props["Extra"] = "\U0001f600" * 20_000  # Service Bus allows 64 KB of properties
    return props


@st.composite
def broker_messages(draw: st.DrawFn) -> list[BrokerMessage]:
    n = draw(st.integers(1, 12))
    out = []
    for _ in range(n):
        item = draw(st.sampled_from(POOL))
        body_kind = draw(st.sampled_from(["fixture"] * 5 + ["empty", "bytes", *BAD_BODIES]))
        if body_kind == "fixture":
            body = body_bytes(item)
        elif body_kind == "bytes":
            body = draw(st.binary(max_size=64))
        else:
            body = b"" if body_kind == "empty" else BAD_BODIES[body_kind]
        seq = next(_SEQ)
        when = T0 + timedelta(seconds=seq % 100_000, microseconds=draw(st.integers(0, 999_999)))
        if draw(st.booleans()):  # the host's form: a naive UTC DateTime
            when = when.replace(tzinfo=None)
        optional = st.none() | st.just("") | st.text("abcdef/-+.", min_size=1, max_size=12)
        out.append(
            BrokerMessage(
                body=body,
                sequence_number=seq,
                message_id=f"m-{uuid.uuid4().hex[:10]}",
                enqueued_time=when,
                application_properties=draw(envelope_properties(item["properties"])),
                content_type=draw(optional),
                correlation_id=draw(optional),
                subject=draw(optional),
            )
        )
    return out


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _as_delivered(m: BrokerMessage, *, aligned_ids: bool, aligned_types: bool) -> RawMessage:
    """What the consumer may know of ``m``: its own values, or nothing where the batch's array is short."""
    return RawMessage(
        message_id=m.message_id if aligned_ids else "",
        sequence_number=m.sequence_number,
        enqueued_time_utc=_utc(m.enqueued_time),
        delivery_count=m.delivery_count,
        application_properties=dict(m.application_properties),
        body=m.body,
        content_type=(m.content_type or None) if aligned_types else None,
    )


@pytest.fixture
def fresh_tables(storage, env):
    def reset() -> Any:
        env.set(DATA_TABLES_PREFIX="r" + uuid.uuid4().hex[:12])
        from shared.tables import get_table_store

        return get_table_store()

    return reset


@given(batch=broker_messages())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_batches_as_the_host_delivers_them(app_host, fresh_tables, batch: list[BrokerMessage]) -> None:
    store = fresh_tables()
    app_host.invoke("nif_queue", msgs=batch)  # raises InvocationFailed if the batch would be abandoned

    raws = journaled(store)
    assert sorted(r.sequence_number for r in raws) == sorted(m.sequence_number for m in batch), "one per message"
    journal = {raw.sequence_number: raw for raw in raws}
    for m in batch:
        row = journal[m.sequence_number]
        assert row.message_id == m.message_id  # every message has an id: the array is never short
        assert row.content_type in (m.content_type or None, None), "a content type from another message"
        assert row.enqueued_time_utc == _utc(m.enqueued_time)
        assert row.body == m.body
        assert row.application_properties == m.application_properties

    aligned_types = all(m.content_type for m in batch)
    model = MemoryTableStore()
    QueueProcessor(model, confirm=lambda *a, **k: False).process_batch(
        [_as_delivered(m, aligned_ids=True, aligned_types=aligned_types) for m in batch]
    )
    assert projection_snapshot(store, TABLES) == projection_snapshot(model, TABLES)
    assert (
        projection_snapshot(store, [E.QUARANTINE_TABLE]).keys()
        == projection_snapshot(model, [E.QUARANTINE_TABLE]).keys()
    )


def test_empty_body_among_good_messages(app_host, fresh_tables) -> None:
    """The issue's case: a Deleted change without a body in the middle of a batch."""
    store = fresh_tables()
    items = [
        POOL[0],
        {"properties": {"ObjectId": 8756934, "EntityName": "TpPerson", "ChangeType": 3}, "body": None},
        POOL[1],
    ]
    batch = [
        BrokerMessage(
            body=body_bytes(it),
            sequence_number=next(_SEQ),
            application_properties=it["properties"],
            content_type="application/json",
        )
        for it in items
    ]
    assert batch[1].body == b""
    app_host.invoke("nif_queue", msgs=batch)
    assert sorted(raw.sequence_number for raw in journaled(store)) == [m.sequence_number for m in batch]
    assert not list(store.table(E.QUARANTINE_TABLE).query()), "an empty Deleted body is applicable"


def test_correlation_on_some_messages_lands_nowhere_else(app_host, fresh_tables) -> None:
    """ContentType on only the second of three messages: the worker would give it to the first."""
    store = fresh_tables()
    batch = [
        BrokerMessage(
            body=body_bytes(it),
            sequence_number=next(_SEQ),
            application_properties=it["properties"],
            content_type=ct,
            correlation_id=ct,
        )
        for it, ct in zip(POOL[:3], [None, "text/x-only-2", None])
    ]
    app_host.invoke("nif_queue", msgs=batch)
    types = {raw.sequence_number: raw.content_type for raw in journaled(store)}
    assert types[batch[0].sequence_number] is None
