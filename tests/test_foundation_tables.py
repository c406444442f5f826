"""What only the Azure adapter does, and the pure rules of the contract it shares with the fake.

The semantics both stores share (writes, values, limits, transactions, queries, keys) are tested
once for both in tests/test_storage_contract.py; the ``$batch`` wire format in
tests/test_tables_batch.py. Here: key escaping and transaction planning as pure functions, the
stored layout of chunked values (what Azure holds, read through the SDK directly), filter
normalisation and the error map for an unreachable account.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest

from shared.tables import (
    Op,
    StorageError,
    TableStore,
    TransientStorageError,
    as_op,
    escape_key,
    normalize_filter,
    plan_batches,
    unescape_key,
)
from shared.tables_contract import MAX_ENTITY_BYTES, decode_props, encode_props, expand_select, stored_size
from shared.textsize import CHUNK_UNITS, MAX_PROPERTY_UNITS, utf16_units


# --- keys -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        "plain-Key_1.2",
        "a/b",
        "back\\slash",
        "hash#tag",
        "what?",
        "tab\tnew\nline",
        "tilde~7E",
        "æøå ÆØÅ",
        "emoji 🏒",
        "",
        "'quoted'",
    ],
)
def test_escape_round_trip_and_legal(raw: str) -> None:
    escaped = escape_key(raw)
    assert unescape_key(escaped) == raw
    assert not any(ch in escaped for ch in "/\\#?\t\n")
    assert all(32 <= ord(ch) < 127 for ch in escaped)


def test_safe_keys_are_unchanged() -> None:
    assert escape_key("19430") == "19430"
    assert escape_key("7ac07206-471e-4015-9ed7-e6db55ed7201") == "7ac07206-471e-4015-9ed7-e6db55ed7201"


def test_key_longer_than_1kib_is_refused() -> None:
    with pytest.raises(ValueError):
        escape_key("/" * 400)


# --- operations and transaction planning ------------------------------------------------------------
def test_as_op_takes_plain_tuples() -> None:
    entity = {"PartitionKey": "p", "RowKey": "r"}
    assert as_op(("upsert", entity)) == Op("upsert", entity)
    assert as_op(("update", entity, {"etag": "e"})) == Op("update", entity, {"etag": "e"})
    assert as_op(("delete", entity, None)).options == {}
    op = Op("create", entity)
    assert as_op(op) is op and isinstance(op.options, MappingProxyType)  # the shared default is read-only
    kind, ent, opts = op  # still unpacks like the tuples callers pass
    assert (kind, ent, opts) == ("create", entity, {})
    with pytest.raises(ValueError):
        as_op(("merge", entity))


def test_plan_batches_groups_by_partition_and_chunks() -> None:
    ops = [("upsert", {"PartitionKey": f"p{i % 3}", "RowKey": str(i)}) for i in range(650)]
    chunks = plan_batches(ops)
    assert all(len(c) <= 100 for c in chunks)
    assert all(len({op.entity["PartitionKey"] for op in c}) == 1 for c in chunks)
    assert sum(len(c) for c in chunks) == 650
    # order within a partition is kept
    p0 = [int(e["RowKey"]) for c in chunks for _, e, _ in c if e["PartitionKey"] == "p0"]
    assert p0 == sorted(p0)


def test_plan_batches_splits_on_repeated_row_key() -> None:
    ops = [("upsert", {"PartitionKey": "p", "RowKey": "r", "v": i}) for i in range(3)]
    assert [len(c) for c in plan_batches(ops)] == [1, 1, 1]


def test_plan_batches_splits_by_payload_size() -> None:
    big = "x" * 60_000
    ops = [("upsert", {"PartitionKey": "p", "RowKey": str(i), "blob": big}) for i in range(100)]
    chunks = plan_batches(ops)
    assert len(chunks) > 1 and all(sum(len(e["blob"]) for _, e, _ in c) < 3_600_000 for c in chunks)


# --- large values: the stored layout -----------------------------------------------------------------
def test_chunked_layout_pure() -> None:
    text = "a🏒" * 30_000  # 90 000 UTF-16 units
    props = encode_props({"PartitionKey": "p", "RowKey": "r", "v": text, "doc": {"t": text}}, chunked=True)
    assert props["v"] == "" and props["v__cn"] == 3 and props["doc__json"] == "" and props["doc__json__cn"] == 4
    pieces = [props[f"v__c{i}"] for i in range(3)]
    assert "".join(pieces) == text and all(utf16_units(p) <= CHUNK_UNITS for p in pieces)
    assert decode_props(props) == ({"PartitionKey": "p", "RowKey": "r", "v": text, "doc": {"t": text}}, True)
    # short values, and tables without ``chunked``, store one property as before
    assert encode_props({"PartitionKey": "p", "RowKey": "r", "v": "x" * MAX_PROPERTY_UNITS}, chunked=True) == {
        "PartitionKey": "p",
        "RowKey": "r",
        "v": "x" * MAX_PROPERTY_UNITS,
    }
    assert encode_props({"PartitionKey": "p", "RowKey": "r", "v": text})["v"] == text
    # a merge of an empty value writes the count 0; a replace or create need not
    assert encode_props({"PartitionKey": "p", "RowKey": "r", "v": ""}, chunked=True, merge=True)["v__cn"] == 0
    assert "v__cn" not in encode_props({"PartitionKey": "p", "RowKey": "r", "v": ""}, chunked=True)


def test_stale_pieces_are_never_read() -> None:
    stale = {"PartitionKey": "p", "RowKey": "r", "v__cn": 2, "v__c0": "a", "v__c1": "b", "v__c2": "old"}
    assert decode_props({**stale, "v": "new"})[0] == {"PartitionKey": "p", "RowKey": "r", "v": "new"}
    assert decode_props({**stale, "v": ""})[0]["v"] == "ab"
    assert decode_props({**stale, "v": "", "v__cn": 0})[0]["v"] == ""
    _, complete = decode_props({"PartitionKey": "p", "RowKey": "r", "v": "", "v__cn": 2})  # a select without pieces
    assert not complete


def test_select_fetches_the_stored_companions() -> None:
    assert expand_select(["RowKey", "doc"]) == [
        "PartitionKey",
        "RowKey",
        "doc",
        "doc__json",
        "doc__cn",
        "doc__json__cn",
    ]


def test_stored_size_follows_the_services_formula() -> None:
    props = {"PartitionKey": "pk", "RowKey": "r", "s": "ab", "b": b"xyz", "i": 1, "l": 2**40, "t": True, "f": 0.5}
    # 4 + 2*(2+1) + s(8+2+4+4) + b(8+2+4+3) + i(8+2+4) + l(8+2+8) + t(8+2+1) + f(8+2+8)
    assert stored_size(props) == 4 + 6 + 18 + 17 + 14 + 18 + 11 + 18


def test_chunked_layout_in_azure(storage: TableStore) -> None:
    """What Table Storage holds for a chunked value (read through the SDK, not the adapter)."""
    t = storage.table("Layout", chunked=True)
    text = "x" * 70_000
    t.upsert({"PartitionKey": "club/1", "RowKey": "r", "v": text, "n": 1})
    raw = dict(t._client.get_entity(escape_key("club/1"), "r"))
    assert raw["v"] == "" and raw["v__cn"] == 3 and raw["n"] == 1
    assert [len(raw[f"v__c{i}"]) for i in range(3)] == [30_000, 30_000, 10_000]
    assert t.get("club/1", "r")["v"] == text  # type: ignore[index]


def test_azurite_measures_an_entity_in_utf8_so_the_adapter_measures_it_as_the_service_does(
    storage: TableStore,
) -> None:
    """Why a chunked table checks the 1 MiB itself: Azurite refuses by the request's UTF-8 size, the
    service by its UTF-16 formula (:func:`stored_size`). 17 ASCII properties of 32 000 characters
    are ~1.09 MB to the service but ~0.54 MB of UTF-8, so Azurite alone would let them through."""
    ascii_row = {"PartitionKey": "p", "RowKey": "ascii", **{f"v{i}": "x" * 32_000 for i in range(17)}}
    wide_row = {"PartitionKey": "p", "RowKey": "wide", **{f"v{i}": "\u00e9" * 32_000 for i in range(9)}}
    assert stored_size(encode_props(ascii_row)) > MAX_ENTITY_BYTES
    plain = storage.table("SizePlain")
    plain.upsert(ascii_row)  # Azurite: accepted (the service would refuse it)
    assert plain.get("p", "ascii") is not None
    with pytest.raises(StorageError, match="HTTP 413|HTTP 400|EntityTooLarge|larger"):
        plain.upsert(wide_row)  # 1.15 MB of UTF-8: Azurite refuses too
    chunked = storage.table("SizeChunked", chunked=True)
    with pytest.raises(StorageError, match="EntityTooLarge"):
        chunked.upsert(ascii_row)  # refused before it is sent, as the service would
    assert chunked.get("p", "ascii") is None


# --- the adapter only ----------------------------------------------------------------------------------
def test_unreachable_storage_is_transient() -> None:
    from devtools.azurite import connection_string
    from devtools.ports import free_port

    store = TableStore(connection_string=connection_string(free_port()), prefix="x", timeout=1)
    with pytest.raises(TransientStorageError):
        store.table("Nope")


def test_normalize_filter_keeps_literals() -> None:
    assert normalize_filter("(a eq @x)  and  b eq 'two  spaces (x)' ") == "( a eq @x ) and b eq 'two  spaces (x)'"
    assert normalize_filter("name eq 'O''Brien'") == "name eq 'O''Brien'"


def test_one_table_client_per_name(storage: TableStore) -> None:
    plain, chunked = storage.table("Handles"), storage.table("Handles", chunked=True)
    assert plain is storage.table("Handles") and chunked is storage.table("Handles", chunked=True)
    assert plain is not chunked and plain._client is chunked._client and plain.name == chunked.name
