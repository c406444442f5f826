"""In-memory stand-in for :class:`shared.tables.TableStore` (test double, local only).

It implements the same contract (:class:`shared.tables_contract.Storage`) and
tests/test_storage_contract.py runs one suite against it and against Azurite. To stay the same
thing, it stores what the service stores: every write goes through the adapter's own encoding
(:func:`shared.tables.encode_stored`: escaped keys, JSON text, UTC datetimes, chunked pieces) and
every read through its decoding, so filters compare and rows sort by stored keys, and a value
reads back exactly as it does from Azure. What it models of the service:

- ETags change on every write; ``insert`` returns False for an existing row; ``create`` raises
  ``Conflict``; ``update`` raises ``Conflict`` on a stale ETag or a missing row; ``delete`` of a
  missing row does nothing, with a stale ETag raises ``Conflict``;
- ``submit`` plans chunks as the adapter does (:func:`shared.tables.plan_batches`) and applies each
  atomically: a ``create`` of an existing row, an ``update`` or ``delete`` of a changed or missing
  row → ``Conflict``, and the chunk leaves nothing behind;
- property limits: a string longer than 32 768 UTF-16 code units or binary over 64 KiB →
  ``StorageError`` (the service's ``400 PropertyValueTooLarge``, for the whole transaction); an
  integer outside Edm.Int64 → ``TypeError`` (what the SDK raises). Like Azurite, it does not
  check the 1 MiB entity limit except where the adapter itself does (``chunked`` tables);
- ``select`` returns only those names (and ``_etag``); without it rows carry ``_timestamp``;
- filters: a conjunction of ``Name op @param`` comparisons (``eq ne gt ge lt le``), which is all
  the callers send; anything else is a ``ValueError``;
- ``page`` tokens are offsets (opaque to callers; a foreign token is a ``ValueError``).

``fail(table, op)``, when set, is called before each operation (fault injection).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.tables import Conflict, Op, StorageError, encode_stored, escape_key, merges, plan_batches
from shared.tables_contract import Row, decode_props, project
from shared.textsize import MAX_PROPERTY_BYTES, MAX_PROPERTY_UNITS, utf16_units

if TYPE_CHECKING:
    from shared.tables import Storage, StorageTable

_counter = itertools.count(1)
_CLAUSE = re.compile(r"^\s*\(?\s*(\w+)\s+(eq|ne|gt|ge|lt|le)\s+(?:@(\w+)|(true|false))\s*\)?\s*$")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
Key = tuple[str, str]


def _matcher(flt: str | None, params: Mapping[str, Any]) -> Callable[[dict], bool]:
    if not flt:
        return lambda row: True
    clauses = []
    for part in re.split(r"\s+and\s+", flt.strip().strip("()")):
        m = _CLAUSE.match(part)
        if not m:
            raise ValueError(f"memtables: unsupported filter {flt!r}")
        value = params[m.group(3)] if m.group(3) else m.group(4) == "true"  # a parameter or a boolean literal
        clauses.append((m.group(1), _OPS[m.group(2)], value))

    def match(props: dict) -> bool:
        for name, op, value in clauses:
            if name not in props:
                return False
            try:
                if not op(props[name], value):
                    return False
            except TypeError:
                return False
        return True

    return match


def _check_limits(props: Mapping[str, Any]) -> None:
    """What the service (and the SDK) refuse in one entity's stored properties."""
    for key, value in props.items():
        if isinstance(value, str) and len(value) * 2 > MAX_PROPERTY_UNITS and utf16_units(value) > MAX_PROPERTY_UNITS:
            raise StorageError(f"memtables {key}: HTTP 400 PropertyValueTooLarge")
        if isinstance(value, bytes) and len(value) > MAX_PROPERTY_BYTES:
            raise StorageError(f"memtables {key}: HTTP 400 PropertyValueTooLarge")
        if type(value) is int and not -(2**63) <= value < 2**63:
            raise TypeError(f"{value} is too large to be cast to type EdmType.INT64.")


class _Stored:
    """A row as the service holds it: stored properties, ETag, timestamp."""

    __slots__ = ("etag", "props", "timestamp")

    def __init__(self, props: dict[str, Any]) -> None:
        self.props = props
        self.etag = f'W/"{next(_counter)}"'
        self.timestamp = datetime.now(UTC)


