"""The queue function against a real Azurite: per entity and ChangeType, journal-first,
duplicates, ordering guard, poison, unknown entities, person merge, club shutdown, traceId."""

from __future__ import annotations

import json
import logging
import random

import pytest

from shared.nif.queue import entities as E
from shared.nif.queue.envelope import KNOWN_ENTITIES
from tests.queue_support import journaled, merge_map, messages, projection_row, projection_snapshot, sb_message
from tests.support import load_event


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


def test_trigger_binding_metadata(app_host) -> None:
    info = app_host.functions["nif_queue"]
    assert info.trigger["type"] == "serviceBusTrigger"
    assert info.trigger["queueName"] == "%NIF_QUEUE_NAME%"
    assert info.trigger["connection"] == "NifServiceBus"
    assert str(info.trigger["cardinality"]).lower() == "many"


@pytest.mark.parametrize("entity", KNOWN_ENTITIES)
def test_each_entity_through_every_change_type(app_host, storage, entity: str) -> None:
    seq = iter(range(1, 100))
    items = [load_event(f"queue/{entity}_{ct}.json")[0] for ct in ("informational", "added", "modified")]
    deliver(app_host, [sb_message(i, next(seq)) for i in items])
    oid = items[0]["properties"]["ObjectId"]
    r = projection_row(storage, entity, oid)
    full, delta = items[0]["body"], items[2]["body"]
    expected = {**full, **delta}
    assert r["data"] == expected  # snapshot completes the partial delta; explicit null kept as null
    assert not r.get("Deleted")
    deliver(app_host, [sb_message(load_event(f"queue/{entity}_deleted.json")[0], 50)])
    r = projection_row(storage, entity, oid)
    assert r["Deleted"] is True and r["DeletedBy"] == "msg-50" and r["DeletedAt"].startswith("2026-03-01")
    assert r["data"] == expected  # tombstone keeps the row
    assert len(journaled(storage)) == 4


def test_null_clears_and_unknown_fields_are_kept(app_host, storage) -> None:
    contact = [load_event(f"queue/TpPersonContactInformation_{c}.json")[0] for c in ("added", "modified")]
    org = [load_event(f"queue/ToOrg_{c}.json")[0] for c in ("added", "modified")]
    deliver(app_host, messages(contact + org))
    c = projection_row(storage, "TpPersonContactInformation", 5550001)["data"]
    assert c["workPhone"] is None and c["mobilePhone"] == "98765432" and c["email"] == "ola.dunk@example.no"
    o = projection_row(storage, "ToOrg", 19428)["data"]
    assert o["newFieldFromNif"] == {"nested": [1, 2]}


def test_redelivery_does_not_duplicate_the_journal(app_host, storage) -> None:
    item = load_event("queue/TpPerson_added.json")[0]
    deliver(app_host, [sb_message(item, 7)])
    before = projection_snapshot(storage, [E.PROJECTION_TABLES["TpPerson"]])
    deliver(app_host, [sb_message(item, 7, delivery_count=2)])
    deliver(app_host, [sb_message(item, 7, delivery_count=3)])
    assert len(journaled(storage)) == 1
    assert projection_snapshot(storage, [E.PROJECTION_TABLES["TpPerson"]]) == before


def test_older_change_is_journaled_but_not_applied(app_host, storage) -> None:
    base = {"properties": {"ObjectId": 42, "EntityName": "TpPerson", "ChangeType": 2}}
    deliver(app_host, [sb_message({**base, "body": {"lastName": "New"}}, 20)])
    deliver(app_host, [sb_message({**base, "body": {"lastName": "Old", "firstName": "Only-in-old"}}, 10)])
    data = projection_row(storage, "TpPerson", 42)["data"]
    assert data["lastName"] == "New"  # the newer change wins
    assert data["firstName"] == "Only-in-old"  # a field the newer delta did not touch is still set
    assert len(journaled(storage)) == 2


