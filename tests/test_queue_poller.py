"""Storage queue triggers: the invocation the host builds, and the poller playing the host's listener.

- the builder (:func:`devtools.runtime.invocations.queue_trigger`): what it sends decodes, through
  the runtime's ``Datum`` and ``azure.functions``' own converter, into a ``func.QueueMessage``
  with every field right; the host's quirks (body properties overriding metadata, strict UTF-8);
- host.json ``extensions.queues`` and the polling back-off;
- :class:`devtools.queue_poller.QueuePoller` against Azurite's real Queue service, delivering to a
  test-only app (``tests/queue_trigger_app``) through the runtime. The suite's runtime already
  indexed the real app (one app per process), so that app runs in a child process
  (``tests.queue_trigger_app.harness``) and reports through files its functions write.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.queue_poller import Backoff, QueueOptions, parse_timespan
from devtools.runtime import invocations as inv
from devtools.runtime import protos as _protos

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = ROOT / "tests" / "queue_trigger_app"
T0 = datetime(2026, 12, 2, 1, 0, 5, tzinfo=UTC)


# --- the invocation ------------------------------------------------------------------------------
def _decode(input_data: list[Any], metadata: dict[str, Any]) -> Any:
    """What the runtime makes of the invocation: wire round trip, its Datum, the library's converter."""
    from azure.functions.queue import QueueMessageInConverter
    from azure_functions_runtime.bindings.datumdef import Datum

    p = _protos.load()
    inv_req = p.InvocationRequest(input_data=input_data, trigger_metadata=metadata)
    wire = p.InvocationRequest.FromString(inv_req.SerializeToString())
    data = Datum.from_typed_data(wire.input_data[0].data)
    meta = {k: Datum.from_typed_data(v) for k, v in wire.trigger_metadata.items()}
    return QueueMessageInConverter.decode(data, trigger_metadata=meta)


def _record(body: bytes = b'{"clubId": "c-17"}', **kw: Any) -> inv.QueueMessageRecord:
    values: dict[str, Any] = {
        "body": body,
        "id": "5c0b1c7e-8f7a-4c1e-9d0a-1f2e3d4c5b6a",
        "dequeue_count": 3,
        "pop_receipt": "AgAAAAMAAAAAAAAA+pop/receipt==",
        "inserted_on": T0,
        "expires_on": T0 + timedelta(days=7),
        "next_visible_on": T0 + timedelta(minutes=10, microseconds=250_000),
    }
    values.update(kw)
    return inv.QueueMessageRecord(**values)


def _build(record: inv.QueueMessageRecord, data_type: str | None = None) -> tuple[list[Any], dict[str, Any]]:
    return inv.queue_trigger(_protos.load(), "msg", record, data_type=data_type, capabilities={})


def test_builder_output_decodes_into_a_queue_message_with_every_field() -> None:
    import azure.functions as func

    record = _record()
    input_data, metadata = _build(record)
    msg = _decode(input_data, metadata)
    assert isinstance(msg, func.QueueMessage)
    assert msg.get_body() == b'{"clubId": "c-17"}'
    assert msg.id == record.id and msg.pop_receipt == record.pop_receipt
    assert msg.dequeue_count == 3 and isinstance(msg.dequeue_count, int)
    assert msg.insertion_time == T0 and msg.insertion_time.tzinfo is not None
    assert msg.expiration_time == T0 + timedelta(days=7)
    assert msg.time_next_visible == T0 + timedelta(minutes=10, microseconds=250_000)


def test_metadata_has_the_hosts_types_and_formats() -> None:
    _, metadata = _build(_record())
    kinds = {k: v.WhichOneof("data") for k, v in metadata.items()}
    # QueueTrigger, Id, PopReceipt: strings; DequeueCount (long) and the DateTimeOffsets: JSON (ToRpcDefault)
    assert kinds == {
        "QueueTrigger": "string",
        "DequeueCount": "json",
        "ExpirationTime": "json",
        "Id": "string",
        "InsertionTime": "json",
        "NextVisibleTime": "json",
        "PopReceipt": "string",
        "clubId": "string",  # a JSON-object body's properties join the binding data (ApplyBindingData)
    }
    assert metadata["DequeueCount"].json == "3"
    assert metadata["InsertionTime"].json == '"2026-12-02T01:00:05+00:00"'  # Newtonsoft DateTimeOffset
    assert metadata["NextVisibleTime"].json == '"2026-12-02T01:10:05.25+00:00"'
    assert "sys" not in metadata  # the host skips SystemBindingData


