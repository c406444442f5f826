"""One storage contract, two stores: every test here runs against the Azure adapter on a real Azurite
(``shared.tables.TableStore``) and against ``devtools.memtables.MemoryTableStore``.

The queue's property tests and several comparisons run on the in-memory store and trust it to
behave like Table Storage; this suite is what makes that trust earned. A test that passes on one
store and fails on the other is a drift: fix the fake (or the adapter), never the test. The
contract itself is written down in shared/tables_contract.py and docs/architecture.md.
"""

from __future__ import annotations

import inspect
import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.memtables import MemoryTable, MemoryTableStore
from shared.tables import (
    Conflict,
    Op,
    Storage,
    StorageError,
    StorageTable,
    Table,
    TableStore,
    escape_key,
)
from shared.textsize import MAX_PROPERTY_BYTES, MAX_PROPERTY_UNITS

if TYPE_CHECKING:  # run mypy on this file: both stores are the Protocol

    def _both_are_storage(azure: TableStore, memory: MemoryTableStore) -> tuple[Storage, Storage]:
        return azure, memory


STORES = ["azurite", "memory"]
_names = itertools.count()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Storage:
    if request.param == "azurite":
        return request.getfixturevalue("storage")
    return MemoryTableStore()


@pytest.fixture
def t(store: Storage) -> StorageTable:
    """A fresh table of the store under test."""
    return store.table(f"Contract{next(_names)}")


@pytest.fixture
def tc(store: Storage) -> StorageTable:
    """A fresh table opened with ``chunked=True``."""
    return store.table(f"Chunked{next(_names)}", chunked=True)


def _plain(row: dict | None) -> dict | None:
    """A row without the store's metadata (``_etag``, ``_timestamp``)."""
    return None if row is None else {k: v for k, v in row.items() if not k.startswith("_")}


def _strict(value: Any) -> Any:
    """``value`` with every type made visible, so that ``==`` also compares types and time zones
    (``1 == 1.0 == True``, and aware datetimes are equal across zones). ``-0.0`` counts as ``0.0``:
    Azurite answers ``0`` for it."""
    if isinstance(value, dict):
        return {_strict(k): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_strict(v) for v in value])
    if isinstance(value, datetime):
        return (type(value).__name__, value.isoformat())
    if isinstance(value, float) and value == 0:
        return ("float", 0.0)
    return (type(value).__name__, value)


