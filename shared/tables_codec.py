"""Table Storage values and errors as the SDK sees them: our rows ↔ the SDK's entities, the SDK's
exceptions → ours, filter text and continuation tokens. Used by :mod:`shared.tables` (the adapter)
and by ``devtools/memtables.py`` (the in-memory store encodes through the same
:func:`encode_stored`, so both refuse the same entities).

Exceptions (what each becomes is in docs/architecture.md, "Errors"):

- :class:`StorageError`: retrying the same call will not help (HTTP 4xx other than 408/409/412/429);
- :class:`TransientStorageError`: connection failures, timeouts, 408, 429 and 5xx;
- :class:`Conflict`: 409/412, an insert of an existing key, or a row that vanished under an update.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from shared.tables_contract import MAX_ENTITY_BYTES, Row, decode_props, encode_props, stored_size

_INT32 = range(-(2**31), 2**31)
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class StorageError(Exception):
    """A storage operation failed and retrying the same call will not help."""


class TransientStorageError(StorageError):
    """Storage is unreachable, throttled or failing: let it propagate so the work is retried."""


class Conflict(StorageError):
    """The row changed (ETag mismatch), appeared (insert of an existing key) or vanished."""


def encode_stored(entity: Mapping[str, Any], *, chunked: bool = False, merge: bool = False) -> dict[str, Any]:
    """The properties to store (:func:`shared.tables_contract.encode_props`); in a ``chunked``
    table, :class:`StorageError` if they exceed the service's 1 MiB per entity. Both stores use it."""
    props = encode_props(entity, chunked=chunked, merge=merge)
    if chunked:
        size = stored_size(props)
        if size > MAX_ENTITY_BYTES:
            raise StorageError(f"entity too large: {size} bytes, at most {MAX_ENTITY_BYTES} (EntityTooLarge)")
    return props


def encode_entity(entity: Mapping[str, Any], *, chunked: bool = False, merge: bool = False) -> dict[str, Any]:
    """Our entity → the SDK's entity dict (:func:`encode_stored`, ints beyond Int32 as Edm.Int64)."""
    from azure.data.tables import EdmType, EntityProperty

    out = encode_stored(entity, chunked=chunked, merge=merge)
    for key, value in out.items():
        if type(value) is int and value not in _INT32:
            out[key] = EntityProperty(value, EdmType.INT64)
    return out


def _plain(value: Any) -> Any:
    """An SDK ``EntityProperty`` (a named tuple: Int64, GUID, …) → its plain value."""
    edm = getattr(value, "edm_type", None) if isinstance(value, tuple) else None
    if edm is None:
        return value
    plain = value.value
    return int(plain) if str(edm).endswith("INT64") or getattr(edm, "value", "") == "Edm.Int64" else plain


def decode_with_flag(entity: Mapping[str, Any]) -> tuple[Row, bool]:
    row, complete = decode_props({k: _plain(v) if isinstance(v, tuple) else v for k, v in entity.items()})
    meta = getattr(entity, "metadata", None) or {}
    if meta.get("etag"):
        row["_etag"] = meta["etag"]
    if meta.get("timestamp"):
        row["_timestamp"] = meta["timestamp"]
    return row, complete


def decode_entity(entity: Mapping[str, Any]) -> Row:
    """The SDK's entity → our row; adds ``_etag`` and ``_timestamp`` from the metadata."""
    return decode_with_flag(entity)[0]


@contextlib.contextmanager
def translate(what: str) -> Iterator[None]:
    from azure.core.exceptions import (
        AzureError,
        HttpResponseError,
        ResourceExistsError,
        ResourceModifiedError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except (ResourceModifiedError, ResourceExistsError) as exc:
        raise Conflict(f"{what}: {type(exc).__name__}") from exc
    except HttpResponseError as exc:
        status = getattr(exc, "status_code", None)
        if status in (409, 412):
            raise Conflict(f"{what}: HTTP {status}") from exc
        if status in TRANSIENT_STATUS or status is None:
            raise TransientStorageError(f"{what}: HTTP {status}") from exc
        raise StorageError(f"{what}: HTTP {status} {exc.reason or ''}".strip()) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise TransientStorageError(f"{what}: {type(exc).__name__}") from exc
    except AzureError as exc:
        raise TransientStorageError(f"{what}: {type(exc).__name__}") from exc
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise TransientStorageError(f"{what}: {type(exc).__name__}") from exc


_LITERAL = re.compile(r"('(?:[^']|'')*')")


def normalize_filter(text: str) -> str:
    """Pad parentheses and collapse whitespace outside quoted literals.

    The SDK substitutes ``@name`` parameters only in tokens separated by single spaces, so
    ``(RowKey lt @hi)`` or a double space would otherwise leave a parameter unsubstituted or crash.
    """
    parts = _LITERAL.split(text)
    for i in range(0, len(parts), 2):  # even indexes are outside literals
        parts[i] = " ".join(parts[i].replace("(", " ( ").replace(")", " ) ").split())
    return " ".join(p for p in parts if p).strip()


def encode_continuation(token: Any) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_continuation(token: str | None) -> Any:
    if not token:
        return None
    try:
        pad = "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(token + pad))
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid continuation token") from None
    if not isinstance(value, dict):
        raise ValueError("invalid continuation token")  # noqa: TRY004 - a bad value from the caller
    return value