def test_missing_times_are_the_extensions_defaults() -> None:
    record = _record(expires_on=None, next_visible_on=None, inserted_on=None)
    input_data, metadata = _build(record)
    assert metadata["ExpirationTime"].json == '"9999-12-31T23:59:59.9999999+00:00"'  # DateTimeOffset.MaxValue
    msg = _decode(input_data, metadata)
    assert msg.expiration_time == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert abs(msg.insertion_time - datetime.now(UTC)) < timedelta(minutes=1)  # InsertedOn ?? UtcNow


def test_binary_trigger_gets_bytes_and_string_trigger_needs_utf8() -> None:
    record = _record(body=b"\xff\x00not utf-8")
    input_data, metadata = _build(record, data_type="binary")
    assert input_data[0].data.WhichOneof("data") == "bytes"
    assert _decode(input_data, metadata).get_body() == b"\xff\x00not utf-8"
    assert "QueueTrigger" not in metadata  # only for a body that is valid UTF-8
    with pytest.raises(inv.TriggerConversionFailed):
        _build(record, data_type=None)  # ToValidUTF8String throws: the invocation fails before the worker
    text_data, _ = _build(_record(body="blåbær".encode()), data_type="String")
    assert text_data[0].data.string == "blåbær"


def test_json_body_properties_override_builtin_metadata_ignoring_case() -> None:
    """The host's ``Utility.ApplyBindingData``: a body ``{"id": …}`` replaces the message id the
    function sees. Keep work-item bodies free of id, dequeueCount, popReceipt and the time names."""
    body = json.dumps(
        {"id": "from-body", "DEQUEUECOUNT": 9, "nested": {"a": 1}, "list": [1], "none": None, "flag": True}
    )
    input_data, metadata = _build(_record(body=body.encode()))
    msg = _decode(input_data, metadata)
    assert msg.id == "from-body" and msg.dequeue_count == 9
    assert "id" not in metadata and metadata["Id"].string == "from-body"  # the built-in key keeps its spelling
    assert metadata["nested"].json == '{"a":1}' and metadata["flag"].string == "True"
    assert "list" not in metadata and "none" not in metadata
    _, binary_meta = _build(_record(body=body.encode()), data_type="binary")
    assert binary_meta["Id"].string == _record().id  # a byte[] trigger value is not inspected


def test_iso_dates_in_body_properties_become_dotnet_strings() -> None:
    body = b'{"requestedAt": "2026-12-02T01:00:00Z", "night": "2026-12-02"}'
    _, metadata = _build(_record(body=body))
    assert metadata["requestedAt"].string == "12/02/2026 01:00:00"  # JObject.Parse reads it as a DateTime
    assert metadata["night"].string == "2026-12-02"


# --- host.json -----------------------------------------------------------------------------------
def test_timespans_parse_as_dotnet_does() -> None:
    assert parse_timespan("00:00:30") == 30
    assert parse_timespan("00:00:02") == 2
    assert parse_timespan("00:00:00.5") == 0.5
    assert parse_timespan("1.02:03:04") == 86400 + 2 * 3600 + 3 * 60 + 4
    assert parse_timespan("00:10") == 600  # hh:mm
    assert parse_timespan("2") == 2 * 86400  # a bare number is days
    with pytest.raises(ValueError):
        parse_timespan("30s")


