"""The queue function against a real Azurite: per entity and ChangeType, journal-first,
duplicates, ordering guard, poison, unknown entities, person merge, club shutdown, traceId."""

from __future__ import annotations

import logging
import random

import pytest

from shared.nif.queue import entities as E
from shared.nif.queue.envelope import KNOWN_ENTITIES
from tests.queue_support import _quiet_sdk_http_log, load, messages, projection_snapshot, queue_app_host, sb_message  # noqa: F401


@pytest.fixture
def host(app_host, storage):
    return queue_app_host(app_host)


def deliver(host, msgs) -> None:
    name = "nif_queue"
    info = host.functions[name]
    arg = info.trigger["name"]
    many = str(info.trigger.get("cardinality", "one")).lower() == "many"
    if many:
        host.invoke(name, **{arg: list(msgs)})
    else:
        for m in msgs:
            host.invoke(name, **{arg: m})


def row(storage, entity: str, object_id: int) -> dict | None:
    pk, rk = E.row_keys(entity, True, object_id)
    return storage.table(E.PROJECTION_TABLES[entity]).get(pk, rk)


def journal(storage) -> list[dict]:
    return list(storage.table(E.JOURNAL_TABLE).query())


def test_trigger_binding_metadata(host) -> None:
    info = host.functions["nif_queue"]
    assert info.trigger["type"] == "serviceBusTrigger"
    assert info.trigger["queueName"] == "%NIF_QUEUE_NAME%"
    assert info.trigger["connection"] == "NifServiceBus"
    assert str(info.trigger["cardinality"]).lower() == "many"


@pytest.mark.parametrize("entity", KNOWN_ENTITIES)
def test_each_entity_through_every_change_type(host, storage, entity: str) -> None:
    seq = iter(range(1, 100))
    items = [load(f"{entity}_{ct}.json")[0] for ct in ("informational", "added", "modified")]
    deliver(host, [sb_message(i, next(seq)) for i in items])
    oid = items[0]["properties"]["ObjectId"]
    r = row(storage, entity, oid)
    full, delta = items[0]["body"], items[2]["body"]
    expected = {**full, **delta}
    assert r["data"] == expected  # snapshot completes the partial delta; explicit null kept as null
    assert not r.get("Deleted")
    deliver(host, [sb_message(load(f"{entity}_deleted.json")[0], 50)])
    r = row(storage, entity, oid)
    assert r["Deleted"] is True and r["DeletedBy"] == "msg-50" and r["DeletedAt"].startswith("2026-03-01")
    assert r["data"] == expected  # tombstone keeps the row
    assert len(journal(storage)) == 4


def test_null_clears_and_unknown_fields_are_kept(host, storage) -> None:
    contact = [load(f"TpPersonContactInformation_{c}.json")[0] for c in ("added", "modified")]
    org = [load(f"ToOrg_{c}.json")[0] for c in ("added", "modified")]
    deliver(host, messages(contact + org))
    c = row(storage, "TpPersonContactInformation", 5550001)["data"]
    assert c["workPhone"] is None and c["mobilePhone"] == "98765432" and c["email"] == "ola.dunk@example.no"
    o = row(storage, "ToOrg", 19428)["data"]
    assert o["newFieldFromNif"] == {"nested": [1, 2]}


def test_redelivery_does_not_duplicate_the_journal(host, storage) -> None:
    item = load("TpPerson_added.json")[0]
    deliver(host, [sb_message(item, 7)])
    before = projection_snapshot(storage, [E.PROJECTION_TABLES["TpPerson"]])
    deliver(host, [sb_message(item, 7, delivery_count=2)])
    deliver(host, [sb_message(item, 7, delivery_count=3)])
    assert len(journal(storage)) == 1
    assert projection_snapshot(storage, [E.PROJECTION_TABLES["TpPerson"]]) == before