def test_poison_is_quarantined_and_completed(app_host, storage, caplog) -> None:
    from shared.nif.queue.journal import raw_from_journal
    from shared.nif.queue.quarantine import list_quarantined

    caplog.set_level(logging.WARNING)
    cases = load_event("queue/poison.json")
    msgs = [sb_message(item, i) for i, item in enumerate(cases.values(), start=1)]
    deliver(app_host, msgs)  # returns normally: the host completes them
    quarantined = list_quarantined(storage)
    assert len(list(storage.table(E.QUARANTINE_TABLE).query())) == len(quarantined) == len(cases)
    held = {raw.sequence_number: raw for raw in map(raw_from_journal, quarantined)}
    assert sorted(held) == [m.sequence_number for m in msgs]  # each message once, as delivered
    reasons = sorted(r["Reason"] for r in quarantined)
    assert any("not JSON" in r for r in reasons) and any("outside the enum" in r for r in reasons)
    assert any("ObjectId" in r for r in reasons)
    assert held[1].body == b"<xml>not json</xml>"
    assert len(journaled(storage)) == len(cases)  # journaled too
    # the App Insights queries in docs/deploy.md match this event name in the message text
    assert sum(r.getMessage().startswith("queue.quarantined message_id=") for r in caplog.records) == len(cases)


def test_unknown_entity_goes_to_the_generic_table_with_a_warning(app_host, storage, caplog) -> None:
    caplog.set_level(logging.WARNING)
    from shared.nif.queue.envelope import normalise_entity_name

    deliver(app_host, messages(load_event("queue/unknown_entity.json")))
    entity, known = normalise_entity_name("TpPersonBadge")
    assert not known and E.table_for(entity, known) == E.GENERIC_TABLE
    assert len(list(storage.table(E.GENERIC_TABLE).query())) == 1
    badge = storage.table(E.GENERIC_TABLE).get(*E.row_keys(entity, known, 77))  # its own key, by its name
    assert badge["data"]["badgeId"] == 77
    assert any("unknown EntityName" in r.getMessage() for r in caplog.records)
    assert not list(storage.table(E.QUARANTINE_TABLE).query())


def test_person_merge_sequence(app_host, storage) -> None:
    fx = load_event("queue/person_merge.json")
    ids = fx["ids"]
    deliver(app_host, messages(fx["before"] + fx["sequence"]))
    assert merge_map(storage, "person") == {ids["P1"]: ids["N"], ids["P2"]: ids["N"]}
    for key in ("M1", "M2"):
        r = projection_row(storage, "TpMembership", ids[key])
        assert (r.get("Deleted") or r.get("SoftDeleted")) and r["MergedInto"] == ids["N"]
    for key in ("A1", "A2"):
        assert projection_row(storage, "TpActiveMembership", ids[key])["MergedInto"] == ids["N"]
    n = projection_row(storage, "TpPerson", ids["N"])
    assert n["data"]["sportNo"] == "S-2" and n["data"]["mergedPersonIds"] == [ids["P1"], ids["P2"]]
    assert projection_row(storage, "TpMembership", ids["MN"]).get("MergedInto") is None


@pytest.mark.parametrize("seed", [1, 2])
def test_person_merge_marks_survive_any_order(app_host, storage, seed: int) -> None:
    fx = load_event("queue/person_merge.json")
    ids = fx["ids"]
    msgs = messages(fx["before"] + fx["sequence"])
    random.Random(seed).shuffle(msgs)
    for m in msgs:  # one at a time, as parallel consumers could deliver them
        deliver(app_host, [m])
    for key in ("M1", "M2"):
        assert projection_row(storage, "TpMembership", ids[key])["MergedInto"] == ids["N"]