# --- the interface --------------------------------------------------------------------------------
def _signature(fn: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize(
    "protocol,implementations",
    [(StorageTable, (Table, MemoryTable)), (Storage, (TableStore, MemoryTableStore))],
    ids=["StorageTable", "Storage"],
)
def test_both_stores_have_the_protocols_methods_and_parameters(protocol: type, implementations: tuple) -> None:
    methods = [n for n, v in vars(protocol).items() if inspect.isfunction(v) and not n.startswith("_")]
    assert methods
    for impl in implementations:
        for name in methods:
            assert _signature(getattr(impl, name)) == _signature(getattr(protocol, name)), (impl, name)


def test_table_names_are_checked_alike(store: Storage) -> None:
    for bad in ("with-dash", "has space", "é1234", "a" * 64):  # whatever the prefix
        with pytest.raises(ValueError):
            store.table(bad)
    assert store.table("Abc").name.endswith("Abc")


def test_ping(store: Storage) -> None:
    store.ping()


# --- point writes ---------------------------------------------------------------------------------
def test_insert_returns_false_on_an_existing_row_and_changes_nothing(t: StorageTable) -> None:
    assert t.insert({"PartitionKey": "p", "RowKey": "r", "v": 1}) is True
    assert t.insert({"PartitionKey": "p", "RowKey": "r", "v": 2}) is False
    assert _plain(t.get("p", "r")) == {"PartitionKey": "p", "RowKey": "r", "v": 1}


def test_create_returns_the_etag_and_raises_conflict_on_an_existing_row(t: StorageTable) -> None:
    etag = t.create({"PartitionKey": "p", "RowKey": "r", "v": 1})
    row = t.get("p", "r")
    assert etag and row is not None and etag == row["_etag"]
    assert t.update({"PartitionKey": "p", "RowKey": "r", "v": 2}, etag=etag)  # no read needed in between
    with pytest.raises(Conflict):
        t.create({"PartitionKey": "p", "RowKey": "r", "v": 3})
    assert t.get("p", "r")["v"] == 2  # type: ignore[index]


def test_update_needs_the_current_etag_and_an_existing_row(t: StorageTable) -> None:
    first = t.upsert({"PartitionKey": "p", "RowKey": "r", "v": 1})
    assert first
    second = t.update({"PartitionKey": "p", "RowKey": "r", "v": 2}, etag=first)
    assert second and second != first
    with pytest.raises(Conflict):  # stale
        t.update({"PartitionKey": "p", "RowKey": "r", "v": 3}, etag=first)
    with pytest.raises(Conflict):  # missing
        t.update({"PartitionKey": "p", "RowKey": "gone", "v": 3}, etag=first)
    with pytest.raises(Conflict):  # missing, any ETag
        t.update({"PartitionKey": "p", "RowKey": "gone", "v": 3}, etag="*")
    assert t.update({"PartitionKey": "p", "RowKey": "r", "v": 4}, etag="*")
    assert t.get("p", "r")["v"] == 4  # type: ignore[index]
    assert t.get("p", "gone") is None


def test_upsert_merges_by_default_and_replaces_on_request(t: StorageTable) -> None:
    t.upsert({"PartitionKey": "p", "RowKey": "r", "a": 1, "b": 2})
    t.upsert({"PartitionKey": "p", "RowKey": "r", "a": 9})
    assert _plain(t.get("p", "r")) == {"PartitionKey": "p", "RowKey": "r", "a": 9, "b": 2}
    row = t.get("p", "r")
    assert row is not None
    t.update({"PartitionKey": "p", "RowKey": "r", "c": 3}, etag=row["_etag"])  # update merges too
    assert _plain(t.get("p", "r")) == {"PartitionKey": "p", "RowKey": "r", "a": 9, "b": 2, "c": 3}
    t.upsert({"PartitionKey": "p", "RowKey": "r", "a": 5}, replace=True)
    assert _plain(t.get("p", "r")) == {"PartitionKey": "p", "RowKey": "r", "a": 5}
    row = t.get("p", "r")
    assert row is not None
    t.update({"PartitionKey": "p", "RowKey": "r", "z": 0}, etag=row["_etag"], replace=True)
    assert _plain(t.get("p", "r")) == {"PartitionKey": "p", "RowKey": "r", "z": 0}


def test_none_values_are_not_stored(t: StorageTable) -> None:
    t.upsert({"PartitionKey": "p", "RowKey": "r", "a": 1, "b": None})
    assert _plain(t.get("p", "r")) == {"PartitionKey": "p", "RowKey": "r", "a": 1}
    t.upsert({"PartitionKey": "p", "RowKey": "r", "a": None, "c": 3})  # a merge leaves ``a`` alone
    assert _plain(t.get("p", "r")) == {"PartitionKey": "p", "RowKey": "r", "a": 1, "c": 3}
    t.upsert({"PartitionKey": "p", "RowKey": "r", "a": None, "c": 4}, replace=True)  # a replace drops it
    assert _plain(t.get("p", "r")) == {"PartitionKey": "p", "RowKey": "r", "c": 4}


def test_underscore_names_are_not_stored(t: StorageTable) -> None:
    t.upsert({"PartitionKey": "p", "RowKey": "r", "a": 1, "_note": "x"})
    row = t.get("p", "r")
    assert row is not None and "_note" not in row
    row["a"] = 2  # a row read back (with _etag, _timestamp) can be written as it is
    t.upsert(row, replace=True)
    assert _plain(t.get("p", "r")) == {"PartitionKey": "p", "RowKey": "r", "a": 2}


def test_delete(t: StorageTable) -> None:
    t.delete("p", "never-there")  # nothing to delete: no error
    t.delete("p", "never-there", etag='W/"1"')
    first = t.upsert({"PartitionKey": "p", "RowKey": "r", "v": 1})
    t.upsert({"PartitionKey": "p", "RowKey": "r", "v": 2})
    with pytest.raises(Conflict):
        t.delete("p", "r", etag=first)
    row = t.get("p", "r")
    assert row is not None
    t.delete("p", "r", etag=row["_etag"])
    assert t.get("p", "r") is None
    t.upsert({"PartitionKey": "p", "RowKey": "s"})
    t.delete("p", "s")
    assert t.get("p", "s") is None


def test_entity_needs_both_keys(t: StorageTable) -> None:
    with pytest.raises(ValueError):
        t.upsert({"PartitionKey": "p", "v": 1})
    with pytest.raises(ValueError):
        t.submit([("upsert", {"PartitionKey": "p", "RowKey": None, "v": 1})])


# --- values ---------------------------------------------------------------------------------------
def test_value_types_round_trip(t: StorageTable) -> None:
    when = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))
    entity = {
        "PartitionKey": "club/1",
        "RowKey": "row#1",
        "big": 2**53 + 1,
        "neg": -(2**40),
        "small": 7,
        "when": when,
        "doc": {"a": [1, "x"], "b": None, "c": {"d": 1.5}},
        "items": [1, {"k": True}],
        "flag": False,
        "ratio": 0.25,
        "raw": b"\x00\x01\xff",
        "empty": "",
        "nothing": b"",
        "text": "æøå 🏒 'q' \x00",
    }
    assert t.insert(entity) is True
    got = t.get("club/1", "row#1")
    assert got is not None
    assert _plain(got) == {**entity, "when": when.astimezone(UTC)}
    assert isinstance(got["big"], int) and got["flag"] is False and isinstance(got["raw"], bytes)
    assert got["when"].tzinfo == UTC and got["when"] == when
    assert got["_etag"] and isinstance(got["_timestamp"], datetime)