def test_older_change_is_journaled_but_not_applied(host, storage) -> None:
    base = {"properties": {"ObjectId": 42, "EntityName": "TpPerson", "ChangeType": 2}}
    deliver(host, [sb_message({**base, "body": {"lastName": "New"}}, 20)])
    deliver(host, [sb_message({**base, "body": {"lastName": "Old", "firstName": "Only-in-old"}}, 10)])
    data = row(storage, "TpPerson", 42)["data"]
    assert data["lastName"] == "New"  # the newer change wins
    assert data["firstName"] == "Only-in-old"  # a field the newer delta did not touch is still set
    assert len(journal(storage)) == 2


def test_poison_is_quarantined_and_completed(host, storage, caplog) -> None:
    caplog.set_level(logging.WARNING)
    cases = load("poison.json")
    msgs = [sb_message(item, i) for i, item in enumerate(cases.values(), start=1)]
    deliver(host, msgs)  # returns normally: the host completes them
    q = {r["RowKey"]: r for r in storage.table(E.QUARANTINE_TABLE).query()}
    assert len(q) == len(cases)
    reasons = sorted(r["Reason"] for r in q.values())
    assert any("not JSON" in r for r in reasons) and any("outside the enum" in r for r in reasons)
    assert any("ObjectId" in r for r in reasons)
    assert q["00000000000000000001"]["Body00"] == "<xml>not json</xml>"
    assert len(journal(storage)) == len(cases)  # journaled too
    # the App Insights queries in docs/deploy.md match this event name in the message text
    assert sum(r.getMessage().startswith("queue.quarantined message_id=") for r in caplog.records) == len(cases)


def test_unknown_entity_goes_to_the_generic_table_with_a_warning(host, storage, caplog) -> None:
    caplog.set_level(logging.WARNING)
    deliver(host, messages(load("unknown_entity.json")))
    rows = list(storage.table(E.GENERIC_TABLE).query())
    assert len(rows) == 1 and rows[0]["PartitionKey"] == "tppersonbadge" and rows[0]["data"]["badgeId"] == 77
    assert any("unknown EntityName" in r.getMessage() for r in caplog.records)
    assert not list(storage.table(E.QUARANTINE_TABLE).query())


def test_person_merge_sequence(host, storage) -> None:
    fx = load("person_merge.json")
    ids = fx["ids"]
    deliver(host, messages(fx["before"] + fx["sequence"]))
    merge = {r["RowKey"]: r for r in storage.table(E.MERGE_TABLE).query(partition_key="person")}
    assert {int(r["OldId"]): r["SurvivorId"] for r in merge.values()} == {ids["P1"]: ids["N"], ids["P2"]: ids["N"]}
    for key in ("M1", "M2"):
        r = row(storage, "TpMembership", ids[key])
        assert (r.get("Deleted") or r.get("SoftDeleted")) and r["MergedInto"] == ids["N"]
    for key in ("A1", "A2"):
        assert row(storage, "TpActiveMembership", ids[key])["MergedInto"] == ids["N"]
    n = row(storage, "TpPerson", ids["N"])
    assert n["data"]["sportNo"] == "S-2" and n["data"]["mergedPersonIds"] == [ids["P1"], ids["P2"]]
    assert row(storage, "TpMembership", ids["MN"]).get("MergedInto") is None


@pytest.mark.parametrize("seed", [1, 2])
def test_person_merge_marks_survive_any_order(host, storage, seed: int) -> None:
    fx = load("person_merge.json")
    ids = fx["ids"]
    msgs = messages(fx["before"] + fx["sequence"])
    random.Random(seed).shuffle(msgs)
    for m in msgs:  # one at a time, as parallel consumers could deliver them
        deliver(host, [m])
    for key in ("M1", "M2"):
        assert row(storage, "TpMembership", ids[key])["MergedInto"] == ids["N"]


