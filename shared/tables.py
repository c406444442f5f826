"""Table Storage adapter: the one module that talks to azure-data-tables (with its wire format in
:mod:`shared.tables_batch`).

It implements the storage contract of :mod:`shared.tables_contract` (the :class:`Storage` /
:class:`StorageTable` protocols, :class:`Op`, key escaping, values, large values, transactions; all
re-exported here, so ``from shared.tables import ...`` is the one import for callers) and adds what
is Azure's (see docs/architecture.md for the interface):

- values as the SDK takes them: ints beyond Int32 as Edm.Int64 and back to ``int``; the SDK's
  datetimes back to plain aware UTC ``datetime``;
- transactions serialised by :func:`shared.tables_batch.build_changeset` and sent through the
  TableClient's own pipeline (signing, identity auth, retries and timeouts are the SDK's);
- ETag-conditional updates raising :class:`Conflict`;
- errors translated: :class:`TransientStorageError` (retry later: connection failures, 408,
  429, 5xx), :class:`Conflict` (409/412, or the row vanished under an update or a transaction),
  :class:`StorageError` (anything else);
- in a table opened with ``chunked=True``, an entity larger than the service's 1 MiB is refused
  before it is sent (:func:`encode_stored`), as the service would refuse it (``EntityTooLarge``).

Values and errors as the SDK sees them are :mod:`shared.tables_codec`.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared import lifecycle
from shared.tables_batch import build_changeset, changeset_failure, error_code
from shared.tables_codec import (
    TRANSIENT_STATUS,
    Conflict,
    StorageError,
    TransientStorageError,
    decode_continuation,
    decode_entity,
    decode_with_flag,
    encode_continuation,
    encode_entity,
    encode_stored,
    normalize_filter,
    translate,
)
from shared.tables_contract import (
    JSON_SUFFIX,
    Op,
    OpKind,
    OpOptions,
    Row,
    Storage,
    StorageTable,
    as_op,
    escape_key,
    expand_select,
    merges,
    plan_batches,
    project,
    unescape_key,
)

__all__ = [
    "JSON_SUFFIX",
    "Conflict",
    "Op",
    "OpKind",
    "OpOptions",
    "Row",
    "Storage",
    "StorageError",
    "StorageTable",
    "Table",
    "TableStore",
    "TransientStorageError",
    "as_op",
    "build_changeset",
    "changeset_failure",
    "decode_entity",
    "encode_entity",
    "encode_stored",
    "escape_key",
    "get_table_store",
    "normalize_filter",
    "plan_batches",
    "unescape_key",
]


class Table:
    """One table (:class:`StorageTable`). Created on first use by :meth:`TableStore.table`."""

    def __init__(self, client: Any, name: str, *, chunked: bool = False) -> None:
        self._client = client
        self.name = name
        self.chunked = chunked

    def _encode(self, entity: Mapping[str, Any], *, merge: bool) -> dict[str, Any]:
        return encode_entity(entity, chunked=self.chunked, merge=merge)

    def _row(self, entity: Mapping[str, Any], select: Sequence[str] | None) -> Row | None:
        """Decode; a chunked value whose pieces ``select`` did not fetch is read again in full."""
        row, complete = decode_with_flag(entity)
        if not complete:
            full = self.get(row["PartitionKey"], row["RowKey"])
            if full is None:
                return None
            row = full
        return project(row, select)

    # -- point operations ---------------------------------------------------------------
    def get(self, partition_key: str, row_key: str, *, select: Sequence[str] | None = None) -> Row | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            with translate(f"get {self.name}"):
                entity = self._client.get_entity(
                    escape_key(partition_key), escape_key(row_key), select=expand_select(select) if select else None
                )
        except StorageError as exc:
            if isinstance(exc.__cause__, ResourceNotFoundError):
                return None
            raise
        return self._row(entity, select)

    def insert(self, entity: Mapping[str, Any]) -> bool:
        """Create the row; ``False`` (and no change) if it already exists."""
        try:
            self.create(entity)
        except Conflict:
            return False
        return True

    def create(self, entity: Mapping[str, Any]) -> str | None:
        """Create the row and return its ETag; :class:`Conflict` if it already exists."""
        props = self._encode(entity, merge=False)
        with translate(f"insert {self.name}"):
            # Prefer: return-no-content: 204 instead of the entity echoed back (the ETag is a header)
            meta = self._client.create_entity(props, response_preference="return-no-content")
        return (meta or {}).get("etag")

    def upsert(self, entity: Mapping[str, Any], *, replace: bool = False) -> str | None:
        from azure.data.tables import UpdateMode

        props = self._encode(entity, merge=not replace)
        with translate(f"upsert {self.name}"):
            meta = self._client.upsert_entity(props, mode=UpdateMode.REPLACE if replace else UpdateMode.MERGE)
        return (meta or {}).get("etag")

    def update(self, entity: Mapping[str, Any], *, etag: str, replace: bool = False) -> str | None:
        """Write only if the row still has ``etag``; :class:`Conflict` otherwise (or if it vanished)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import UpdateMode

        props = self._encode(entity, merge=not replace)
        try:
            with translate(f"update {self.name}"):
                meta = self._client.update_entity(
                    props,
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
        with translate(f"delete {self.name}"):
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
        page_size: int | None = None,
    ) -> Iterator[Row]:
        """All matching rows, decoded, lazily (storage errors surface while iterating)."""
        flt, params = self._filter(filter, parameters, partition_key)
        sel = expand_select(select) if select else None
        with translate(f"query {self.name}"):
            if flt:
                pager = self._client.query_entities(flt, parameters=params, select=sel, results_per_page=page_size)
            else:
                pager = self._client.list_entities(select=sel, results_per_page=page_size)
            for entity in pager:
                row = self._row(entity, select)
                if row is not None:
                    yield row

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
        """One page of rows and an opaque continuation token (None at the end)."""
        flt, params = self._filter(filter, parameters, partition_key)
        token = decode_continuation(continuation)
        sel = expand_select(select) if select else None
        with translate(f"page {self.name}"):
            if flt:
                pager = self._client.query_entities(flt, parameters=params, select=sel, results_per_page=page_size)
            else:
                pager = self._client.list_entities(select=sel, results_per_page=page_size)
            pages = pager.by_page(continuation_token=token)
            rows = (self._row(e, select) for e in next(pages, []))
            items = [r for r in rows if r is not None]
            return items, encode_continuation(pages.continuation_token)

    # -- batches ------------------------------------------------------------------------
    def submit(self, operations: Iterable[Op | tuple[Any, ...]]) -> int:
        """Apply :class:`Op` operations (or plain ``(kind, entity[, options])`` tuples); returns
        how many were sent.

        Grouped by PartitionKey (order kept within a partition) and sent as transactions of at most
        100 (:func:`plan_batches`); each transaction is atomic, the whole call is not. A failed
        transaction raises (earlier ones stay applied): :class:`Conflict` when a ``create`` met an
        existing row or an ``update`` / ``delete`` met a changed or missing one.
        """
        count = 0
        for chunk in plan_batches(operations):
            self._send_changeset(chunk)
            count += len(chunk)
        return count

    def _wire(self, op: Op) -> tuple[str, Mapping[str, Any], Mapping[str, Any]]:
        if op.kind == "delete":
            keys = {k: escape_key(op.entity[k]) for k in ("PartitionKey", "RowKey")}
            return op.kind, keys, op.options
        return op.kind, self._encode(op.entity, merge=merges(op)), op.options

    def _send_changeset(self, chunk: list[Op]) -> None:
        from azure.core.rest import HttpRequest

        client = self._client
        base = f"{client.scheme}://{client._primary_hostname}"  # what the SDK's _batch_send uses
        wire = [self._wire(op) for op in chunk]
        payload, content_type = build_changeset(base, client.table_name, client.api_version, wire)
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
        with translate(f"transaction {self.name}"):
            response = client._client.send_request(request, stream=True)
            raw = response.read()
        status, code = response.status_code, ""
        if status == 202:
            status, code = changeset_failure(raw)
            if status is None:
                return
            if status == 404 and code != "TableNotFound":  # an update or delete met no row
                raise Conflict(f"transaction {self.name}: HTTP 404 {code} (row vanished)".strip())
        else:
            code = error_code(raw)
        what = f"transaction {self.name}: HTTP {status} {code}".strip()
        if status in (409, 412) or code in ("EntityAlreadyExists", "UpdateConditionNotSatisfied"):
            raise Conflict(what)
        if status in TRANSIENT_STATUS:
            raise TransientStorageError(what)
        raise StorageError(what)


