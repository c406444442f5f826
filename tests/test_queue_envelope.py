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
from shared.nif.queue.journal import CHUNK, IN_ROW_CHUNKS, TEXT_CHUNK, journal_rows, raw_from_journal
from tests.queue_support import load, sb_message


@pytest.mark.parametrize("props_as", ["native", "str", "bytes"])
def test_properties_as_the_sdk_delivers_them(props_as: str) -> None:
    item = load("TpPerson_modified.json")[0]
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


@pytest.mark.parametrize("case", list(load("poison.json")))
def test_poison_classification(case: str) -> None:
    item = load("poison.json")[case]
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
    from tests.queue_support import EVENTS

    count = 0
    for path in EVENTS.glob("*_*.json"):
        if path.name in (
            "poison.json",
            "unknown_entity.json",
            "person_merge.json",
            "club_shutdown.json",
            "trace_confirmation.json",
        ):
            continue
        for item in json.loads(path.read_text()):
            parse_envelope(raw_from_functions(sb_message(item, 1)))
            count += 1
    assert count == 44  # 11 entities x 4 change types


@pytest.mark.parametrize("size", [10, CHUNK * 3 + 7, TEXT_CHUNK * (IN_ROW_CHUNKS + 2) + 1])
def test_journal_keeps_large_bodies_in_chunks(size: int) -> None:
    body = json.dumps({"personId": 1, "pad": "x" * size}).encode()
    raw = RawMessage("m1", 123456, None, 1, {"ObjectId": 1, "EntityName": "TpPerson", "ChangeType": 1}, body)
    row, overflow = journal_rows(raw, parse_envelope(raw), None)
    for key, value in row.items():
        if key.startswith("Body") and key[4:].isdigit():
            assert len(value.encode("utf-16-le")) <= 64 * 1024
    binary = RawMessage("m2", 5, None, 1, {}, b"\xff\xfe" * size)
    brow, boverflow = journal_rows(binary, None, None)
    assert brow["Meta"]["enc"] == "binary" and all(len(v) <= 64 * 1024 for k, v in brow.items() if k.startswith("Body"))
    assert raw_from_journal(brow, iter(boverflow)).body == binary.body
    assert row["RowKey"] == "00000000000000123456" and row["PartitionKey"] == "00000000000000123"
    assert raw_from_journal(row, iter(overflow)).body == body
    assert bool(overflow) == (len(body) > TEXT_CHUNK * IN_ROW_CHUNKS)


def test_unicode_digits_are_not_ids() -> None:
    """ "²".isdigit() is True but int("²") raises: such an ObjectId is absent (poison), never a crash."""
    from shared.nif.queue.entities import as_id

    assert as_id("²") is None and as_id("12") == 12
    raw = RawMessage("m-sup", 1, None, 1, {"ObjectId": "²", "EntityName": "TpPerson", "ChangeType": 1}, b"{}")
    with pytest.raises(PoisonMessage):
        parse_envelope(raw)
