"""Fault injection against a real Azurite (our own, on disk, not the session one): stop it in
the middle of a run, the function raises for the affected messages; restart it, redeliver; the
journal holds every message exactly once and the projections equal the model."""

from __future__ import annotations

import random
import uuid

import pytest

from devtools.memtables import MemoryTableStore
from shared.nif.queue import entities as E
from shared.nif.queue.envelope import raw_from_functions
from shared.nif.queue.processor import QueueProcessor
from tests.queue_support import journaled, messages, projection_snapshot
from tests.support import load_event

TABLES = [*E.PROJECTION_TABLES.values(), E.MERGE_TABLE, E.GENERIC_TABLE]


@pytest.fixture
def own_azurite(tmp_path, env):
    from devtools.azurite import Azurite

    az = Azurite(location=tmp_path / "azurite").start()
    env.set(
        DATA_TABLES_CONNECTION=az.connection_string,
        DATA_TABLES_PREFIX="f" + uuid.uuid4().hex[:10],
        STORAGE_TIMEOUT_SECONDS=2,
    )
    yield az
    az.stop()


def _items():
    fx = load_event("queue/person_merge.json")
    shutdown = load_event("queue/club_shutdown.json")
    items = fx["before"] + fx["sequence"] + shutdown["members"][:30] + load_event("queue/unknown_entity.json")
    items += [
        load_event(f"queue/{e}_{c}.json")[0]
        for e in ("ToOrg", "ToSport", "TpPersonContactInformation")
        for c in ("informational", "added", "modified")
    ]
    return items


def test_storage_outage_mid_run_then_redelivery(app_host, own_azurite, monkeypatch) -> None:
    from devtools.host import InvocationFailed
    from shared.tables import Table, get_table_store

    info = app_host.functions["nif_queue"]
    arg = info.trigger["name"]
    msgs = messages(_items())
    random.Random(3).shuffle(msgs)  # out of order as well
    batches = [msgs[i : i + 8] for i in range(0, len(msgs), 8)]

    # stop Azurite in the middle of the 3rd batch: after its journal transaction, before projections
    calls = {"n": 0}
    real_submit = Table.submit

    def submit(self, ops):
        result = real_submit(self, ops)
        calls["n"] += 1
        if self.name.endswith(E.JOURNAL_TABLE) and calls.get("batch") == 2:
            own_azurite.stop()
        return result

    monkeypatch.setattr(Table, "submit", submit)
    failed = []
    for i, batch in enumerate(batches):
        calls["batch"] = i
        try:
            app_host.invoke("nif_queue", **{arg: batch})
        except InvocationFailed as exc:  # the host abandons the batch; Service Bus redelivers it
            assert exc.type_name == "TransientStorageError", exc.message
            failed.append(i)
        if i == 4:  # outage lasts two more batches, then storage is back on the same port and disk
            own_azurite.start()
    assert failed == [2, 3, 4]

    # Service Bus redelivers the abandoned batches (delivery count + 1)
    for i in failed:
        redelivered = []
        for m in batches[i]:
            redelivered.append(
                type(m)(
                    body=m.get_body(),
                    message_id=m.message_id,
                    sequence_number=m.sequence_number,
                    enqueued_time_utc=m.enqueued_time_utc,
                    delivery_count=2,
                    application_properties=m.application_properties,
                    user_properties={},
                )
            )
        app_host.invoke("nif_queue", **{arg: redelivered})

    store = get_table_store()
    assert sorted(raw.sequence_number for raw in journaled(store)) == sorted(m.sequence_number for m in msgs)

    model = MemoryTableStore()
    proc = QueueProcessor(model, confirm=lambda *a, **k: False)
    for m in sorted(messages(_items()), key=lambda m: m.sequence_number):
        proc.process(raw_from_functions(m))
    assert projection_snapshot(store, TABLES) == projection_snapshot(model, TABLES)


def test_single_message_raises_while_storage_is_down(own_azurite) -> None:
    from shared.nif.queue.handlers import handle_message
    from shared.tables import TransientStorageError, get_table_store
    from tests.queue_support import sb_message

    item = load_event("queue/TpPerson_added.json")[0]
    own_azurite.stop()
    with pytest.raises(TransientStorageError):
        handle_message(sb_message(item, 1))
    own_azurite.start()
    handle_message(sb_message(item, 1, delivery_count=2))
    assert len(journaled(get_table_store())) == 1
