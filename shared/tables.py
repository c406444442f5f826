"""Table Storage adapter: the only module that imports azure-data-tables.

What it takes care of (see docs/architecture.md for the interface):
- key escaping: ``/ \\ # ?``, control characters and anything outside a conservative safe set
  become ``~XX`` (UTF-8 bytes in hex); safe keys are unchanged;
- values: ints beyond int32 as Edm.Int64 and back to ``int``; tz-aware datetimes only (naive
  raises), read back as aware UTC ``datetime``; ``dict``/``list`` as JSON text under
  ``<name>__json``; ``None`` is omitted (with ``replace=True`` that clears the property);
- transactions grouped by PartitionKey and chunked to <= 100 operations (no repeated RowKey,
  below the 4 MB payload limit): each chunk is atomic, the whole batch is not;
- ETag-conditional updates raising :class:`Conflict`;
- errors translated: :class:`TransientStorageError` (retry later: connection failures, 408,
  429, 5xx), :class:`Conflict` (409/412), :class:`StorageError` (anything else).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from shared import lifecycle

_SAFE = re.compile(r"[A-Za-z0-9\-_.:@=]")
_MAX_KEY_BYTES = 1024
_INT32 = range(-(2**31), 2**31)
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_MAX_BATCH_OPS = 100
_MAX_BATCH_BYTES = 3_500_000  # below the 4 MiB limit, with room for the multipart envelope
JSON_SUFFIX = "__json"


class StorageError(Exception):
    """A storage operation failed and retrying the same call will not help."""


class TransientStorageError(StorageError):
    """Storage is unreachable, throttled or failing: let it propagate so the work is retried."""


class Conflict(StorageError):
    """The row changed (ETag mismatch), appeared (insert of an existing key) or vanished."""


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


_ESCAPED = re.compile(r"(?:~[0-9A-F]{2})+")


def unescape_key(value: str) -> str:
    if "~" not in value:
        return value
    return _ESCAPED.sub(lambda m: bytes.fromhex(m.group(0).replace("~", "")).decode("utf-8"), value)


def encode_entity(entity: Mapping[str, Any]) -> dict[str, Any]:
    """Our dict → the SDK's entity dict (see module docstring for the rules)."""
    from azure.data.tables import EdmType, EntityProperty

    out: dict[str, Any] = {}
    for key, value in entity.items():
        if key.startswith("_") or value is None:
            continue
        if key in ("PartitionKey", "RowKey"):
            out[key] = escape_key(value)
        elif isinstance(value, (bool, str, float, bytes)):
            out[key] = value
        elif isinstance(value, int):
            out[key] = value if value in _INT32 else EntityProperty(value, EdmType.INT64)
        elif isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"naive datetime in property {key!r}: use timezone-aware UTC")
            out[key] = value.astimezone(UTC)
        elif isinstance(value, (dict, list, tuple)):
            out[key + JSON_SUFFIX] = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        else:
            out[key] = value
    if "PartitionKey" not in out or "RowKey" not in out:
        raise ValueError("entity needs PartitionKey and RowKey")
    return out


