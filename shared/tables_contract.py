"""The storage contract: what a table store does, whichever service is behind it (pure, stdlib only).

Two stores implement :class:`Storage`: :class:`shared.tables.TableStore` (Azure Table Storage,
Azurite locally) and :class:`devtools.memtables.MemoryTableStore` (in memory, for tests).
tests/test_storage_contract.py runs one suite against both, so the fake cannot drift from the real
thing. Both stores go through the functions below, so a rule written here holds in both:

- **keys** (:func:`escape_key`): ``PartitionKey`` / ``RowKey`` are passed raw; characters Table
  Storage forbids (``/ \\ # ?``, control characters) and anything outside a conservative safe set
  (``~`` included) are stored as ``~XX`` (UTF-8 bytes in hex) and unescaped on read. Stored keys
  are what filters compare and what orders rows.
- **values** (:func:`encode_props` / :func:`decode_props`): ``None`` and ``_``-prefixed names are
  not stored (with ``replace=True`` that removes the property); a ``dict`` / ``list`` / ``tuple``
  is stored as JSON text under ``<name>__json`` and read back as ``dict`` / ``list`` (JSON's rules:
  tuples become lists, keys become strings, other values ``str()``); a ``datetime`` must be
  timezone-aware and reads back as an aware UTC ``datetime``; ``int`` is Int32 or Int64 by value
  and reads back as ``int`` (beyond Int64 is a ``TypeError``); ``bool``, ``float``, ``str``,
  ``bytes`` as they are.
- **large values** (tables opened with ``chunked=True``): a ``str`` longer than one property holds
  (32 768 UTF-16 code units, see :mod:`shared.textsize`; JSON text included) or ``bytes`` longer
  than 64 KiB is stored as pieces ``<name>__c0``, ``<name>__c1``, … (30 000 units / 60 000 bytes
  each), their count in ``<name>__cn`` and an empty placeholder in ``<name>``; reading rejoins
  them, in every table (no option needed to read). The placeholder makes merges safe: a later
  MERGE of a short value overwrites it, and pieces are used only while ``<name>`` is still the
  placeholder (a MERGE of ``""`` also writes the count ``0``). Rows written before, with a single
  property, read as before. Without ``chunked``, an oversize value is the service's
  ``400 PropertyValueTooLarge``: ``StorageError``.
- **operations** (:class:`Op`, :func:`plan_batches`): a transaction is grouped by PartitionKey and
  cut into chunks of at most 100 operations, no RowKey twice, below the 4 MB request limit; each
  chunk is atomic, the whole call is not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, Protocol, TypedDict, cast

from shared.textsize import CHUNK_UNITS, MAX_PROPERTY_BYTES, MAX_PROPERTY_UNITS, text_chunks, utf16_units

#: A decoded row: properties by name, plus ``_etag`` (and ``_timestamp`` unless ``select`` was given).
Row = dict[str, Any]

KEYS = ("PartitionKey", "RowKey")
JSON_SUFFIX = "__json"
#: ``<name>__c<i>``: the i-th piece of a chunked value; ``<name>__cn``: how many pieces.
PIECE_INFIX = "__c"
COUNT_SUFFIX = "__cn"
#: Bytes per piece of a chunked binary value (a binary property holds at most 64 KiB).
CHUNK_BYTES = 60_000
#: What one entity may hold in total, as the service measures it (:func:`stored_size`).
MAX_ENTITY_BYTES = 1_048_576
_MAX_KEY_BYTES = 1024
_INT32 = range(-(2**31), 2**31)


# --- the interface -----------------------------------------------------------------------------
class StorageTable(Protocol):
    """One table. Errors: ``shared.tables.Conflict`` (409/412, or the row vanished),
    ``TransientStorageError`` (retry later), ``StorageError`` (the rest); all in :mod:`shared.tables`."""

    @property
    def name(self) -> str:
        """The table's full name (with the store's prefix)."""
        ...

    def get(self, partition_key: str, row_key: str, *, select: Sequence[str] | None = None) -> Row | None:
        """The row, decoded, with ``_etag``; ``None`` if absent. ``select`` returns only those names."""
        ...

    def insert(self, entity: Mapping[str, Any]) -> bool:
        """Create the row; ``False`` (and no change) if it already exists."""
        ...

    def create(self, entity: Mapping[str, Any]) -> str | None:
        """Create the row and return its ETag; ``Conflict`` if it already exists."""
        ...

    def upsert(self, entity: Mapping[str, Any], *, replace: bool = False) -> str | None:
        """Write the row (MERGE into an existing one, or REPLACE it with ``replace=True``); its ETag."""
        ...

    def update(self, entity: Mapping[str, Any], *, etag: str, replace: bool = False) -> str | None:
        """Write only if the row still has ``etag`` (``"*"``: if it exists); ``Conflict`` otherwise."""
        ...

    def delete(self, partition_key: str, row_key: str, *, etag: str | None = None) -> None:
        """Delete the row (absent: nothing happens); with ``etag``, ``Conflict`` if it changed."""
        ...

    def query(
        self,
        filter: str | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        partition_key: str | None = None,
        select: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[Row]:
        """Matching rows in key order (stored keys), decoded. ``filter``: OData with ``@name``
        parameters (``"RowKey ge @lo and RowKey lt @hi"``); a raw key inside the filter text must
        be escaped with :func:`escape_key`, parameters and ``partition_key`` are passed raw.
        ``page_size``: rows per request (``None``: the service's 1 000). A long scan holds about
        three pages' worth of memory at a time, so a scan that must stay small asks for less."""
        ...

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
        """One page of :meth:`query` and an opaque continuation token (``None`` at the end);
        ``ValueError`` for a token this store did not hand out."""
        ...

    def submit(self, operations: Iterable[Op | tuple[Any, ...]]) -> int:
        """Apply operations (:class:`Op` or the same as a plain tuple) in atomic chunks
        (:func:`plan_batches`); returns how many were applied. A failing chunk raises and leaves
        nothing of itself behind; chunks before it stay applied."""
        ...


class Storage(Protocol):
    """A table store: :func:`shared.tables.get_table_store` in the app, ``MemoryTableStore`` in tests."""

    def table(self, name: str, *, chunked: bool = False) -> StorageTable:
        """The table ``<prefix><name>`` (created on first use). ``chunked=True``: this handle stores
        oversize ``str`` / ``bytes`` values in pieces (module docstring); open the table with it on
        every path that writes such values."""
        ...

    def ping(self) -> None:
        """Cheap reachability check (raises ``TransientStorageError`` / ``StorageError``)."""
        ...


# --- operations --------------------------------------------------------------------------------
OpKind = Literal["create", "upsert", "update", "delete"]
KINDS: frozenset[str] = frozenset(("create", "upsert", "update", "delete"))


class OpOptions(TypedDict, total=False):
    #: ``update`` / ``delete``: only if the row still has this ETag (``None`` / ``"*"``: if it exists).
    etag: str | None
    #: ``upsert`` / ``update``: REPLACE the row instead of merging into it.
    replace: bool


#: The options of an operation without any (read-only: one object shared by all of them).
_NO_OPTIONS = cast(OpOptions, MappingProxyType({}))


class Op(NamedTuple):
    """One operation of :meth:`StorageTable.submit`.

    ``Op("upsert", entity)``, ``Op("upsert", entity, {"replace": True})``, ``Op("create", entity)``
    (``Conflict`` if the row exists), ``Op("update", entity, {"etag": etag})`` (``Conflict`` if the
    row changed or is gone), ``Op("delete", {"PartitionKey": pk, "RowKey": rk}, {"etag": etag})``
    (``Conflict`` if it changed or is gone: inside a transaction a missing row fails the chunk).
    A plain tuple ``("upsert", entity[, options])`` means the same (:func:`as_op`).
    """

    kind: OpKind
    entity: Mapping[str, Any]
    options: OpOptions = _NO_OPTIONS


def as_op(item: Op | tuple[Any, ...]) -> Op:
    """``item`` as an :class:`Op` (2- and 3-tuples accepted); ``ValueError`` for an unknown kind."""
    if type(item) is Op:
        return item
    kind, entity = item[0], item[1]
    if kind not in KINDS:
        raise ValueError(f"unknown operation {kind!r}")
    options = item[2] if len(item) > 2 and item[2] is not None else _NO_OPTIONS
    return Op(kind, entity, options)


_MAX_BATCH_OPS = 100
_MAX_BATCH_BYTES = 3_500_000  # below the 4 MiB limit, with room for the multipart envelope


def _approx_size(entity: Mapping[str, Any]) -> int:
    return len(json.dumps({k: v for k, v in entity.items() if not k.startswith("_")}, default=str)) + 200


def plan_batches(operations: Iterable[Op | tuple[Any, ...]]) -> list[list[Op]]:
    """Group by PartitionKey (first-seen order, order kept within a partition), then cut chunks at
    100 operations, a repeated RowKey, or ~3.5 MB. Every operation is checked (:func:`as_op`)
    before anything is sent."""
    groups: dict[str, list[Op]] = {}
    for item in operations:
        op = as_op(item)
        groups.setdefault(str(op.entity["PartitionKey"]), []).append(op)
    chunks: list[list[Op]] = []
    for ops in groups.values():
        chunk: list[Op] = []
        rows: set[str] = set()
        size = 0
        for op in ops:
            rk = str(op.entity["RowKey"])
            esize = _approx_size(op.entity)
            if chunk and (len(chunk) >= _MAX_BATCH_OPS or rk in rows or size + esize > _MAX_BATCH_BYTES):
                chunks.append(chunk)
                chunk, rows, size = [], set(), 0
            chunk.append(op)
            rows.add(rk)
            size += esize
        if chunk:
            chunks.append(chunk)
    return chunks


def merges(op: Op) -> bool:
    """Whether ``op`` merges into an existing row (an ``upsert`` / ``update`` without ``replace``)."""
    return op.kind in ("upsert", "update") and not op.options.get("replace")


# --- keys --------------------------------------------------------------------------------------
_SAFE = re.compile(r"[A-Za-z0-9\-_.:@=]")
_ESCAPED = re.compile(r"(?:~[0-9A-F]{2})+")


def escape_key(value: str) -> str:
    """Make ``value`` a legal PartitionKey/RowKey (reversible, identity for safe strings)."""
    if value is None:
        raise ValueError("key must not be None")
    value = str(value)
    if all(_SAFE.match(ch) for ch in value):
        out = value
    else:
        out = "".join(ch if _SAFE.match(ch) else "".join(f"~{b:02X}" for b in ch.encode("utf-8")) for ch in value)
    if len(out.encode("utf-8")) > _MAX_KEY_BYTES:
        raise ValueError("key longer than 1 KiB after escaping")
    return out


def unescape_key(value: str) -> str:
    if "~" not in value:
        return value
    return _ESCAPED.sub(lambda m: bytes.fromhex(m.group(0).replace("~", "")).decode("utf-8"), value)


# --- values ------------------------------------------------------------------------------------
def _to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _split(name: str, value: str | bytes, out: dict[str, Any]) -> bool:
    """Store ``value`` as pieces if one property cannot hold it; whether it did."""
    pieces: Sequence[str | bytes]
    if isinstance(value, str):
        if len(value) * 2 <= MAX_PROPERTY_UNITS or utf16_units(value) <= MAX_PROPERTY_UNITS:
            return False
        pieces = text_chunks(value, CHUNK_UNITS)
    else:
        if len(value) <= MAX_PROPERTY_BYTES:
            return False
        pieces = [value[i : i + CHUNK_BYTES] for i in range(0, len(value), CHUNK_BYTES)]
    out[name] = value[:0]  # the placeholder: a later MERGE of a short value overwrites it
    out[name + COUNT_SUFFIX] = len(pieces)
    for i, piece in enumerate(pieces):
        out[f"{name}{PIECE_INFIX}{i}"] = piece
    return True


def encode_props(entity: Mapping[str, Any], *, chunked: bool = False, merge: bool = False) -> dict[str, Any]:
    """Our entity → the properties to store (escaped keys, JSON text, UTC datetimes, pieces).

    ``chunked``: split oversize ``str`` / ``bytes`` values (module docstring). ``merge``: the write
    merges into an existing row, so an empty value also writes the count ``0`` (stale pieces of an
    earlier value must not be read back). ``ValueError`` for a naive datetime, a missing key or a
    key longer than 1 KiB escaped.
    """
    out: dict[str, Any] = {}
    for key, value in entity.items():
        if value is None or key.startswith("_"):
            continue
        if key in KEYS:
            out[key] = escape_key(value)
            continue
        if isinstance(value, (dict, list, tuple)):
            key, value = key + JSON_SUFFIX, _to_json(value)
        elif isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"naive datetime in property {key!r}: use timezone-aware UTC")
            value = value.astimezone(UTC)
        if chunked and isinstance(value, (str, bytes)):
            if _split(key, value, out):
                continue
            if merge and not value:
                out[key + COUNT_SUFFIX] = 0
        out[key] = value
    if "PartitionKey" not in out or "RowKey" not in out:
        raise ValueError("entity needs PartitionKey and RowKey")
    return out