def test_club_shutdown_burst(host, storage) -> None:
    fx = load("club_shutdown.json")
    deliver(host, messages(fx["members"]))
    burst = messages(fx["shutdown"], start=1000)
    for i in range(0, len(burst), 25):
        deliver(host, burst[i : i + 25])
    rows = list(storage.table(E.PROJECTION_TABLES["TpMembership"]).query())
    assert len(rows) == 40 and all(r["Deleted"] and not r.get("MergedInto") for r in rows)
    links = list(storage.table(E.LINKS_TABLE).query(partition_key=f"club-{fx['clubId']}"))
    assert len(links) == 40


def test_trace_id_confirms_the_recorded_request(host, storage) -> None:
    from shared.nif import membership_requests as R

    fx = load("trace_confirmation.json")
    trace = fx["traceId"]
    storage.table(R.TABLE).upsert(
        {
            "PartitionKey": trace.lower(),
            "RowKey": R.ROW_KEY,
            "status": "pending_verification",
            "clubId": 19428,
            "traceId": trace,
        }
    )
    deliver(host, messages(fx["messages"]))
    entity = storage.table(R.TABLE).get(trace.lower(), R.ROW_KEY)
    assert entity["status"] == "confirmed"
    assert entity["personId"] == 8756940 and entity["membershipId"] == 9100040


def test_batch_and_single_paths_agree(storage) -> None:
    from devtools.memtables import MemoryTableStore
    from shared.nif.queue.envelope import raw_from_functions
    from shared.nif.queue.processor import QueueProcessor

    fx = load("person_merge.json")
    raws = [raw_from_functions(m) for m in messages(fx["before"] + fx["sequence"])]
    a, b = MemoryTableStore(), MemoryTableStore()
    pa, pb = QueueProcessor(a, confirm=lambda *x, **k: False), QueueProcessor(b, confirm=lambda *x, **k: False)
    for r in raws:
        pa.process(r)
    pb.process_batch(raws)
    tables = [*E.PROJECTION_TABLES.values(), E.MERGE_TABLE, E.LINKS_TABLE]
    assert projection_snapshot(a, tables) == projection_snapshot(b, tables)


def test_rebuild_from_the_journal(host, storage) -> None:
    from shared.nif.queue.processor import get_processor
    from shared.nif.queue.rebuild import rebuild

    fx = load("person_merge.json")
    deliver(host, messages(fx["before"] + fx["sequence"] + load("unknown_entity.json"), start=1))
    tables = [*E.PROJECTION_TABLES.values(), E.GENERIC_TABLE, E.MERGE_TABLE, E.LINKS_TABLE]
    before = projection_snapshot(storage, tables)
    storage.table(E.PROJECTION_TABLES["TpPerson"]).upsert(
        {"PartitionKey": "000008800", "RowKey": "000008800001", "data": {"broken": True}}, replace=True
    )
    result = rebuild(storage, get_processor(), "Tp_Person")
    assert result["cleared"] == 3
    assert projection_snapshot(storage, tables) == before
    rebuild(storage, get_processor(), "all")
    assert projection_snapshot(storage, tables) == before


def test_quarantine_replay_after_a_fix(host, storage, monkeypatch) -> None:
    import shared.nif.queue.journal as J
    from shared.nif.queue.envelope import RawMessage
    from shared.nif.queue.processor import get_processor
    from shared.nif.queue.quarantine import list_quarantined, replay

    item = load("poison.json")["change_type_outside_enum"]
    deliver(host, [sb_message(item, 3)])
    assert len(list_quarantined(storage)) == 1
    original = J.parse_envelope

    def fixed(raw: RawMessage):  # "the fix": ChangeType 5 is now understood as Modified
        props = dict(raw.application_properties)
        if str(props.get("ChangeType")) == "5":
            props["ChangeType"] = 2
        return original(
            RawMessage(raw.message_id, raw.sequence_number, raw.enqueued_time_utc, raw.delivery_count, props, raw.body)
        )

    monkeypatch.setattr(J, "parse_envelope", fixed)
    assert replay(storage, get_processor()) == {"replayed": 1, "still_poison": 0}
    assert list_quarantined(storage) == []
    assert row(storage, "TpPerson", 1)["data"] == {"personId": 1}
    assert len(journal(storage)) == 1
