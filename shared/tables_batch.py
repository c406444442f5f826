"""The ``$batch`` wire format of a Table Storage transaction, written by hand.

:meth:`shared.tables.Table.submit` sends each atomic chunk as one ``$batch`` request holding one
changeset. :func:`build_changeset` writes the same request as azure-data-tables 12.7's
``submit_transaction`` (``TableBatchOperations`` + ``_batch_send``) without azure-core's generic
multipart machinery (Python's ``email`` package), about a third of the client CPU per operation
(docs/queue.md, "What it took"). It borrows one private helper of the SDK,
``azure.data.tables._serialize._add_entity_properties``, for the entity JSON with its odata types,
so it is pinned to the SDK version in requirements.txt; tests/test_tables_batch.py compares it with
the SDK's own request part by part and fails when an SDK upgrade changes the format.
:func:`changeset_failure` reads the answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

#: One changeset operation as :func:`build_changeset` takes it: kind (``create`` / ``upsert`` /
#: ``update`` / ``delete``), the entity as the SDK takes it (``shared.tables.encode_entity``:
#: escaped keys, typed values), options (``etag``, ``replace``).
WireOp = tuple[str, Mapping[str, Any], Mapping[str, Any]]

_PART_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3})", re.MULTILINE)
_ERROR_CODE = re.compile(rb'"code"\s*:\s*"([A-Za-z]+)"')


def build_changeset(
    base_url: str,
    table_name: str,
    api_version: str,
    chunk: Sequence[WireOp],
    *,
    boundary: str | None = None,
) -> tuple[bytes, str]:
    """The body and Content-Type of a ``$batch`` request holding one changeset.

    Same methods as the SDK (POST create, PATCH merge, PUT replace, DELETE), same sub-request
    headers, entity JSON from the SDK's own ``_add_entity_properties``, keys quoted by its
    ``_prepare_key`` rule: what Azure accepts from the SDK it accepts from us.
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
            pk = quote(str(entity["PartitionKey"]).replace("'", "''"), safe="")
            rk = quote(str(entity["RowKey"]).replace("'", "''"), safe="")
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
            body = json.dumps(_add_entity_properties(entity))
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


def error_code(raw: bytes) -> str:
    """The service's error code (``EntityAlreadyExists``, …) in an error body, or ``""``."""
    m = _ERROR_CODE.search(raw or b"")
    return m.group(1).decode() if m else ""


def changeset_failure(raw: bytes) -> tuple[int | None, str]:
    """The first failing sub-response of a ``$batch`` answer: ``(status, error code)`` or ``(None, "")``."""
    for m in _PART_STATUS.finditer(raw):
        status = int(m.group(1))
        if not 200 <= status < 300:
            return status, error_code(raw[m.end() :])
    return None, ""