def test_json_values_follow_jsons_rules(t: StorageTable) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    t.upsert({"PartitionKey": "p", "RowKey": "r", "pair": (1, 2), "keys": {1: "one"}, "at": {"when": when}, "none": []})
    assert _plain(t.get("p", "r")) == {
        "PartitionKey": "p",
        "RowKey": "r",
        "pair": [1, 2],
        "keys": {"1": "one"},
        "at": {"when": str(when)},
        "none": [],
    }


@pytest.mark.parametrize("value", [2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, -(2**63), 0, True], ids=repr)
def test_integers_round_trip_across_int32_and_int64(t: StorageTable, value: int) -> None:
    t.upsert({"PartitionKey": "p", "RowKey": "r", "v": value})
    got = t.get("p", "r")["v"]  # type: ignore[index]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1])
def test_integers_beyond_int64_are_refused(t: StorageTable, value: int) -> None:
    with pytest.raises(TypeError):
        t.upsert({"PartitionKey": "p", "RowKey": "r", "v": value})
    with pytest.raises(TypeError):
        t.submit([("upsert", {"PartitionKey": "p", "RowKey": "r", "v": value})])
    assert t.get("p", "r") is None


def test_datetimes_are_aware_utc(t: StorageTable) -> None:
    with pytest.raises(ValueError):
        t.upsert({"PartitionKey": "p", "RowKey": "r", "t": datetime(2026, 1, 1)})
    with pytest.raises(ValueError):
        t.submit([("upsert", {"PartitionKey": "p", "RowKey": "r", "t": datetime(2026, 1, 1)})])
    oslo = datetime(2026, 6, 1, 23, 30, 0, 999999, tzinfo=timezone(timedelta(hours=2)))
    t.upsert({"PartitionKey": "p", "RowKey": "r", "t": oslo})
    got = t.get("p", "r")["t"]  # type: ignore[index]
    assert got == oslo and got.tzinfo == UTC and got.isoformat() == "2026-06-01T21:30:00.999999+00:00"
    assert type(got) is datetime


def test_floats_round_trip(t: StorageTable) -> None:
    values = {"a": 0.1, "b": 1e300, "c": 5e-324, "d": float("inf"), "e": -float("inf"), "f": 1.0}
    t.upsert({"PartitionKey": "p", "RowKey": "r", **values})
    got = t.get("p", "r")
    assert got is not None and {k: got[k] for k in values} == values and type(got["f"]) is float


