"""In-memory stand-in for :class:`shared.tables.TableStore` (test double, local only).

Same interface and semantics as the adapter as far as the queue consumer uses it: ``None``
values and ``_``-prefixed keys are not stored, ETags change on every write, ``insert`` returns
False for an existing row, ``update`` raises ``Conflict`` on a stale ETag or a missing row,
``submit`` groups by PartitionKey and applies chunks of <= 100 atomically. Filters: a
conjunction of ``Name op @param`` comparisons (``eq ne gt ge lt le``), which is all the
consumer sends. Optional ``fail`` hook for fault injection. Property limits are the service's:
a string longer than 32 768 UTF-16 code units (dicts and lists measured as the JSON the adapter
writes), binary over 64 KiB → ``StorageError`` (the service's 400, for the whole transaction); an
integer outside Edm.Int64 → ``TypeError`` (what the SDK raises).
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

_counter = itertools.count(1)
_CLAUSE = re.compile(r"^\s*\(?\s*(\w+)\s+(eq|ne|gt|ge|lt|le)\s+@(\w+)\s*\)?\s*$")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def _matcher(flt: str | None, params: Mapping[str, Any]) -> Callable[[dict], bool]:
    if not flt:
        return lambda row: True
    clauses = []
    for part in re.split(r"\s+and\s+", flt.strip().strip("()")):
        m = _CLAUSE.match(part)
        if not m:
            raise ValueError(f"memtables: unsupported filter {flt!r}")
        clauses.append((m.group(1), _OPS[m.group(2)], params[m.group(3)]))

    def match(row: dict) -> bool:
        for name, op, value in clauses:
            if name not in row:
                return False
            try:
                if not op(row[name], value):
                    return False
            except TypeError:
                return False
        return True

    return match


class MemoryTable:
    def __init__(self, store: MemoryTableStore, name: str) -> None:
        self.store = store
        self.name = name
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def _check(self, op: str) -> None:
        if self.store.fail is not None:
            self.store.fail(self.name, op)

    @staticmethod
    def _clean(entity: Mapping[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in entity.items() if not k.startswith("_") and v is not None}

    def _out(self, row: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(row["v"])
        out["_etag"] = row["etag"]
        return out

    @staticmethod
    def _validate(entity: Mapping[str, Any]) -> None:
        import json

        from shared.tables import StorageError
        from shared.textsize import MAX_PROPERTY_BYTES, MAX_PROPERTY_UNITS, utf16_units

        for key, value in entity.items():
            if key.startswith("_") or value is None:
                continue
            if isinstance(value, (dict, list, tuple)):
                value = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
            if isinstance(value, str) and utf16_units(value) > MAX_PROPERTY_UNITS:
                raise StorageError(f"memtables {key}: HTTP 400 PropertyValueTooLarge")
            if isinstance(value, bytes) and len(value) > MAX_PROPERTY_BYTES:
                raise StorageError(f"memtables {key}: HTTP 400 PropertyValueTooLarge")
            if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
                raise TypeError(f"{key}: integer too large for Edm.Int64")

    def _put(self, entity: Mapping[str, Any], replace: bool) -> str:
        key = (str(entity["PartitionKey"]), str(entity["RowKey"]))
        self._validate(entity)
        clean = self._clean(entity)
        old = self.rows.get(key)
        if old is not None and not replace:
            merged = dict(old["v"])
            merged.update(clean)
            clean = merged
        etag = f'W/"{next(_counter)}"'
        self.rows[key] = {"v": clean, "etag": etag}
        return etag

    def get(self, partition_key: str, row_key: str, *, select: Sequence[str] | None = None) -> dict | None:
        self._check("get")
        with self.store.lock:
            row = self.rows.get((partition_key, row_key))
            return self._out(row) if row else None

    def insert(self, entity: Mapping[str, Any]) -> bool:
        self._check("insert")
        with self.store.lock:
            if (str(entity["PartitionKey"]), str(entity["RowKey"])) in self.rows:
                return False
            self._put(entity, True)
            return True

    def create(self, entity: Mapping[str, Any]) -> str:
        from shared.tables import Conflict

        self._check("create")
        with self.store.lock:
            if (str(entity["PartitionKey"]), str(entity["RowKey"])) in self.rows:
                raise Conflict("exists")
            return self._put(entity, True)

    def upsert(self, entity: Mapping[str, Any], *, replace: bool = False) -> str:
        self._check("upsert")
        with self.store.lock:
            return self._put(entity, replace)

    def update(self, entity: Mapping[str, Any], *, etag: str, replace: bool = False) -> str:
        from shared.tables import Conflict

        self._check("update")
        with self.store.lock:
            row = self.rows.get((str(entity["PartitionKey"]), str(entity["RowKey"])))
            if row is None or (etag and etag != "*" and row["etag"] != etag):
                raise Conflict("etag")
            return self._put(entity, replace)

    def delete(self, partition_key: str, row_key: str, *, etag: str | None = None) -> None:
        from shared.tables import Conflict

        self._check("delete")
        with self.store.lock:
            row = self.rows.get((partition_key, row_key))
            if row is not None and etag and row["etag"] != etag:
                raise Conflict("etag")
            self.rows.pop((partition_key, row_key), None)

    def query(
        self,
        filter: str | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        partition_key: str | None = None,
        select: Sequence[str] | None = None,
    ) -> Iterator[dict]:
        self._check("query")
        match = _matcher(filter, parameters or {})
        with self.store.lock:
            items = sorted(self.rows.items())
            out = [
                self._out(r) for (pk, _), r in items if (partition_key is None or pk == partition_key) and match(r["v"])
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
    ) -> tuple[list[dict], str | None]:
        rows = list(self.query(filter, parameters=parameters, partition_key=partition_key))
        start = int(continuation or 0)
        end = start + page_size
        return rows[start:end], (str(end) if end < len(rows) else None)

    def submit(self, operations: Iterable[tuple]) -> int:
        from shared.tables import Conflict, plan_batches

        count = 0
        for chunk in plan_batches(operations):
            self._check("submit")
            with self.store.lock:
                snapshot = dict(self.rows)
                try:
                    for op, entity, opts in chunk:
                        key = (str(entity["PartitionKey"]), str(entity["RowKey"]))
                        if op == "create":
                            if key in self.rows:
                                raise Conflict("exists")
                            self._put(entity, True)
                        elif op == "upsert":
                            self._put(entity, bool(opts.get("replace")))
                        elif op == "update":
                            row = self.rows.get(key)
                            if row is None or (opts.get("etag") and row["etag"] != opts["etag"]):
                                raise Conflict("etag")
                            self._put(entity, bool(opts.get("replace")))
                        elif op == "delete":
                            self.rows.pop(key, None)
                        else:
                            raise ValueError(op)
                except Exception:
                    self.rows = snapshot
                    raise
            count += len(chunk)
        return count


class MemoryTableStore:
    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.tables: dict[str, MemoryTable] = {}
        self.lock = threading.RLock()
        self.fail: Callable[[str, str], None] | None = None

    def table(self, name: str) -> MemoryTable:
        with self.lock:
            if name not in self.tables:
                self.tables[name] = MemoryTable(self, name)
            return self.tables[name]

    def dump(self, name: str) -> dict[tuple[str, str], dict[str, Any]]:
        t = self.tables.get(name)
        return {k: copy.deepcopy(v["v"]) for k, v in (t.rows.items() if t else [])}