def _key_of(entity: Mapping[str, Any]) -> Key | None:
    """The stored key of an entity, or None when it has no valid keys (the operation then fails)."""
    try:
        return (escape_key(entity["PartitionKey"]), escape_key(entity["RowKey"]))
    except (KeyError, TypeError, ValueError, StorageError):
        return None


class _Rows(dict[Key, "_Stored"]):
    """A table's rows, also indexed by partition: a partition query reads its partition only, as
    the service does (a scan of every row per query made a 1 000-club store quadratic)."""

    def __init__(self) -> None:
        super().__init__()
        self.by_pk: dict[str, dict[Key, _Stored]] = {}

    def __setitem__(self, key: Key, value: _Stored) -> None:
        super().__setitem__(key, value)
        self.by_pk.setdefault(key[0], {})[key] = value

    def __delitem__(self, key: Key) -> None:
        super().__delitem__(key)
        part = self.by_pk[key[0]]
        del part[key]
        if not part:
            del self.by_pk[key[0]]


class MemoryTable:
    """One table (:class:`shared.tables.StorageTable`), rows keyed by stored (escaped) keys."""

    def __init__(self, store: MemoryTableStore, name: str, rows: _Rows, *, chunked: bool = False) -> None:
        self.store = store
        self.name = name
        self.rows = rows  # shared by every handle of this table
        self.chunked = chunked

    def _check(self, op: str) -> None:
        if self.store.fail is not None:
            self.store.fail(self.name, op)

    def _encode(self, entity: Mapping[str, Any], *, merge: bool) -> tuple[Key, dict[str, Any]]:
        props = encode_stored(entity, chunked=self.chunked, merge=merge)
        _check_limits(props)
        return (props["PartitionKey"], props["RowKey"]), props

    @staticmethod
    def _out(row: _Stored, select: Sequence[str] | None = None) -> Row:
        out, _ = decode_props(row.props)
        out["_etag"] = row.etag
        if not select:
            out["_timestamp"] = row.timestamp
        return project(out, select)

    @staticmethod
    def _matches(row: _Stored | None, etag: str | None) -> bool:
        """Whether a conditional write on ``row`` may go ahead (``None`` / ``"*"``: it exists)."""
        return row is not None and (not etag or etag == "*" or row.etag == etag)

    def _write(self, key: Key, props: dict[str, Any], *, merge: bool) -> str:
        old = self.rows.get(key)
        if merge and old is not None:
            props = {**old.props, **props}
        row = self.rows[key] = _Stored(props)
        return row.etag

    def _apply(self, op: Op) -> None:
        """One operation of a transaction (the caller holds the lock and rolls back on error)."""
        etag = op.options.get("etag")
        if op.kind == "delete":
            key = (escape_key(op.entity["PartitionKey"]), escape_key(op.entity["RowKey"]))
            if not self._matches(self.rows.get(key), etag):
                raise Conflict(f"memtables {self.name}: HTTP 404/412 on delete")
            del self.rows[key]
            return
        key, props = self._encode(op.entity, merge=merges(op))
        if op.kind == "create" and key in self.rows:
            raise Conflict(f"memtables {self.name}: HTTP 409 EntityAlreadyExists")
        if op.kind == "update" and not self._matches(self.rows.get(key), etag):
            raise Conflict(f"memtables {self.name}: HTTP 404/412 on update")
        self._write(key, props, merge=merges(op))

    # -- point operations ---------------------------------------------------------------
    def get(self, partition_key: str, row_key: str, *, select: Sequence[str] | None = None) -> Row | None:
        self._check("get")
        key = (escape_key(partition_key), escape_key(row_key))
        with self.store.lock:
            row = self.rows.get(key)
            return self._out(row, select) if row else None

    def insert(self, entity: Mapping[str, Any]) -> bool:
        self._check("insert")
        key, props = self._encode(entity, merge=False)
        with self.store.lock:
            if key in self.rows:
                return False
            self._write(key, props, merge=False)
            return True

    def create(self, entity: Mapping[str, Any]) -> str:
        self._check("create")
        key, props = self._encode(entity, merge=False)
        with self.store.lock:
            if key in self.rows:
                raise Conflict(f"memtables {self.name}: HTTP 409 EntityAlreadyExists")
            return self._write(key, props, merge=False)

    def upsert(self, entity: Mapping[str, Any], *, replace: bool = False) -> str:
        self._check("upsert")
        key, props = self._encode(entity, merge=not replace)
        with self.store.lock:
            return self._write(key, props, merge=not replace)

    def update(self, entity: Mapping[str, Any], *, etag: str, replace: bool = False) -> str:
        self._check("update")
        key, props = self._encode(entity, merge=not replace)
        with self.store.lock:
            if not self._matches(self.rows.get(key), etag):
                raise Conflict(f"memtables {self.name}: HTTP 404/412 on update")
            return self._write(key, props, merge=not replace)

    def delete(self, partition_key: str, row_key: str, *, etag: str | None = None) -> None:
        self._check("delete")
        key = (escape_key(partition_key), escape_key(row_key))
        with self.store.lock:
            row = self.rows.get(key)
            if row is None:
                return
            if not self._matches(row, etag):
                raise Conflict(f"memtables {self.name}: HTTP 412 on delete")
            del self.rows[key]

    # -- queries ------------------------------------------------------------------------
    def query(
        self,
        filter: str | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        partition_key: str | None = None,
        select: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[Row]:
        self._check("query")
        match = _matcher(filter, parameters or {})
        pk = escape_key(partition_key) if partition_key is not None else None
        with self.store.lock:
            candidates = self.rows.items() if pk is None else self.rows.by_pk.get(pk, {}).items()
            out = [
                self._out(row, select) for key, row in sorted(candidates, key=lambda item: item[0]) if match(row.props)
            ]
        return iter(out)

    def page(
        self,
        filter: str | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        partition_key: str | None = None,
        select: Sequence[str] | None = None,
        page_size: int = 100,
        continuation: str | None = None,
    ) -> tuple[list[Row], str | None]:
        if continuation and not continuation.isdigit():
            raise ValueError("invalid continuation token")
        rows = list(self.query(filter, parameters=parameters, partition_key=partition_key, select=select))
        start = int(continuation or 0)
        end = start + page_size
        return rows[start:end], (str(end) if end < len(rows) else None)

    # -- batches ------------------------------------------------------------------------
    def submit(self, operations: Iterable[Op | tuple[Any, ...]]) -> int:
        count = 0
        for chunk in plan_batches(operations):
            self._check("submit")
            with self.store.lock:
                before: dict[Key, _Stored | None] = {}  # what the chunk touched, as it was
                try:
                    for op in chunk:
                        key = _key_of(op.entity)
                        if key is not None:
                            before.setdefault(key, self.rows.get(key))
                        self._apply(op)  # raises for an entity without valid keys
                except Exception:
                    for key, old in before.items():  # all or nothing, as a transaction
                        if old is not None:
                            self.rows[key] = old
                        elif key in self.rows:
                            del self.rows[key]
                    raise
            count += len(chunk)
        return count


class MemoryTableStore:
    """In-memory :class:`shared.tables.Storage`; ``dump(name)`` returns a table's rows, decoded."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._rows: dict[str, _Rows] = {}
        self._tables: dict[tuple[str, bool], MemoryTable] = {}
        self.lock = threading.RLock()
        self.fail: Callable[[str, str], None] | None = None

    def table(self, name: str, *, chunked: bool = False) -> MemoryTable:
        full = f"{self.prefix}{name}"
        if not _TABLE_NAME.fullmatch(full):
            raise ValueError(f"invalid table name {full!r}: letters and digits, 3-63, starting with a letter")
        with self.lock:
            table = self._tables.get((full, chunked))
            if table is None:
                rows = self._rows.setdefault(full, _Rows())
                table = self._tables[(full, chunked)] = MemoryTable(self, full, rows, chunked=chunked)
            return table

    def ping(self) -> None:
        if self.fail is not None:
            self.fail("", "ping")

    def dump(self, name: str) -> dict[tuple[str, str], Row]:
        rows: dict[Key, _Stored] = self._rows.get(f"{self.prefix}{name}", {})
        out = {}
        for row in rows.values():
            decoded, _ = decode_props(row.props)
            out[(decoded["PartitionKey"], decoded["RowKey"])] = decoded
        return out


if TYPE_CHECKING:  # the type checker holds the fake to the same contract as the adapter

    def _implements_contract(store: MemoryTableStore, table: MemoryTable) -> tuple[Storage, StorageTable]:
        return store, table