def test_options_from_host_json(tmp_path: Path) -> None:
    opts = QueueOptions.from_host_json(APP_DIR / "host.json")
    assert (opts.batch_size, opts.threshold, opts.max_dequeue_count) == (4, 2, 3)
    assert (opts.visibility_timeout, opts.max_polling_interval, opts.message_encoding) == (1.0, 0.5, "base64")
    assert QueueOptions.from_host_json(APP_DIR / "host.json", max_polling_interval=0.2).max_polling_interval == 0.2

    odd = tmp_path / "host.json"
    odd.write_text(json.dumps({"Extensions": {"QUEUES": {"BatchSize": 8, "messageEncoding": "None"}}}))
    opts = QueueOptions.from_host_json(odd)
    assert opts.batch_size == 8 and opts.message_encoding == "none"
    assert opts.threshold == 4 * (os.cpu_count() or 1)  # batchSize / 2 × processors
    defaults = QueueOptions.from_host_json(tmp_path / "absent.json")
    assert (defaults.batch_size, defaults.max_dequeue_count, defaults.visibility_timeout) == (16, 5, 0.0)
    assert defaults.max_polling_interval == 60.0
    for bad in ({"batch_size": 33}, {"max_dequeue_count": 0}, {"max_polling_interval": 0.05}):
        with pytest.raises(ValueError):
            QueueOptions.from_host_json(None, **bad)
    with pytest.raises(TypeError):
        QueueOptions.from_host_json(None, batchSize=3)


def test_the_apps_host_json_is_readable() -> None:
    QueueOptions.from_host_json(ROOT / "host.json")  # whatever extensions.queues holds, it parses


def test_backoff_grows_to_the_maximum_and_resets() -> None:
    import random

    backoff = Backoff(2.0, rng=random.Random(7))
    delays = [backoff.next_delay(False) for _ in range(8)]
    assert delays[0] == 0.1 and delays == sorted(delays) and delays[-1] == 2.0
    assert 0.18 <= delays[1] <= 0.22  # 100 ms + (0.8..1.2) × 100 ms
    assert backoff.next_delay(True) == 0.1


# --- the poller against Azurite ------------------------------------------------------------------
class Harness:
    """The test app in a child process: send messages, run a poller until drained, read what ran."""

    def __init__(self, conn: str, record_dir: Path) -> None:
        from shared.queues import QueueStore

        self.conn = conn
        self.records_dir = record_dir
        self.queue_name = "qt" + uuid.uuid4().hex[:16]
        self.store = QueueStore(connection_string=conn)
        self.queue = self.store.queue(self.queue_name)

    def send(self, body: dict[str, Any] | bytes | str) -> str:
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, bytes):
            return self._raw().send_message(base64.b64encode(body).decode()).id
        return self.queue.send(body)

    def send_raw(self, text: str) -> str:
        return self._raw().send_message(text).id

    def _raw(self, name: str | None = None) -> Any:
        from azure.storage.queue import QueueClient

        return QueueClient.from_connection_string(self.conn, name or self.queue_name)

    def run(self, function: str = "qt_text", *, timeout: float = 40.0, **overrides: Any) -> dict[str, Any]:
        overrides.setdefault("max_polling_interval", 0.2)
        env = dict(os.environ, AzureWebJobsStorage=self.conn, QT_QUEUE=self.queue_name)
        env["QT_RECORD_DIR"] = str(self.records_dir)
        cmd = [sys.executable, "-m", "tests.queue_trigger_app.harness", function, "--timeout", str(timeout)]
        cmd += ["--overrides", json.dumps(overrides)]
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout + 60, check=False)
        assert res.returncode == 0, res.stdout + res.stderr[-4000:]
        return json.loads(res.stdout.strip().splitlines()[-1])

    def records(self) -> list[dict[str, Any]]:
        out = [json.loads(p.read_text()) for p in self.records_dir.glob("*.json")]
        return sorted(out, key=lambda r: r["started"])

    def poison(self) -> list[str]:
        from azure.core.exceptions import ResourceNotFoundError

        with self._raw(self.queue_name + "-poison") as raw:
            try:
                return [m.content for m in raw.peek_messages(max_messages=32)]
            except ResourceNotFoundError:
                return []


@pytest.fixture
def harness(azurite_queues: str, tmp_path: Path) -> Harness:
    return Harness(azurite_queues, tmp_path)


