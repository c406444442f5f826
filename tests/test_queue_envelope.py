"""Envelope parsing, entity-name normalisation, poison classification, journal chunking (pure)."""

from __future__ import annotations

import json

import pytest

from shared.nif.queue.envelope import (
    KNOWN_ENTITIES,
    ChangeType,
    PoisonMessage,
    RawMessage,
    normalise_entity_name,
    parse_envelope,
    raw_from_functions,
)
from shared.nif.queue.journal import (
    SEGMENT_BYTES,
    SEGMENT_UNITS,
    journal_keys,
    journal_rows,
    raw_from_journal,
)
from tests.queue_support import sb_message
from tests.support import event_names, load_event


@pytest.mark.parametrize("props_as", ["native", "str", "bytes"])
def test_properties_as_the_sdk_delivers_them(props_as: str) -> None:
    item = load_event("queue/TpPerson_modified.json")[0]
    env = parse_envelope(raw_from_functions(sb_message(item, 5, props_as=props_as)))
    assert env.object_id == 8756934
    assert env.entity == "TpPerson" and env.known
    assert env.change_type is ChangeType.MODIFIED
    assert env.body == {"lastName": "Dunk-Hansen"}


def test_bytes_keys_and_case_insensitive_names() -> None:
    raw = RawMessage("m", 1, None, 1, {b"objectid": b"12", b"entityname": b"tp_person", b"changetype": 9}, b"{}")
    env = parse_envelope(raw)
    assert (env.object_id, env.entity, env.change_type) == (12, "TpPerson", ChangeType.INFORMATIONAL)


@pytest.mark.parametrize("name", ["Tp_Person", "TpPerson", "tpperson", "TP_PERSON", " TpPerson "])
def test_entity_name_normalisation(name: str) -> None:
    assert normalise_entity_name(name) == ("TpPerson", True)


def test_all_eleven_entities_known_in_both_spellings() -> None:
    assert len(KNOWN_ENTITIES) == 11
    for name in KNOWN_ENTITIES:
        assert normalise_entity_name(name)[0] == name
        assert normalise_entity_name(name.replace("_", ""))[0] == name
        assert normalise_entity_name(name[:2] + "_" + name[2:].replace("_", ""))[0] == name
    assert normalise_entity_name("TpPersonBadge") == ("tppersonbadge", False)


@pytest.mark.parametrize("case", list(load_event("queue/poison.json")))
def test_poison_classification(case: str) -> None:
    item = load_event("queue/poison.json")[case]
    with pytest.raises(PoisonMessage):
        parse_envelope(raw_from_functions(sb_message(item, 1)))


def test_deleted_may_have_an_empty_body_other_changes_may_not() -> None:
    item = {"properties": {"ObjectId": 1, "EntityName": "TpMembership", "ChangeType": 3}, "body": None}
    assert parse_envelope(raw_from_functions(sb_message(item, 1))).body == {}
    item["properties"]["ChangeType"] = 2
    with pytest.raises(PoisonMessage, match="empty body"):
        parse_envelope(raw_from_functions(sb_message(item, 1)))


def test_keys_trimmed_and_unknown_fields_kept() -> None:
    item = {
        "properties": {"ObjectId": 207, "EntityName": "ToSport", "ChangeType": 1},
        "body": {"sportId ": 207, "brandNewField": {"x": [1]}},
    }
    env = parse_envelope(raw_from_functions(sb_message(item, 1)))
    assert env.body == {"sportId": 207, "brandNewField": {"x": [1]}}


def test_every_fixture_parses() -> None:
    count = 0
    for name in event_names("queue/*_*.json"):
        if name.removeprefix("queue/") in (
            "poison.json",
            "unknown_entity.json",
            "person_merge.json",
            "club_shutdown.json",
            "trace_confirmation.json",
        ):
            continue
        for item in load_event(name):
            parse_envelope(raw_from_functions(sb_message(item, 1)))
            count += 1
    assert count == 44  # 11 entities x 4 change types


@pytest.mark.parametrize("size", [10, SEGMENT_BYTES // 2 + 7, SEGMENT_UNITS * 2 + 1])
def test_journal_keeps_large_bodies_in_rows_that_fit(size: int) -> None:
    """Written through a chunked table (which refuses a property or an entity the service would),
    the journal row and its overflow rows hold any body, text or binary, and read back whole."""
    from devtools.memtables import MemoryTableStore
    from shared.tables_contract import Op

    table = MemoryTableStore().table("Journal", chunked=True)
    body = json.dumps({"personId": 1, "pad": "x" * size}).encode()
    raw = RawMessage("m1", 123456, None, 1, {"ObjectId": 1, "EntityName": "TpPerson", "ChangeType": 1}, body)
    row, overflow = journal_rows(raw, parse_envelope(raw), None)
    binary = RawMessage("m2", 5, None, 1, {}, b"\xff\xfe" * size)
    brow, boverflow = journal_rows(binary, None, None)
    assert brow["Meta"]["enc"] == "binary"
    for message, (r, extra) in ((raw, (row, overflow)), (binary, (brow, boverflow))):
        table.submit(Op("upsert", e) for e in [r, *extra])
        stored = table.get(r["PartitionKey"], r["RowKey"])
        rest = table.query(partition_key=f"{r['PartitionKey']}-{r['RowKey']}")
        assert stored is not None and raw_from_journal(stored, rest).body == message.body
    # keyed by the broker's sequence number: a redelivery lands on the same row
    redelivered = RawMessage("m1", 123456, None, 2, raw.application_properties, body)
    assert (row["PartitionKey"], row["RowKey"]) == journal_keys(raw) == journal_keys(redelivered)
    assert bool(overflow) == (len(body) > SEGMENT_UNITS)


def test_journal_keys_follow_the_sequence_numbers() -> None:
    """Journal order is delivery order, and neighbours share a partition (one transaction)."""
    keys = [journal_keys(RawMessage("m", n, None, 1, {}, b"")) for n in (9, 10, 999, 1_000, 123_456, 10**15)]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert keys[0][0] == keys[1][0] == keys[2][0]


def test_unicode_digits_are_not_ids() -> None:
    """ "²".isdigit() is True but int("²") raises: such an ObjectId is absent (poison), never a crash."""
    from shared.nif.queue.entities import as_id

    assert as_id("²") is None and as_id("12") == 12
    raw = RawMessage("m-sup", 1, None, 1, {"ObjectId": "²", "EntityName": "TpPerson", "ChangeType": 1}, b"{}")
    with pytest.raises(PoisonMessage):
        parse_envelope(raw)


@pytest.mark.parametrize(("object_id", "poison"), [(0, False), (4, False), (-1, True), (2**63, True)])
def test_object_id_zero_is_an_entity_negative_or_beyond_int64_is_poison(object_id: int, poison: bool) -> None:
    """NIF numbers payment types 0-4 (nif-payments reference): a Tp_PaymentType with ObjectId 0
    must be applied, not quarantined; the seed only says "Id of the entity"."""
    from shared.nif.queue.envelope import PoisonMessage, RawMessage, parse_envelope

    props = {"ObjectId": object_id, "EntityName": "Tp_PaymentType", "ChangeType": 1}
    raw = RawMessage("m-type", 1, None, 1, props, b'{"Id": 0, "Name": "Kontant"}')
    if poison:
        with pytest.raises(PoisonMessage):
            parse_envelope(raw)
    else:
        assert parse_envelope(raw).object_id == object_id