def _join_pieces(props: dict[str, Any]) -> bool:
    """Rejoin chunked values in place, drop the piece and count properties; ``False`` if a value's
    pieces are missing (a ``select`` that did not fetch them)."""
    complete = True
    for count_key in [k for k in props if k.endswith(COUNT_SUFFIX)]:
        name = count_key[: -len(COUNT_SUFFIX)]
        n = props.pop(count_key)
        prefix = name + PIECE_INFIX
        pieces = {int(k[len(prefix) :]): props.pop(k) for k in list(props) if _is_piece(k, prefix)}
        if not isinstance(n, int) or n <= 0 or props.get(name) not in (None, "", b""):
            continue  # not chunked (any more): the value is the property itself
        if any(i not in pieces for i in range(n)):
            complete = False
            continue
        parts = [pieces[i] for i in range(n)]
        props[name] = b"".join(parts) if isinstance(parts[0], bytes) else "".join(parts)
    return complete


def _is_piece(key: str, prefix: str) -> bool:
    return key.startswith(prefix) and key[len(prefix) :].isdigit()


def _utc(value: datetime) -> datetime:
    """A plain ``datetime`` in UTC (the SDK hands out a subclass; a naive one is UTC)."""
    if value.tzinfo is not UTC and value.tzinfo is not None:
        value = value.astimezone(UTC)
    return datetime(
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond, tzinfo=UTC
    )