def decode_entity(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The SDK's entity → our dict; adds ``_etag`` and ``_timestamp`` from the metadata."""
    out: dict[str, Any] = {}
    for key, value in entity.items():
        if key in ("PartitionKey", "RowKey"):
            out[key] = unescape_key(value)
        elif key.endswith(JSON_SUFFIX) and isinstance(value, str):
            out[key[: -len(JSON_SUFFIX)]] = json.loads(value)
        elif hasattr(value, "edm_type") and hasattr(value, "value"):
            v = value.value
            out[key] = (
                int(v)
                if str(value.edm_type).endswith("INT64") or getattr(value.edm_type, "value", "") == "Edm.Int64"
                else v
            )
        elif isinstance(value, datetime):
            out[key] = datetime(
                value.year,
                value.month,
                value.day,
                value.hour,
                value.minute,
                value.second,
                value.microsecond,
                tzinfo=UTC,
            )
        else:
            out[key] = value
    meta = getattr(entity, "metadata", None) or {}
    if meta.get("etag"):
        out["_etag"] = meta["etag"]
    if meta.get("timestamp"):
        out["_timestamp"] = meta["timestamp"]
    return out


@contextlib.contextmanager
def _translate(what: str) -> Iterator[None]:
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
        if status in _TRANSIENT_STATUS or status is None:
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


def _encode_continuation(token: Any) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_continuation(token: str | None) -> Any:
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


class Table:
    """One table. Created on first use by :meth:`TableStore.table`."""

    def __init__(self, client: Any, name: str) -> None:
        self._client = client
        self.name = name

    # -- point operations ---------------------------------------------------------------
    def get(self, partition_key: str, row_key: str, *, select: Sequence[str] | None = None) -> dict | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            with _translate(f"get {self.name}"):
                entity = self._client.get_entity(
                    escape_key(partition_key), escape_key(row_key), select=list(select) if select else None
                )
        except StorageError as exc:
            if isinstance(exc.__cause__, ResourceNotFoundError):
                return None
            raise
        return decode_entity(entity)

    def insert(self, entity: Mapping[str, Any]) -> bool:
        """Create the row; ``False`` (and no change) if it already exists."""
        try:
            self.create(entity)
        except Conflict:
            return False
        return True

    def create(self, entity: Mapping[str, Any]) -> str | None:
        """Create the row and return its ETag; :class:`Conflict` if it already exists."""
        with _translate(f"insert {self.name}"):
            # Prefer: return-no-content: 204 instead of the entity echoed back (the ETag is a header)
            meta = self._client.create_entity(encode_entity(entity), response_preference="return-no-content")
        return (meta or {}).get("etag")

    def upsert(self, entity: Mapping[str, Any], *, replace: bool = False) -> str | None:
        from azure.data.tables import UpdateMode

        with _translate(f"upsert {self.name}"):
            meta = self._client.upsert_entity(
                encode_entity(entity), mode=UpdateMode.REPLACE if replace else UpdateMode.MERGE
            )
        return (meta or {}).get("etag")

    def update(self, entity: Mapping[str, Any], *, etag: str, replace: bool = False) -> str | None:
        """Write only if the row still has ``etag``; :class:`Conflict` otherwise (or if it vanished)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import UpdateMode

        try:
            with _translate(f"update {self.name}"):
                meta = self._client.update_entity(
                    encode_entity(entity),
                    mode=UpdateMode.REPLACE if replace else UpdateMode.MERGE,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except StorageError as exc:
            if isinstance(exc.__cause__, ResourceNotFoundError):
                raise Conflict(f"update {self.name}: row vanished") from exc
            raise
        return (meta or {}).get("etag")

    def delete(self, partition_key: str, row_key: str, *, etag: str | None = None) -> None:
        from azure.core import MatchConditions

        kwargs: dict[str, Any] = {}
        if etag:
            kwargs = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        with _translate(f"delete {self.name}"):
            self._client.delete_entity(escape_key(partition_key), escape_key(row_key), **kwargs)

    # -- queries ------------------------------------------------------------------------
    def _filter(
        self, filter: str | None, parameters: Mapping[str, Any] | None, partition_key: str | None
    ) -> tuple[str | None, dict[str, Any]]:
        params = dict(parameters or {})
        if filter:
            filter = normalize_filter(filter)
        if partition_key is not None:
            params["_pk"] = escape_key(partition_key)
            filter = "PartitionKey eq @_pk" + (f" and ( {filter} )" if filter else "")
        return filter, params

    def query(
        self,
        filter: str | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        partition_key: str | None = None,
        select: Sequence[str] | None = None,
    ) -> Iterator[dict]:
        """All matching rows, decoded, lazily (storage errors surface while iterating)."""
        flt, params = self._filter(filter, parameters, partition_key)
        sel = list(select) if select else None
        with _translate(f"query {self.name}"):
            if flt:
                pager = self._client.query_entities(flt, parameters=params, select=sel)
            else:
                pager = self._client.list_entities(select=sel)
            for entity in pager:
                yield decode_entity(entity)

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
        """One page of rows and an opaque continuation token (None at the end)."""
        flt, params = self._filter(filter, parameters, partition_key)
        token = _decode_continuation(continuation)
        sel = list(select) if select else None
        with _translate(f"page {self.name}"):
            if flt:
                pager = self._client.query_entities(flt, parameters=params, select=sel, results_per_page=page_size)
            else:
                pager = self._client.list_entities(select=sel, results_per_page=page_size)
            pages = pager.by_page(continuation_token=token)
            items = [decode_entity(e) for e in next(pages, [])]
            return items, _encode_continuation(pages.continuation_token)

    # -- batches ------------------------------------------------------------------------
    def submit(self, operations: Iterable[tuple]) -> int:
        """Apply ``(op, entity[, options])`` operations; returns how many were sent.

        ``op`` is ``create``, ``upsert`` (options ``replace``), ``update`` (options ``etag``,
        ``replace``) or ``delete`` (option ``etag``). Operations are grouped by PartitionKey (order
        kept within a partition) and sent as transactions of at most 100; each transaction is
        atomic, the whole call is not. A failed transaction raises (earlier ones stay applied).

        Transactions are serialised by :func:`build_changeset`, which writes the same ``$batch``
        request as azure-data-tables' ``submit_transaction`` (tests/test_foundation_tables.py
        compares them part by part) without azure-core's generic multipart machinery, about a third
        of the client CPU per operation; it is sent through the TableClient's own pipeline, so
        signing, identity auth, retries and timeouts are the SDK's.
        """
        count = 0
        for chunk in plan_batches(operations):
            self._send_changeset(chunk)
            count += len(chunk)
        return count

    def _send_changeset(self, chunk: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]) -> None:
        from azure.core.rest import HttpRequest

        client = self._client
        base = f"{client.scheme}://{client._primary_hostname}"  # what the SDK's _batch_send uses
        payload, content_type = build_changeset(base, client.table_name, client.api_version, chunk)
        request = HttpRequest(
            "POST",
            f"{base}/$batch",
            content=payload,
            headers={
                "x-ms-version": client.api_version,
                "DataServiceVersion": "3.0",
                "MaxDataServiceVersion": "3.0;NetFx",
                "Content-Type": content_type,
                "Accept": "application/json",
            },
        )
        with _translate(f"transaction {self.name}"):
            response = client._client.send_request(request, stream=True)
            raw = response.read()
        status, code = response.status_code, ""
        if status == 202:
            status, code = changeset_failure(raw)
            if status is None:
                return
        else:
            code = _error_code(raw)
        what = f"transaction {self.name}: HTTP {status} {code}".strip()
        if status in (409, 412) or code in ("EntityAlreadyExists", "UpdateConditionNotSatisfied"):
            raise Conflict(what)
        if status in _TRANSIENT_STATUS:
            raise TransientStorageError(what)
        raise StorageError(what)


_PART_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3})", re.MULTILINE)
_ERROR_CODE = re.compile(rb'"code"\s*:\s*"([A-Za-z]+)"')


def _error_code(raw: bytes) -> str:
    m = _ERROR_CODE.search(raw or b"")
    return m.group(1).decode() if m else ""


def changeset_failure(raw: bytes) -> tuple[int | None, str]:
    """The first failing sub-response of a ``$batch`` answer: ``(status, error code)`` or ``(None, "")``."""
    for m in _PART_STATUS.finditer(raw):
        status = int(m.group(1))
        if not 200 <= status < 300:
            return status, _error_code(raw[m.end() :])
    return None, ""


def build_changeset(
    base_url: str,
    table_name: str,
    api_version: str,
    chunk: Sequence[tuple[str, Mapping[str, Any], Mapping[str, Any]]],
    *,
    boundary: str | None = None,
) -> tuple[bytes, str]:
    """The body and Content-Type of a ``$batch`` request holding one changeset.

    Mirrors azure-data-tables 12.7's ``TableBatchOperations`` + ``_batch_send`` (same methods:
    POST create, PATCH merge, PUT replace, DELETE; same sub-request headers; entity JSON from the
    SDK's own ``_add_entity_properties``; keys quoted by its ``_prepare_key`` rule), so what Azure
    accepts from the SDK it accepts from us.
    """
    import uuid
    from email.utils import formatdate
    from urllib.parse import quote

    from azure.data.tables._serialize import _add_entity_properties

    batch = boundary or f"batch_{uuid.uuid4()}"
    changeset = f"changeset_{uuid.uuid4()}"
    date = formatdate(usegmt=True)
    table_url = f"{base_url}/{quote(table_name, safe='')}"
    out: list[str] = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"]
    for i, (op, entity, opts) in enumerate(chunk):
        body = ""
        if op == "create":
            method, url, accept, if_match = "POST", table_url, "application/json;odata=minimalmetadata", None
        else:
            pk = quote(escape_key(entity["PartitionKey"]).replace("'", "''"), safe="")
            rk = quote(escape_key(entity["RowKey"]).replace("'", "''"), safe="")
            url = f"{table_url}(PartitionKey='{pk}',RowKey='{rk}')"
            if op == "delete":
                method, accept, if_match = "DELETE", "application/json;odata=minimalmetadata", opts.get("etag") or "*"
            elif op in ("upsert", "update"):
                method, accept = ("PUT" if opts.get("replace") else "PATCH"), "application/json"
                if_match = (opts.get("etag") or "*") if op == "update" else None
            else:
                raise ValueError(f"unknown operation {op!r}")
        headers = []
        if op != "delete":
            body = json.dumps(_add_entity_properties(encode_entity(entity)))
            headers += ["Content-Type: application/json", f"Content-Length: {len(body.encode('utf-8'))}"]
        headers += [f"x-ms-version: {api_version}", "DataServiceVersion: 3.0", f"Accept: {accept}"]
        if if_match:
            headers.append(f"If-Match: {if_match}")
        headers += [f"x-ms-date: {date}", f"Date: {date}"]
        out.append(
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {i}\r\n\r\n{method} {url} HTTP/1.1\r\n" + "\r\n".join(headers) + f"\r\n\r\n{body}\r\n"
        )
    out.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n")
    return "".join(out).encode("utf-8"), f"multipart/mixed; boundary={batch}"


def _approx_size(entity: Mapping[str, Any]) -> int:
    return len(json.dumps({k: v for k, v in entity.items() if not k.startswith("_")}, default=str)) + 200


def plan_batches(operations: Iterable[tuple]) -> list[list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]]:
    """Group by PartitionKey (first-seen order), then cut chunks at 100 ops, a repeated RowKey,
    or ~3.5 MB. Pure: unit-tested without storage."""
    groups: dict[str, list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]] = {}
    for item in operations:
        op, entity = item[0], item[1]
        opts = item[2] if len(item) > 2 else {}
        groups.setdefault(str(entity["PartitionKey"]), []).append((op, entity, opts))
    chunks = []
    for ops in groups.values():
        chunk: list = []
        rows: set[str] = set()
        size = 0
        for op, entity, opts in ops:
            rk = str(entity["RowKey"])
            esize = _approx_size(entity)
            if chunk and (len(chunk) >= _MAX_BATCH_OPS or rk in rows or size + esize > _MAX_BATCH_BYTES):
                chunks.append(chunk)
                chunk, rows, size = [], set(), 0
            chunk.append((op, entity, opts))
            rows.add(rk)
            size += esize
        if chunk:
            chunks.append(chunk)
    return chunks


class TableStore:
    """Table service client + per-name Table cache. Built from Settings by :func:`get_table_store`."""

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        endpoint: str | None = None,
        prefix: str = "",
        timeout: float = 10.0,
        credential: Any = None,
    ) -> None:
        if not connection_string and not endpoint:
            from shared.config import MissingSetting

            raise MissingSetting("DATA_TABLES_CONNECTION or DATA_TABLES_ENDPOINT")
        self._connection_string = connection_string
        self._endpoint = endpoint
        self._credential = credential
        self.prefix = prefix
        self._timeout = timeout
        self._service: Any = None
        self._tables: dict[str, Table] = {}
        self._lock = threading.Lock()

    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "connection_timeout": self._timeout,
            "read_timeout": self._timeout,
            "retry_total": 2,
            "retry_backoff_factor": 0.2,
            "retry_backoff_max": 2,
        }

    @property
    def service(self) -> Any:
        if self._service is None:
            from azure.data.tables import TableServiceClient

            if self._connection_string:
                self._service = TableServiceClient.from_connection_string(
                    self._connection_string, **self._client_kwargs()
                )
            else:
                credential = self._credential
                if credential is None:
                    from shared.identity import get_credential

                    credential = get_credential()
                assert self._endpoint, "__init__ requires a connection string or an endpoint"
                self._service = TableServiceClient(
                    endpoint=self._endpoint, credential=credential, **self._client_kwargs()
                )
        return self._service

    def full_name(self, name: str) -> str:
        full = f"{self.prefix}{name}"
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", full):
            raise ValueError(f"invalid table name {full!r}: letters and digits, 3-63, starting with a letter")
        return full

    def table(self, name: str) -> Table:
        """The table ``<prefix><name>``, created if it does not exist (once per process)."""
        full = self.full_name(name)
        table = self._tables.get(full)
        if table is not None:
            return table
        with self._lock:
            table = self._tables.get(full)
            if table is None:
                with _translate(f"create table {full}"):
                    client = self.service.create_table_if_not_exists(full)
                table = Table(client, full)
                self._tables[full] = table
        return table

    def ping(self) -> None:
        """Cheap reachability check (raises TransientStorageError/StorageError)."""
        with _translate("ping"):
            next(iter(self.service.query_tables("TableName eq 'x'", results_per_page=1)), None)

    def close(self) -> None:
        if self._service is not None:
            with contextlib.suppress(Exception):
                self._service.close()
        self._service = None
        self._tables.clear()


def _table_store_from_settings() -> TableStore:
    """The process-wide TableStore from Settings (created on first use)."""
    from shared.config import get_settings

    s = get_settings()
    return TableStore(
        connection_string=s.DATA_TABLES_CONNECTION.get_secret_value() if s.DATA_TABLES_CONNECTION else None,
        endpoint=s.DATA_TABLES_ENDPOINT,
        prefix=s.DATA_TABLES_PREFIX,
        timeout=s.STORAGE_TIMEOUT_SECONDS,
    )


get_table_store = lifecycle.process_wide(_table_store_from_settings, close=TableStore.close)