# --- property size limits ------------------------------------------------------------------------
LIMIT_CASES = {
    "text at the limit": ("x" * MAX_PROPERTY_UNITS, True),
    "text over the limit": ("x" * (MAX_PROPERTY_UNITS + 1), False),
    "emoji count twice": ("🏒" * (MAX_PROPERTY_UNITS // 2), True),
    "emoji over the limit": ("🏒" * (MAX_PROPERTY_UNITS // 2 + 1), False),
    "binary at the limit": (b"x" * MAX_PROPERTY_BYTES, True),
    "binary over the limit": (b"x" * (MAX_PROPERTY_BYTES + 1), False),
    "JSON over the limit": ({"k": "x" * MAX_PROPERTY_UNITS}, False),
}


@pytest.mark.parametrize("value,fits", LIMIT_CASES.values(), ids=LIMIT_CASES.keys())
def test_one_property_holds_at_most_64_kib(t: StorageTable, value: Any, fits: bool) -> None:
    entity = {"PartitionKey": "p", "RowKey": "r", "v": value}
    if fits:
        t.upsert(entity)
        assert t.get("p", "r")["v"] == value  # type: ignore[index]
        return
    with pytest.raises(StorageError) as exc:
        t.upsert(entity)
    assert not isinstance(exc.value, Conflict)
    with pytest.raises(StorageError):  # in a transaction, the whole chunk
        t.submit([("upsert", {"PartitionKey": "p", "RowKey": "ok"}), ("upsert", entity)])
    assert t.get("p", "r") is None and t.get("p", "ok") is None


# --- large values (chunked tables) ----------------------------------------------------------------
LONG = {
    "text": "x" * 100_000,
    "emoji": "a🏒" * 40_000,  # 120 000 UTF-16 units
    "binary": bytes(range(256)) * 700,
    "json": {"items": ["æøå " * 10, 12345] * 3000},
}


@pytest.mark.parametrize("value", LONG.values(), ids=LONG.keys())
def test_chunked_table_stores_values_longer_than_one_property(tc: StorageTable, value: Any) -> None:
    tc.upsert({"PartitionKey": "p", "RowKey": "r", "v": value, "small": 1})
    assert _plain(tc.get("p", "r")) == {"PartitionKey": "p", "RowKey": "r", "v": value, "small": 1}
    assert [_plain(r) for r in tc.query(partition_key="p")] == [_plain(tc.get("p", "r"))]
    assert tc.get("p", "r", select=["v"]) == {"v": value, "_etag": tc.get("p", "r")["_etag"]}  # type: ignore[index]
    assert [r["v"] for r in tc.query(partition_key="p", select=["v"])] == [value]
    tc.submit([("upsert", {"PartitionKey": "p", "RowKey": "b", "v": value})])
    assert tc.get("p", "b")["v"] == value  # type: ignore[index]


def test_every_handle_reads_chunked_values(store: Storage) -> None:
    name = f"Chunked{next(_names)}"
    store.table(name, chunked=True).upsert({"PartitionKey": "p", "RowKey": "r", "v": LONG["emoji"]})
    assert store.table(name).get("p", "r")["v"] == LONG["emoji"]  # type: ignore[index]
    with pytest.raises(StorageError):  # writing it needs the chunked handle
        store.table(name).upsert({"PartitionKey": "p", "RowKey": "s", "v": LONG["emoji"]})


def test_chunked_table_reads_rows_written_with_one_property(store: Storage) -> None:
    name = f"Chunked{next(_names)}"
    store.table(name).upsert({"PartitionKey": "p", "RowKey": "r", "v": "short", "doc": {"a": 1}})
    assert _plain(store.table(name, chunked=True).get("p", "r")) == {
        "PartitionKey": "p",
        "RowKey": "r",
        "v": "short",
        "doc": {"a": 1},
    }


def test_chunked_values_survive_merges(tc: StorageTable) -> None:
    long, other = LONG["text"], "y" * 70_000
    tc.upsert({"PartitionKey": "p", "RowKey": "r", "v": long, "w": 1})
    tc.upsert({"PartitionKey": "p", "RowKey": "r", "w": 2})  # untouched
    assert tc.get("p", "r")["v"] == long  # type: ignore[index]
    tc.upsert({"PartitionKey": "p", "RowKey": "r", "v": None})  # a merge of None leaves it
    assert tc.get("p", "r")["v"] == long  # type: ignore[index]
    tc.upsert({"PartitionKey": "p", "RowKey": "r", "v": "short"})  # shorter: stale pieces are not read
    assert _plain(tc.get("p", "r")) == {"PartitionKey": "p", "RowKey": "r", "v": "short", "w": 2}
    tc.upsert({"PartitionKey": "p", "RowKey": "r", "v": other})  # fewer pieces than before
    assert tc.get("p", "r")["v"] == other  # type: ignore[index]
    tc.upsert({"PartitionKey": "p", "RowKey": "r", "v": ""})  # empty is a value too
    assert tc.get("p", "r")["v"] == ""  # type: ignore[index]
    row = tc.get("p", "r")
    assert row is not None
    tc.update({"PartitionKey": "p", "RowKey": "r", "v": long}, etag=row["_etag"])
    assert tc.get("p", "r")["v"] == long  # type: ignore[index]
    tc.upsert({"PartitionKey": "p", "RowKey": "r", "v": 5})  # another type
    assert tc.get("p", "r")["v"] == 5  # type: ignore[index]
    tc.upsert({"PartitionKey": "p", "RowKey": "r", "v": long}, replace=True)
    assert _plain(tc.get("p", "r")) == {"PartitionKey": "p", "RowKey": "r", "v": long}


def test_chunked_entity_is_limited_to_1_mib(tc: StorageTable) -> None:
    fits = "x" * 500_000  # 1 000 000 bytes stored (UTF-16)
    tc.upsert({"PartitionKey": "p", "RowKey": "r", "v": fits})
    assert tc.get("p", "r")["v"] == fits  # type: ignore[index]
    with pytest.raises(StorageError):
        tc.upsert({"PartitionKey": "p", "RowKey": "s", "v": "x" * 530_000})
    with pytest.raises(StorageError):
        tc.submit([("upsert", {"PartitionKey": "p", "RowKey": "s", "v": "x" * 530_000})])
    assert tc.get("p", "s") is None


# --- transactions ---------------------------------------------------------------------------------
def test_submit_accepts_ops_and_plain_tuples(t: StorageTable) -> None:
    sent = t.submit(
        [
            Op("upsert", {"PartitionKey": "p", "RowKey": "a", "v": 1}),
            ("upsert", {"PartitionKey": "p", "RowKey": "b", "v": 1}),
            ("upsert", {"PartitionKey": "p", "RowKey": "c", "v": 1}, {"replace": True}),
            ("create", {"PartitionKey": "q", "RowKey": "d", "v": 1}, None),
        ]
    )
    assert sent == 4
    assert [(r["PartitionKey"], r["RowKey"]) for r in t.query()] == [("p", "a"), ("p", "b"), ("p", "c"), ("q", "d")]


def test_submit_refuses_an_unknown_operation_before_sending_anything(t: StorageTable) -> None:
    with pytest.raises(ValueError):
        t.submit([("upsert", {"PartitionKey": "p", "RowKey": "a"}), ("merge", {"PartitionKey": "q", "RowKey": "b"})])
    assert list(t.query()) == []


def test_submit_chunks_over_100_operations_of_one_partition(t: StorageTable) -> None:
    sent = t.submit(
        [("upsert", {"PartitionKey": "club/7", "RowKey": f"{i:05d}", "v": i}) for i in range(257)]
        + [("upsert", {"PartitionKey": "other", "RowKey": "x", "v": 1})]
    )
    assert sent == 258
    assert [r["v"] for r in t.query(partition_key="club/7")] == list(range(257))


def test_submit_applies_a_repeated_row_in_order(t: StorageTable) -> None:
    t.submit([("upsert", {"PartitionKey": "p", "RowKey": "r", "v": i, f"k{i}": i}) for i in range(3)])
    assert _plain(t.get("p", "r")) == {"PartitionKey": "p", "RowKey": "r", "v": 2, "k0": 0, "k1": 1, "k2": 2}


def _failing_ops(t: StorageTable) -> dict[str, tuple[Any, type[Exception]]]:
    stale = t.upsert({"PartitionKey": "p", "RowKey": "changed", "v": 1})
    t.upsert({"PartitionKey": "p", "RowKey": "changed", "v": 2})
    t.upsert({"PartitionKey": "p", "RowKey": "exists", "v": 1})
    t.upsert({"PartitionKey": "p", "RowKey": "kept", "v": 1})
    return {
        "create of an existing row": (("create", {"PartitionKey": "p", "RowKey": "exists"}), Conflict),
        "update with a stale ETag": (("update", {"PartitionKey": "p", "RowKey": "changed"}, {"etag": stale}), Conflict),
        "update of a missing row": (("update", {"PartitionKey": "p", "RowKey": "gone", "v": 1}), Conflict),
        "delete with a stale ETag": (("delete", {"PartitionKey": "p", "RowKey": "changed"}, {"etag": stale}), Conflict),
        "delete of a missing row": (("delete", {"PartitionKey": "p", "RowKey": "gone"}), Conflict),
        "too large a property": (("upsert", {"PartitionKey": "p", "RowKey": "big", "v": "x" * 40_000}), StorageError),
    }


@pytest.mark.parametrize(
    "case",
    [
        "create of an existing row",
        "update with a stale ETag",
        "update of a missing row",
        "delete with a stale ETag",
        "delete of a missing row",
        "too large a property",
    ],
)
def test_a_failing_operation_rolls_back_its_chunk_only(t: StorageTable, case: str) -> None:
    failing, error = _failing_ops(t)[case]
    before = [_plain(r) for r in t.query(partition_key="p")]
    ops = [
        ("upsert", {"PartitionKey": "a-first", "RowKey": "x", "v": 1}),  # its own chunk, sent first
        ("upsert", {"PartitionKey": "p", "RowKey": "new", "v": 1}),
        ("upsert", {"PartitionKey": "p", "RowKey": "kept", "v": 99}),
        failing,
        ("upsert", {"PartitionKey": "z-last", "RowKey": "x", "v": 1}),  # after the failing chunk
    ]
    with pytest.raises(error):
        t.submit(ops)
    assert [_plain(r) for r in t.query(partition_key="p")] == before  # nothing of the failing chunk
    assert t.get("a-first", "x") is not None  # the chunk before it stays applied
    assert t.get("z-last", "x") is None  # the ones after it were not sent


def test_conditional_operations_in_a_transaction(t: StorageTable) -> None:
    etag = t.upsert({"PartitionKey": "p", "RowKey": "u", "v": 1})
    t.upsert({"PartitionKey": "p", "RowKey": "d", "v": 1})
    t.upsert({"PartitionKey": "p", "RowKey": "n", "v": 3})
    d = t.get("p", "d")
    assert etag and d is not None
    t.submit(
        [
            ("update", {"PartitionKey": "p", "RowKey": "u", "w": 2}, {"etag": etag}),
            ("delete", {"PartitionKey": "p", "RowKey": "d"}, {"etag": d["_etag"]}),
            ("update", {"PartitionKey": "p", "RowKey": "n", "w": 3}, {"etag": None, "replace": True}),
        ]
    )
    assert [_plain(r) for r in t.query(partition_key="p")] == [
        {"PartitionKey": "p", "RowKey": "n", "w": 3},
        {"PartitionKey": "p", "RowKey": "u", "v": 1, "w": 2},
    ]


def test_concurrent_conditional_updates_lose_no_increment(t: StorageTable) -> None:
    t.upsert({"PartitionKey": "p", "RowKey": "c", "n": 0})

    def bump() -> None:
        for _ in range(10):
            while True:
                row = t.get("p", "c")
                assert row is not None
                try:
                    t.update({"PartitionKey": "p", "RowKey": "c", "n": row["n"] + 1}, etag=row["_etag"])
                    break
                except Conflict:
                    continue

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert t.get("p", "c")["n"] == 40  # type: ignore[index]


# --- queries --------------------------------------------------------------------------------------
@pytest.fixture
def filled(t: StorageTable) -> StorageTable:
    t.submit(
        [
            ("upsert", {"PartitionKey": "p", "RowKey": k, "n": i, "s": "even" if i % 2 == 0 else "odd"})
            for i, k in enumerate("abcde")
        ]
        + [("upsert", {"PartitionKey": "q", "RowKey": "a", "n": 10, "s": "even"})]
    )
    return t


def _keys(rows: Iterator[dict]) -> list[tuple[str, str]]:
    return [(r["PartitionKey"], r["RowKey"]) for r in rows]


def test_query_with_filters_and_parameters(filled: StorageTable) -> None:
    t = filled
    assert _keys(t.query("RowKey ge @lo and RowKey lt @hi", parameters={"lo": "b", "hi": "d"}, partition_key="p")) == [
        ("p", "b"),
        ("p", "c"),
    ]
    assert _keys(t.query("s eq @s", parameters={"s": "even"})) == [("p", "a"), ("p", "c"), ("p", "e"), ("q", "a")]
    assert _keys(t.query("(n gt @n)", parameters={"n": 3})) == [("p", "e"), ("q", "a")]
    assert _keys(t.query("n ne @n and s eq @s", parameters={"n": 0, "s": "even"}, partition_key="p")) == [
        ("p", "c"),
        ("p", "e"),
    ]
    assert _keys(t.query("missing eq @v", parameters={"v": 1})) == []
    assert _keys(t.query(partition_key="q")) == [("q", "a")]
    assert _keys(t.query(partition_key="none")) == []


def test_query_and_get_with_select(filled: StorageTable) -> None:
    t = filled
    t.upsert({"PartitionKey": "p", "RowKey": "a", "doc": {"x": [1]}})
    assert [_plain(r) for r in t.query(partition_key="p", select=["RowKey", "n"])][:2] == [
        {"RowKey": "a", "n": 0},
        {"RowKey": "b", "n": 1},
    ]
    row = t.get("p", "a", select=["doc", "absent"])
    assert row is not None and set(row) == {"doc", "_etag"} and row["doc"] == {"x": [1]}
    full = t.get("p", "a")
    assert full is not None and "_timestamp" in full and row["_etag"] == full["_etag"]
    rows = list(t.query(partition_key="p", select=["absent"]))
    assert len(rows) == 5 and all(set(r) == {"_etag"} for r in rows)  # every row, with nothing selected in it


def test_paging_with_continuation(t: StorageTable) -> None:
    t.submit([("upsert", {"PartitionKey": "p", "RowKey": f"{i:03d}"}) for i in range(25)])
    seen, token, pages = [], None, 0
    while True:
        items, token = t.page(partition_key="p", page_size=10, continuation=token)
        seen += [i["RowKey"] for i in items]
        pages += 1
        if not token:
            break
    assert seen == [f"{i:03d}" for i in range(25)] and pages == 3
    items, token = t.page("RowKey ge @lo", parameters={"lo": "020"}, partition_key="p", page_size=10)
    assert [i["RowKey"] for i in items] == ["020", "021", "022", "023", "024"] and token is None
    with pytest.raises(ValueError):
        t.page(partition_key="p", continuation="not-a-token")


# --- keys -----------------------------------------------------------------------------------------
KEYS = [
    "plain-Key_1.2",
    "a/b",
    "back\\slash",
    "hash#tag",
    "what?",
    "tab\tnew\nline",
    "tilde~7E",
    "æøå",
    "🏒",
    "",
    "'q'",
]


def test_keys_are_escaped_and_read_back_raw(t: StorageTable) -> None:
    t.submit([("upsert", {"PartitionKey": "club/1", "RowKey": k, "k": k}) for k in KEYS])
    for k in KEYS:
        t.upsert({"PartitionKey": k, "RowKey": k, "k": k})
    for k in KEYS:
        row = t.get(k, k)
        assert row is not None and (row["PartitionKey"], row["RowKey"], row["k"]) == (k, k, k)
    rows = list(t.query(partition_key="club/1"))
    assert [r["RowKey"] for r in rows] == sorted(KEYS, key=escape_key)  # stored keys order the rows
    assert all(r["RowKey"] == r["k"] for r in rows)
    # a filter compares stored keys: a parameter is the stored (escaped) form
    hits = t.query("RowKey ge @lo and RowKey lt @hi", parameters={"lo": "a~", "hi": "a~3"}, partition_key="club/1")
    assert [r["RowKey"] for r in hits] == ["a/b"]
    t.submit([("delete", {"PartitionKey": "club/1", "RowKey": k}) for k in KEYS])
    assert list(t.query(partition_key="club/1")) == []


def test_keys_longer_than_1_kib_escaped_are_refused(t: StorageTable) -> None:
    with pytest.raises(ValueError):
        t.upsert({"PartitionKey": "p", "RowKey": "/" * 400})
    with pytest.raises(ValueError):
        t.get("p", "/" * 400)


# --- any entity -----------------------------------------------------------------------------------
_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_ZONES = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5, minutes=30))])
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    _TEXT,
    st.binary(max_size=64),
    st.datetimes(min_value=datetime(1700, 1, 1), max_value=datetime(9000, 1, 1), timezones=_ZONES),
    st.dictionaries(_TEXT, _JSON, max_size=4),
    st.lists(_JSON, max_size=4),
)
_NAMES = st.from_regex(r"[a-z][a-z0-9]{0,12}", fullmatch=True).filter(lambda n: not n.startswith("odata"))