def decode_props(props: Mapping[str, Any]) -> tuple[Row, bool]:
    """Stored properties (plain Python values) → our row, and whether it is complete (see
    :func:`_join_pieces`; an incomplete row must be read again without ``select``)."""
    complete = True
    for k in props:
        if k.endswith(COUNT_SUFFIX):
            props = dict(props)
            complete = _join_pieces(props)
            break
    out: Row = {}
    for key, value in props.items():
        if key in KEYS:
            out[key] = unescape_key(value)
        elif key.endswith(JSON_SUFFIX) and isinstance(value, str):
            if value or complete:
                out[key[: -len(JSON_SUFFIX)]] = json.loads(value)
        elif isinstance(value, datetime):
            out[key] = _utc(value)
        else:
            out[key] = value
    return out, complete


def expand_select(select: Sequence[str]) -> list[str]:
    """The stored names to fetch for ``select``: each name with its JSON and count companions,
    plus the keys (to read a chunked row again)."""
    names: dict[str, None] = dict.fromkeys(KEYS)
    for name in select:
        names[name] = None
        if name not in KEYS:
            for extra in (JSON_SUFFIX, COUNT_SUFFIX, JSON_SUFFIX + COUNT_SUFFIX):
                names[name + extra] = None
    return list(names)


def project(row: Row, select: Sequence[str] | None) -> Row:
    """``row`` with only the ``select`` names (and ``_etag``), as the service answers a ``$select``."""
    if not select:
        return row
    wanted = set(select)
    return {k: v for k, v in row.items() if k in wanted or k == "_etag"}


def _text_bytes(value: str) -> int:
    return 4 + 2 * utf16_units(value)


def stored_size(props: Mapping[str, Any]) -> int:
    """Bytes the service counts for an entity (its documented formula): 4 + 2 per key character +
    per property 8 + 2 per name character + the value (string 4 + 2 per UTF-16 unit, binary 4 + its
    length, Int32 4, bool 1, Int64 / double / datetime 8)."""
    size = 4
    for key, value in props.items():
        if key in KEYS:
            size += 2 * utf16_units(str(value))
            continue
        size += 8 + 2 * utf16_units(key)
        if isinstance(value, str):
            size += _text_bytes(value)
        elif isinstance(value, bytes):
            size += 4 + len(value)
        elif isinstance(value, bool):
            size += 1
        elif isinstance(value, int):
            size += 4 if value in _INT32 else 8
        else:
            size += 8
    return size
