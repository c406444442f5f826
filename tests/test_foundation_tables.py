"""The Table Storage adapter against a real Azurite."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.tables import Conflict, TableStore, TransientStorageError, escape_key, plan_batches, unescape_key
from tests.support import run_in_threads


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


def test_plan_batches_groups_by_partition_and_chunks() -> None:
    ops = [("upsert", {"PartitionKey": f"p{i % 3}", "RowKey": str(i)}) for i in range(650)]
    chunks = plan_batches(ops)
    assert all(len(c) <= 100 for c in chunks)
    assert all(len({e["PartitionKey"] for _, e, _ in c}) == 1 for c in chunks)
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


def test_round_trip_types(storage: TableStore) -> None:
    t = storage.table("Types")
    when = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))
    entity = {
        "PartitionKey": "club/1",
        "RowKey": "row#1",
        "big": 2**53 + 1,
        "neg": -(2**40),
        "small": 7,
        "when": when,
        "doc": {"a": [1, "x"], "b": None},
        "flag": False,
        "ratio": 0.25,
        "raw": b"\x00\x01",
    }
    assert t.insert(entity) is True
    got = t.get("club/1", "row#1")
    assert got["big"] == 2**53 + 1 and isinstance(got["big"], int)
    assert got["neg"] == -(2**40)
    assert got["small"] == 7
    assert got["when"] == when and got["when"].tzinfo is not None
    assert got["doc"] == {"a": [1, "x"], "b": None}
    assert got["flag"] is False and got["ratio"] == 0.25 and got["raw"] == b"\x00\x01"
    assert got["PartitionKey"] == "club/1" and got["RowKey"] == "row#1"
    assert got["_etag"]


def test_naive_datetime_is_refused(storage: TableStore) -> None:
    with pytest.raises(ValueError):
        storage.table("Naive").upsert({"PartitionKey": "p", "RowKey": "r", "t": datetime(2026, 1, 1)})


def test_insert_is_idempotent(storage: TableStore) -> None:
    t = storage.table("Ins")
    assert t.insert({"PartitionKey": "p", "RowKey": "r", "v": 1}) is True
    assert t.insert({"PartitionKey": "p", "RowKey": "r", "v": 2}) is False
    assert t.get("p", "r")["v"] == 1


def test_etag_conditional_update(storage: TableStore) -> None:
    t = storage.table("Etag")
    t.upsert({"PartitionKey": "p", "RowKey": "r", "v": 1})
    etag = t.get("p", "r")["_etag"]
    t.update({"PartitionKey": "p", "RowKey": "r", "v": 2}, etag=etag)
    with pytest.raises(Conflict):
        t.update({"PartitionKey": "p", "RowKey": "r", "v": 3}, etag=etag)
    with pytest.raises(Conflict):
        t.update({"PartitionKey": "p", "RowKey": "gone", "v": 3}, etag=etag)
    assert t.get("p", "r")["v"] == 2


def test_concurrent_conditional_updates_lose_no_increment(storage: TableStore) -> None:
    t = storage.table("Counter")
    t.upsert({"PartitionKey": "p", "RowKey": "c", "n": 0})

    def bump(_: int) -> None:
        for _ in range(10):
            while True:
                row = t.get("p", "c")
                try:
                    t.update({"PartitionKey": "p", "RowKey": "c", "n": row["n"] + 1}, etag=row["_etag"])
                    break
                except Conflict:
                    continue

    run_in_threads(bump, 4)
    assert t.get("p", "c")["n"] == 40


def test_merge_vs_replace(storage: TableStore) -> None:
    t = storage.table("Modes")
    t.upsert({"PartitionKey": "p", "RowKey": "r", "a": 1, "b": 2})
    t.upsert({"PartitionKey": "p", "RowKey": "r", "a": 9})
    assert (t.get("p", "r")["a"], t.get("p", "r")["b"]) == (9, 2)
    t.upsert({"PartitionKey": "p", "RowKey": "r", "a": 5}, replace=True)
    assert "b" not in t.get("p", "r")


def test_submit_chunks_over_100_same_partition(storage: TableStore) -> None:
    t = storage.table("Batch")
    sent = t.submit(
        [("upsert", {"PartitionKey": "club/7", "RowKey": f"{i:05d}", "v": i}) for i in range(257)]
        + [("upsert", {"PartitionKey": "other", "RowKey": "x", "v": 1})]
    )
    assert sent == 258
    assert len(list(t.query(partition_key="club/7"))) == 257


def test_submit_conflict_is_atomic_per_chunk(storage: TableStore) -> None:
    t = storage.table("Atomic")
    t.insert({"PartitionKey": "p", "RowKey": "b"})
    with pytest.raises(Conflict):
        t.submit([("create", {"PartitionKey": "p", "RowKey": "a"}), ("create", {"PartitionKey": "p", "RowKey": "b"})])
    assert t.get("p", "a") is None


def test_paging_with_continuation(storage: TableStore) -> None:
    t = storage.table("Pages")
    t.submit([("upsert", {"PartitionKey": "p", "RowKey": f"{i:03d}"}) for i in range(25)])
    seen, token = [], None
    while True:
        items, token = t.page(partition_key="p", page_size=10, continuation=token)
        seen += [i["RowKey"] for i in items]
        if not token:
            break
    assert seen == [f"{i:03d}" for i in range(25)]
    with pytest.raises(ValueError):
        t.page(partition_key="p", continuation="not-a-token")


def test_unreachable_storage_is_transient() -> None:
    from devtools.azurite import connection_string
    from devtools.ports import free_port

    store = TableStore(connection_string=connection_string(free_port()), prefix="x", timeout=1)
    with pytest.raises(TransientStorageError):
        store.table("Nope")


def test_filter_with_parameters_next_to_parentheses(storage: TableStore) -> None:
    t = storage.table("Filters")
    t.submit([("upsert", {"PartitionKey": "p", "RowKey": k, "n": i}) for i, k in enumerate("abcde")])
    rows = t.query("RowKey ge @lo and RowKey lt @hi", parameters={"lo": "b", "hi": "d"}, partition_key="p")
    assert [r["RowKey"] for r in rows] == ["b", "c"]


def test_normalize_filter_keeps_literals() -> None:
    from shared.tables import normalize_filter

    assert normalize_filter("(a eq @x)  and  b eq 'two  spaces (x)' ") == "( a eq @x ) and b eq 'two  spaces (x)'"
    assert normalize_filter("name eq 'O''Brien'") == "name eq 'O''Brien'"


# --- the hand-serialised changeset equals the SDK's ----------------------------------------------
def _sdk_form(op: str, entity: dict, opts: dict) -> tuple:
    """The same operation as azure-data-tables' submit_transaction takes it."""
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    from shared.tables import encode_entity, escape_key

    mode = UpdateMode.REPLACE if opts.get("replace") else UpdateMode.MERGE
    if op == "delete":
        key = {"PartitionKey": escape_key(entity["PartitionKey"]), "RowKey": escape_key(entity["RowKey"])}
        kw = {"etag": opts["etag"], "match_condition": MatchConditions.IfNotModified} if opts.get("etag") else {}
        return ("delete", key, kw)
    if op == "create":
        return ("create", encode_entity(entity))
    kw = {"mode": mode}
    if op == "update":
        kw.update(etag=opts.get("etag") or "*", match_condition=MatchConditions.IfNotModified)
    return (op, encode_entity(entity), kw)


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
    from shared.tables import build_changeset, plan_batches

    t = storage.table("Wire")
    etag = t.upsert({"PartitionKey": "club/1", "RowKey": "u'1", "v": 0}) or "*"
    when = datetime(2026, 5, 17, 8, 0, tzinfo=UTC)
    ops = [
        (
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
        ("upsert", {"PartitionKey": "club/1", "RowKey": "m?1", "v": 1}),
        ("upsert", {"PartitionKey": "club/1", "RowKey": "r 1", "v": 1}, {"replace": True}),
        ("update", {"PartitionKey": "club/1", "RowKey": "u'1", "v": 2}, {"etag": etag, "replace": True}),
        ("update", {"PartitionKey": "club/1", "RowKey": "u2", "v": 2}, {}),
        ("delete", {"PartitionKey": "club/1", "RowKey": "d1"}, {"etag": etag}),
        ("delete", {"PartitionKey": "club/1", "RowKey": "d2"}),
    ]
    [chunk] = plan_batches(ops)
    captured: list[bytes] = []
    with contextlib.suppress(Exception):  # the captured request matters; Azurite may refuse the made-up etags
        t._client.submit_transaction(
            [_sdk_form(op, e, o) for op, e, o in chunk], raw_request_hook=lambda r: captured.append(r.http_request.body)
        )
    client = t._client
    ours, content_type = build_changeset(
        f"{client.scheme}://{client._primary_hostname}", client.table_name, client.api_version, chunk
    )
    assert content_type.startswith("multipart/mixed; boundary=batch_")
    sdk_parts, our_parts = _parts(captured[0]), _parts(ours)
    assert len(sdk_parts) == len(our_parts) == len(ops)
    for sdk, mine in zip(sdk_parts, our_parts):
        assert mine[0] == sdk[0]  # method and URL (escaped, quote-doubled keys)
        assert mine[1] == sdk[1]  # headers, If-Match included
        assert mine[2] == sdk[2]  # the entity JSON with its odata types


def test_changeset_failure_parsing() -> None:
    from shared.tables import changeset_failure

    ok = b"--x\r\nHTTP/1.1 204 No Content\r\n\r\n--x\r\nHTTP/1.1 201 Created\r\n\r\n{}"
    assert changeset_failure(ok) == (None, "")
    bad = (
        b"--x\r\nHTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\n\r\n"
        b'{"odata.error":{"code":"EntityAlreadyExists","message":{"value":"1:exists"}}}'
    )
    assert changeset_failure(bad) == (409, "EntityAlreadyExists")


def test_create_returns_the_etag_for_a_following_conditional_update(storage: TableStore) -> None:
    t = storage.table("Create")
    etag = t.create({"PartitionKey": "p", "RowKey": "r", "v": 1})
    assert etag and etag == t.get("p", "r")["_etag"]
    t.update({"PartitionKey": "p", "RowKey": "r", "v": 2}, etag=etag)  # no read needed in between
    with pytest.raises(Conflict):
        t.create({"PartitionKey": "p", "RowKey": "r", "v": 3})
    assert t.get("p", "r")["v"] == 2