class TableStore:
    """Table service client + per-name Table cache (:class:`Storage`). Built from Settings by
    :func:`get_table_store`."""

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
        self._clients: dict[str, Any] = {}
        self._tables: dict[tuple[str, bool], Table] = {}
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

    def table(self, name: str, *, chunked: bool = False) -> Table:
        """The table ``<prefix><name>``, created if it does not exist (once per process).

        ``chunked=True``: this handle stores oversize ``str`` / ``bytes`` values in pieces
        (:mod:`shared.tables_contract`); every handle reads them.
        """
        full = self.full_name(name)
        table = self._tables.get((full, chunked))
        if table is not None:
            return table
        with self._lock:
            table = self._tables.get((full, chunked))
            if table is None:
                client = self._clients.get(full)
                if client is None:
                    with translate(f"create table {full}"):
                        client = self.service.create_table_if_not_exists(full)
                    self._clients[full] = client
                table = Table(client, full, chunked=chunked)
                self._tables[(full, chunked)] = table
        return table

    def ping(self) -> None:
        """Cheap reachability check (raises TransientStorageError/StorageError)."""
        with translate("ping"):
            next(iter(self.service.query_tables("TableName eq 'x'", results_per_page=1)), None)

    def close(self) -> None:
        if self._service is not None:
            with contextlib.suppress(Exception):
                self._service.close()
        self._service = None
        self._clients.clear()
        self._tables.clear()


if TYPE_CHECKING:  # the type checker holds the adapter to the contract

    def _implements_contract(store: TableStore, table: Table) -> tuple[Storage, StorageTable]:
        return store, table


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