def test_success_deletes_and_metadata_reaches_the_function(harness: Harness) -> None:
    ids = [harness.send({"clubId": f"c-{i}"}) for i in range(3)]
    peeked = {m.id: m for m in harness.queue.peek()}
    stats = harness.run()
    assert (stats["succeeded"], stats["failed"], stats["poisoned"]) == (3, 0, 0)
    assert harness.queue.length() == 0 and harness.poison() == []
    records = {r["id"]: r for r in harness.records()}
    assert set(records) == set(ids)
    for mid, rec in records.items():
        assert bytes.fromhex(rec["body"]) == peeked[mid].content.encode()
        assert rec["dequeue_count"] == 1 and rec["pop_receipt"]
        assert datetime.fromisoformat(rec["insertion_time"]) == peeked[mid].inserted_on
        assert datetime.fromisoformat(rec["expiration_time"]) == peeked[mid].expires_on
        next_visible = datetime.fromisoformat(rec["time_next_visible"])  # received for the host's 10 minutes
        started = datetime.fromtimestamp(rec["started"], UTC)
        assert timedelta(minutes=9, seconds=50) <= next_visible - started <= timedelta(minutes=10, seconds=5)


def test_failures_retry_after_visibility_timeout_then_go_to_poison_intact(harness: Harness) -> None:
    poison_body = json.dumps({"fail": True, "clubId": "c-9", "note": "blåbær"})
    bad = harness.send(poison_body)
    late = harness.send({"failUntil": 2})
    stats = harness.run()  # test app host.json: maxDequeueCount 3, visibilityTimeout 00:00:01
    assert stats["poisoned"] == 1 and stats["failed"] == 4 and stats["succeeded"] == 1 and stats["released"] == 3
    runs = [r for r in harness.records() if r["id"] == bad]
    assert [r["dequeue_count"] for r in runs] == [1, 2, 3] and all(r["failed"] for r in runs)
    gaps = [b["started"] - a["ended"] for a, b in itertools.pairwise(runs)]
    assert all(gap >= 0.9 for gap in gaps), gaps  # hidden for visibilityTimeout before the retry
    assert [r["dequeue_count"] for r in harness.records() if r["id"] == late] == [1, 2]
    assert [base64.b64decode(m).decode() for m in harness.poison()] == [poison_body]
    assert harness.queue.length() == 0


def test_batch_size_runs_messages_concurrently(harness: Harness) -> None:
    for i in range(8):
        harness.send({"sleep": 0.6, "n": i})
    stats = harness.run(batch_size=4, new_batch_threshold=0)
    records = harness.records()
    assert stats["succeeded"] == 8 and stats["max_in_flight"] == 4

    def overlap_at(t: float) -> int:
        return sum(1 for r in records if r["started"] <= t < r["ended"])

    peak = max(overlap_at(r["started"]) for r in records)
    assert peak == 4  # a batch of 4 at once, and no fifth before the batch drained to the threshold (0)
    assert len({r["thread"] for r in records}) >= 4


def test_poison_on_arrival_and_undecodable_messages(harness: Harness) -> None:
    tired = harness.send({"clubId": "c-3"})
    for _ in range(3):  # maxDequeueCount 3: received three times elsewhere, never settled
        [got] = harness.queue.receive(1, visibility_timeout=30)
        harness.queue.hide(got, 0)
    harness.send_raw("not base64 at all!")
    stats = harness.run()
    assert stats["poisoned"] == 2 and stats["invoked"] == 0 and harness.records() == []
    poison = harness.poison()
    assert "not base64 at all!" in poison  # copied as received (the decoding-failure handler)
    assert json.loads(base64.b64decode(next(m for m in poison if m != "not base64 at all!"))) == {"clubId": "c-3"}
    assert tired and harness.queue.length() == 0


def test_binary_trigger_gets_any_bytes_and_string_trigger_poisons_them(harness: Harness) -> None:
    body = b"\xff\xfe\x00 not utf-8"
    harness.send(body)
    stats = harness.run("qt_binary")
    assert stats["succeeded"] == 1
    assert [bytes.fromhex(r["body"]) for r in harness.records()] == [body]

    harness.send(body)
    stats = harness.run("qt_text")  # the host cannot make a string of it: every attempt fails
    assert stats["failed"] == 3 and stats["poisoned"] == 1 and len(harness.records()) == 1
    assert [base64.b64decode(m) for m in harness.poison()] == [body]
