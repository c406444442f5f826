"""shared/tables_batch.py: the hand-written ``$batch`` request is the SDK's, part by part.

``build_changeset`` borrows a private helper of azure-data-tables and copies the SDK's request
format; this test is what makes that safe: it captures the request the SDK's own
``submit_transaction`` sends for the same operations and compares every sub-request (method, URL
with escaped and quote-doubled keys, headers with If-Match, the entity JSON with its odata types).
An SDK upgrade that changes the format fails here.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from shared.tables import Op, TableStore, encode_entity, escape_key, merges, plan_batches
from shared.tables_batch import build_changeset, changeset_failure, error_code


def _sdk_form(op: Op) -> tuple:
    """The same operation as azure-data-tables' submit_transaction takes it."""
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    entity, opts = op.entity, op.options
    mode = UpdateMode.REPLACE if opts.get("replace") else UpdateMode.MERGE
    if op.kind == "delete":
        key = {"PartitionKey": escape_key(entity["PartitionKey"]), "RowKey": escape_key(entity["RowKey"])}
        etag = opts.get("etag")
        return ("delete", key, {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {})
    if op.kind == "create":
        return ("create", encode_entity(entity))
    kw: dict[str, Any] = {"mode": mode}
    if op.kind == "update":
        kw.update(etag=opts.get("etag") or "*", match_condition=MatchConditions.IfNotModified)
    return (op.kind, encode_entity(entity, merge=merges(op)), kw)


def _parts(body: bytes) -> list[tuple[str, dict, str]]:
    """Sub-requests of a $batch body: (request line, headers without dates, body)."""
    text = body.decode("utf-8")
    changeset = text.split("boundary=", 1)[1].split("\r\n", 1)[0]
    out = []
    for chunk in text.split(f"--{changeset}")[1:-1]:
        _mime, http = chunk.strip("\r\n").split("\r\n\r\n", 1)
        head, _, payload = http.partition("\r\n\r\n")
        line, *hdrs = head.split("\r\n")
        headers = {k.lower(): v for k, v in (h.split(": ", 1) for h in hdrs) if k.lower() not in ("x-ms-date", "date")}
        out.append((line, headers, payload.strip("\r\n")))
    return out


def test_changeset_is_the_sdk_serialisation(storage: TableStore) -> None:
    """What Azure accepts from azure-data-tables it accepts from us: same sub-requests, part by part."""
    t = storage.table("Wire")
    etag = t.upsert({"PartitionKey": "club/1", "RowKey": "u'1", "v": 0}) or "*"
    when = datetime(2026, 5, 17, 8, 0, tzinfo=UTC)
    ops = [
        Op(
            "create",
            {
                "PartitionKey": "club/1",
                "RowKey": "c#1",
                "big": 2**40,
                "s": "æøå 'q'",
                "when": when,
                "doc": {"a": [1]},
                "flag": True,
                "ratio": 0.5,
                "raw": b"\x00\xff",
            },
        ),
        Op("upsert", {"PartitionKey": "club/1", "RowKey": "m?1", "v": 1}),
        Op("upsert", {"PartitionKey": "club/1", "RowKey": "r 1", "v": 1}, {"replace": True}),
        Op("update", {"PartitionKey": "club/1", "RowKey": "u'1", "v": 2}, {"etag": etag, "replace": True}),
        Op("update", {"PartitionKey": "club/1", "RowKey": "u2", "v": 2}, {}),
        Op("delete", {"PartitionKey": "club/1", "RowKey": "d1"}, {"etag": etag}),
        Op("delete", {"PartitionKey": "club/1", "RowKey": "d2"}),
    ]
    [chunk] = plan_batches(ops)
    captured: list[bytes] = []
    sdk_ops = [_sdk_form(op) for op in chunk]
    with contextlib.suppress(Exception):  # the captured request matters; Azurite may refuse the made-up etags
        t._client.submit_transaction(sdk_ops, raw_request_hook=lambda r: captured.append(r.http_request.body))
    client = t._client
    ours, content_type = build_changeset(
        f"{client.scheme}://{client._primary_hostname}",
        client.table_name,
        client.api_version,
        [t._wire(op) for op in chunk],  # what Table.submit sends
    )
    assert content_type.startswith("multipart/mixed; boundary=batch_")
    sdk_parts, our_parts = _parts(captured[0]), _parts(ours)
    assert len(sdk_parts) == len(our_parts) == len(ops)
    for sdk, mine in zip(sdk_parts, our_parts, strict=True):
        assert mine[0] == sdk[0]  # method and URL (escaped, quote-doubled keys)
        assert mine[1] == sdk[1]  # headers, If-Match included
        assert mine[2] == sdk[2]  # the entity JSON with its odata types


def test_changeset_failure_parsing() -> None:
    ok = b"--x\r\nHTTP/1.1 204 No Content\r\n\r\n--x\r\nHTTP/1.1 201 Created\r\n\r\n{}"
    assert changeset_failure(ok) == (None, "")
    bad = (
        b"--x\r\nHTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\n\r\n"
        b'{"odata.error":{"code":"EntityAlreadyExists","message":{"value":"1:exists"}}}'
    )
    assert changeset_failure(bad) == (409, "EntityAlreadyExists")
    assert error_code(b"") == ""