@st.composite
def entities(draw: st.DrawFn) -> dict[str, Any]:
    props = draw(st.dictionaries(_NAMES, _VALUES, max_size=8))
    return {"PartitionKey": draw(_TEXT), "RowKey": draw(_TEXT), **props}


def expected(entity: dict[str, Any]) -> dict[str, Any]:
    """What any store must read back (independent of the codec): no ``None``, UTC, JSON's rules."""
    out = {}
    for k, v in entity.items():
        if v is None:
            continue
        if isinstance(v, datetime):
            v = v.astimezone(UTC)
        elif isinstance(v, (dict, list)):
            v = json.loads(json.dumps(v, default=str))
        out[k] = v
    return out


_rows = itertools.count()
_SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SLOW
@given(entity=entities())
def test_any_entity_round_trips(t: StorageTable, entity: dict[str, Any]) -> None:
    pk = entity["PartitionKey"] + f"/{next(_rows)}"  # one fresh row per example
    entity = {**entity, "PartitionKey": pk}
    t.upsert(entity, replace=True)
    assert _strict(_plain(t.get(pk, entity["RowKey"]))) == _strict(expected(entity))
    assert _strict([_plain(r) for r in t.query(partition_key=pk)]) == _strict([expected(entity)])


@_SLOW
@given(entity=entities(), long=st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8))
def test_any_entity_with_a_long_value_round_trips_in_a_chunked_table(
    tc: StorageTable, entity: dict[str, Any], long: str
) -> None:
    pk = entity["PartitionKey"] + f"/{next(_rows)}"
    text = (long * (MAX_PROPERTY_UNITS // len(long) + 3))[: MAX_PROPERTY_UNITS * 2]
    entity = {**entity, "PartitionKey": pk, "longtext": text}
    tc.submit([("upsert", entity, {"replace": True})])
    assert _strict(_plain(tc.get(pk, entity["RowKey"]))) == _strict(expected(entity))


# --- both stores answer alike ---------------------------------------------------------------------
_PKS, _RKS = ["p", "q/x"], ["a", "b#", "c"]
_SMALL = st.dictionaries(
    st.sampled_from(["x", "y", "z"]), st.none() | st.integers(-3, 3) | st.sampled_from(["", "s"]), max_size=3
)
_ETAG = st.sampled_from(["current", "stale", "any", "none"])
_STEP = st.tuples(
    st.sampled_from(["insert", "create", "upsert", "replace", "update", "delete", "submit"]),
    st.sampled_from(_PKS),
    st.sampled_from(_RKS),
    _SMALL,
    _ETAG,
    st.lists(
        st.tuples(st.sampled_from(["create", "upsert", "update", "delete"]), st.sampled_from(_RKS), _SMALL, _ETAG),
        max_size=4,
    ),
)


class _Driver:
    """Runs one step on one store; returns what happened (comparable across stores)."""

    def __init__(self, table: StorageTable) -> None:
        self.t = table
        self.seen: dict[tuple[str, str], str] = {}  # first ETag each row had: "stale" later

    def _etag(self, pk: str, rk: str, how: str) -> str | None:
        row = self.t.get(pk, rk)
        if row is not None:
            self.seen.setdefault((pk, rk), row["_etag"])
        if how == "current":
            return row["_etag"] if row else None
        if how == "stale":
            return self.seen.get((pk, rk)) if row is None or self.seen.get((pk, rk)) != row["_etag"] else None
        return "*" if how == "any" else None

    def run(self, step: tuple) -> str:
        kind, pk, rk, props, how, batch = step
        entity = {"PartitionKey": pk, "RowKey": rk, **props}
        try:
            if kind == "insert":
                return f"ok {self.t.insert(entity)}"
            if kind == "create":
                self.t.create(entity)
            elif kind in ("upsert", "replace"):
                self.t.upsert(entity, replace=kind == "replace")
            elif kind == "update":
                self.t.update(entity, etag=self._etag(pk, rk, how) or "*")
            elif kind == "delete":
                self.t.delete(pk, rk, etag=self._etag(pk, rk, how))
            else:
                ops = []
                for op, brk, bprops, bhow in batch:
                    options = {"etag": self._etag(pk, brk, bhow)} if op in ("update", "delete") else {}
                    ops.append((op, {"PartitionKey": pk, "RowKey": brk, **bprops}, options))
                return f"ok {self.t.submit(ops)}"
        except StorageError as exc:
            return type(exc).__name__
        return "ok"

    def rows(self) -> Any:
        return _strict([_plain(r) for r in self.t.query()])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(_STEP, min_size=1, max_size=12))
def test_both_stores_answer_every_sequence_of_operations_alike(storage: TableStore, steps: list[tuple]) -> None:
    name = f"Alike{next(_names)}"
    azure, memory = _Driver(storage.table(name)), _Driver(MemoryTableStore().table(name))
    for step in steps:
        assert azure.run(step) == memory.run(step), step
        assert azure.rows() == memory.rows(), step
    assert azure.rows() == memory.rows()
    for d in (azure, memory):  # leave the Azurite table empty for the next example
        d.t.submit([("delete", {"PartitionKey": r["PartitionKey"], "RowKey": r["RowKey"]}) for r in d.t.query()])