def test_club_shutdown_burst(app_host, storage) -> None:
    fx = load_event("queue/club_shutdown.json")
    deliver(app_host, messages(fx["members"]))
    burst = messages(fx["shutdown"], start=1000)
    for i in range(0, len(burst), 25):
        deliver(app_host, burst[i : i + 25])
    rows = list(storage.table(E.PROJECTION_TABLES["TpMembership"]).query())
    assert len(rows) == 40 and all(r["Deleted"] and not r.get("MergedInto") for r in rows)
    # the club still lists its 40 memberships, ended (through the club's links)
    res = app_host.request("GET", f"/api/nif/clubs/{fx['clubId']}/members?status=all", key="function")
    listed = json.loads(res.get_body())
    assert res.status_code == 200 and listed["continuationToken"] is None
    assert sorted(m["membershipId"] for m in listed["items"]) == sorted(r["ObjectId"] for r in rows)
    assert {m["status"] for m in listed["items"]} == {"ended"}


def test_trace_id_confirms_the_recorded_request(app_host, storage) -> None:
    from shared.nif import membership_requests as R
    from shared.nif.models import MembershipRequest, NifMembershipResponse

    fx = load_event("queue/trace_confirmation.json")
    trace = fx["traceId"]
    request = MembershipRequest.model_validate(load_event("nif/membership_request.txt"))
    R.record_request(19428, request, NifMembershipResponse(traceId=trace))  # NIF: accepted, not created yet
    assert R.get_request(trace)["status"] == "pending_verification"
    deliver(app_host, messages(fx["messages"]))
    confirmed = R.get_request(trace)
    assert confirmed["status"] == "confirmed"
    assert confirmed["personId"] == 8756940 and confirmed["membershipId"] == 9100040


def test_batch_and_single_paths_agree(storage) -> None:
    from devtools.memtables import MemoryTableStore
    from shared.nif.queue.envelope import raw_from_functions
    from shared.nif.queue.processor import QueueProcessor

    fx = load_event("queue/person_merge.json")
    raws = [raw_from_functions(m) for m in messages(fx["before"] + fx["sequence"])]
    a, b = MemoryTableStore(), MemoryTableStore()
    pa, pb = QueueProcessor(a, confirm=lambda *x, **k: False), QueueProcessor(b, confirm=lambda *x, **k: False)
    for r in raws:
        pa.process(r)
    pb.process_batch(raws)
    tables = [*E.PROJECTION_TABLES.values(), E.MERGE_TABLE, E.LINKS_TABLE]
    assert projection_snapshot(a, tables) == projection_snapshot(b, tables)


def test_rebuild_from_the_journal(app_host, storage) -> None:
    from shared.nif.queue.processor import get_processor
    from shared.nif.queue.rebuild import rebuild

    fx = load_event("queue/person_merge.json")
    deliver(app_host, messages(fx["before"] + fx["sequence"] + load_event("queue/unknown_entity.json"), start=1))
    tables = [*E.PROJECTION_TABLES.values(), E.GENERIC_TABLE, E.MERGE_TABLE, E.LINKS_TABLE]
    before = projection_snapshot(storage, tables)
    pk, rk = E.row_keys("TpPerson", True, fx["ids"]["P1"])
    storage.table(E.PROJECTION_TABLES["TpPerson"]).upsert(
        {"PartitionKey": pk, "RowKey": rk, "data": {"broken": True}}, replace=True
    )
    result = rebuild(storage, get_processor(), "Tp_Person")
    assert result["cleared"] == 3
    assert projection_snapshot(storage, tables) == before
    rebuild(storage, get_processor(), "all")
    assert projection_snapshot(storage, tables) == before


def test_quarantine_replay_after_a_fix(app_host, storage, monkeypatch) -> None:
    import shared.nif.queue.journal as J
    from shared.nif.queue.envelope import RawMessage
    from shared.nif.queue.processor import get_processor
    from shared.nif.queue.quarantine import list_quarantined, replay

    item = load_event("queue/poison.json")["change_type_outside_enum"]
    deliver(app_host, [sb_message(item, 3)])
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
    assert projection_row(storage, "TpPerson", 1)["data"] == {"personId": 1}
    assert len(journaled(storage)) == 1
