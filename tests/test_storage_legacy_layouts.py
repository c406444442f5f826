"""Rows written before the adapter chunked long values still read, through the current code.

The callers used to split long values themselves: the projection row's ``data`` into ``data00``…
with ``dataChunks``, the journal's body into ``Body00``… (14 in the row, then overflow rows
``000014``…, spilled properties in ``m00000``…) and an IdrottOnline record into ``d0``… with
``dn``. Now they write one value through a table opened with ``chunked=True``. Each test writes a
row in the earlier layout directly (a plain handle, as the old code wrote it) and reads or
rewrites it through the current code, on both stores.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from devtools.memtables import MemoryTableStore
from shared.idrott import rows
from shared.idrott.models import Activity, Person
from shared.idrott.store import ClubRecords
from shared.nif.queue import entities as E
from shared.nif.queue.envelope import RawMessage
from shared.nif.queue.journal import journal_keys
from shared.nif.queue.processor import QueueProcessor
from shared.nif.queue.quarantine import list_quarantined, replay
from shared.nif.queue.rebuild import rebuild
from shared.nif.queue.rows import row_data
from shared.tables_contract import Op, Storage
from shared.textsize import CHUNK_UNITS, text_chunks
from tests.idrott_support import activity, person
from tests.queue_support import T0, journaled, projection_row

STORES = ["memory", "azurite"]
_seq = itertools.count(5_000)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Storage:
    if request.param == "azurite":
        return request.getfixturevalue("storage")
    return MemoryTableStore()


def _no_confirm(trace_id: str, **_: Any) -> bool:
    return False


# --- the earlier layouts, as the old code wrote them ---------------------------------------------
def _legacy_journal_rows(raw: RawMessage, *, spill_props: bool = False) -> tuple[dict, list[dict]]:
    """A journal row and its overflow rows in the earlier layout (``Body00``…, ``m00000``…)."""
    pk, rk = journal_keys(raw)
    chunks = text_chunks(raw.body.decode("utf-8"), CHUNK_UNITS)
    meta: dict[str, Any] = {
        "seq": raw.sequence_number,
        "enq": raw.enqueued_time_utc.isoformat() if raw.enqueued_time_utc else None,
        "dc": raw.delivery_count,
        "props": dict(raw.application_properties),
        "len": len(raw.body),
        "enc": "text",
        "chunks": len(chunks),
        "at": T0.isoformat(),
    }
    overflow = [
        {"PartitionKey": f"{pk}-{rk}", "RowKey": f"{i:06d}", "Chunk": chunk}
        for i, chunk in enumerate(chunks[14:], start=14)
    ]
    if spill_props:
        pieces = text_chunks(json.dumps({"props": meta.pop("props"), "user": None}), 7)
        meta["propsChunks"] = len(pieces)
        overflow += [{"PartitionKey": f"{pk}-{rk}", "RowKey": f"m{i:05d}", "Chunk": p} for i, p in enumerate(pieces)]
    row = {"PartitionKey": pk, "RowKey": rk, "MessageId": raw.message_id, "Entity": "ToOrg", "Meta": meta}
    row.update({f"Body{i:02d}": chunk for i, chunk in enumerate(chunks[:14])})
    return row, overflow


def _org_message(org_id: int, body: dict, seq: int) -> RawMessage:
    props = {"ObjectId": org_id, "EntityName": "ToOrg", "ChangeType": 9}
    return RawMessage(f"msg-{seq}", seq, T0, 1, props, json.dumps(body, ensure_ascii=False).encode())


def _write_legacy_journal(store: Storage, raw: RawMessage, **kw: Any) -> None:
    row, overflow = _legacy_journal_rows(raw, **kw)
    if overflow:
        store.table(E.JOURNAL_OVERFLOW_TABLE).submit(Op("upsert", r) for r in overflow)
    store.table(E.JOURNAL_TABLE).upsert(row)


# --- queue ---------------------------------------------------------------------------------------
def test_a_projection_row_in_the_earlier_layout_is_read_and_rewritten(store: Storage) -> None:
    """``dataChunks`` / ``data00``…: read by the mirror's reader and by the merge, which writes
    the next change in the current layout (a projection write replaces the row)."""
    big = {"orgId": 7, "orgName": "Gammal klubb", "description": "ø" * 70_000}
    text = json.dumps(big, ensure_ascii=False, separators=(",", ":"))
    pk, rk = E.row_keys("ToOrg", True, 7)
    legacy = {"PartitionKey": pk, "RowKey": rk, "ObjectId": 7, "st": {"fv": {}, "v": ""}}
    chunks = text_chunks(text, CHUNK_UNITS)
    legacy.update({"dataChunks": len(chunks), **{f"data{i:02d}": c for i, c in enumerate(chunks)}})
    store.table(E.PROJECTION_TABLES["ToOrg"]).upsert(legacy)
    assert row_data(projection_row(store, "ToOrg", 7) or {}) == big

    seq = next(_seq)
    QueueProcessor(store, confirm=_no_confirm).process(_org_message(7, {"orgId": 7, "shortName": "GK"}, seq))
    row = projection_row(store, "ToOrg", 7)
    assert row is not None and "dataChunks" not in row and "data00" not in row
    assert row_data(row) == {**big, "shortName": "GK"}


@pytest.mark.parametrize("spill_props", [False, True])
def test_a_journal_row_in_the_earlier_layout_is_rebuilt_from(store: Storage, spill_props: bool) -> None:
    """``Body00``… with overflow rows ``000014``… (and spilled properties in ``m00000``…): read back
    whole, and a rebuild applies it."""
    # > 14 chunks; mostly ASCII: Azurite measures an upserted entity by its escaped JSON
    body = {"orgId": 8, "orgName": "Stor klubb", "description": "abc " * 120_000 + "æøå \U0001f600"}
    raw = _org_message(8, body, next(_seq))
    _write_legacy_journal(store, raw, spill_props=spill_props)
    (back,) = journaled(store)
    assert back.body == raw.body and back.application_properties == raw.application_properties

    result = rebuild(store, QueueProcessor(store, confirm=_no_confirm), "ToOrg")
    assert result["applied"] == 1
    assert row_data(projection_row(store, "ToOrg", 8) or {}) == body


def test_a_redelivered_message_journaled_in_the_earlier_layout_is_journaled_again_whole(store: Storage) -> None:
    """A batch journals with REPLACE: the row takes the current layout, keeps no ``Body00``…, and
    its overflow rows never mix with the earlier ones under the same partition."""
    body = {"orgId": 9, "orgName": "Klubb", "description": "x" * 500_000}  # > one segment, > 14 chunks
    first, other = next(_seq), next(_seq)
    raw = _org_message(9, body, first)
    _write_legacy_journal(store, raw)
    again = RawMessage(raw.message_id, first, T0, 2, raw.application_properties, raw.body)
    QueueProcessor(store, confirm=_no_confirm).process_batch([again, _org_message(10, {"orgId": 10}, other)])
    pk, rk = journal_keys(raw)
    row = store.table(E.JOURNAL_TABLE).get(pk, rk)
    assert row is not None and not any(k.startswith("Body0") for k in row)
    assert {m.sequence_number: m.body for m in journaled(store)}[first] == raw.body
    assert row_data(projection_row(store, "ToOrg", 9) or {}) == body


def test_a_quarantine_row_in_the_earlier_layout_is_replayed(store: Storage) -> None:
    raw = _org_message(11, {"orgId": 11, "orgName": "Karantän"}, next(_seq))
    row, _ = _legacy_journal_rows(raw)
    jpk, jrk = row["PartitionKey"], row["RowKey"]
    row.update(PartitionKey="quarantined", JournalPartitionKey=jpk, JournalRowKey=jrk, Reason="x", Status="quarantined")
    store.table(E.QUARANTINE_TABLE).upsert(row)
    assert [r["RowKey"] for r in list_quarantined(store)] == [jrk]
    assert replay(store, QueueProcessor(store, confirm=_no_confirm)) == {"replayed": 1, "still_poison": 0}
    assert row_data(projection_row(store, "ToOrg", 11) or {}) == {"orgId": 11, "orgName": "Karantän"}


# --- IdrottOnline records ------------------------------------------------------------------------
def _legacy_record(club_id: str, key: str, data: dict, **fields: Any) -> dict:
    chunks = text_chunks(json.dumps(data), CHUNK_UNITS)
    return {
        "PartitionKey": club_id,
        "RowKey": key,
        **{f"d{i}": c for i, c in enumerate(chunks)},
        "dn": len(chunks),
        **fields,
    }


def test_idrott_records_in_the_earlier_layout_are_read_merged_and_re_keyed(store: Storage) -> None:
    """``d0..dN`` / ``dn``: read as the record; a later intake write MERGEs ``data`` into the row,
    which then wins; the personnummer of an earlier row still decides a re-key."""
    club = f"c{next(_seq)}"
    plain = store.table(rows.TABLE)
    old = Person.model_validate(person("old1")).stored_data()
    participants = [f"p{i}" for i in range(1500)]
    act = Activity.model_validate(activity("a1", participants)).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    start = datetime.fromisoformat(act["startTime"]).astimezone(UTC)
    plain.submit(
        [
            Op("upsert", _legacy_record(club, rows.P + "old1", old, hash="h", active=True)),
            Op("upsert", _legacy_record(club, rows.A + "a1", act, hash="h", deleted=False, start_time=start)),
        ]
    )
    assert (plain.get(club, rows.A + "a1") or {})["dn"] > 1  # the old code needed several properties
    rec = ClubRecords(club, store.table(rows.TABLE, chunked=True))
    person_row, act_row = rec.get_person("old1"), rec.get_activity("a1")
    assert person_row is not None and person_row.data == old
    assert act_row is not None and act_row.data == act and len(act_row.data["participants"]) == 1500

    changed = Activity.model_validate({**activity("a1", participants[:10]), "name": "Ny"})
    rec.upsert_activities([changed])
    again = rec.get_activity("a1")
    assert again is not None and again.data["name"] == "Ny" and len(again.data["participants"]) == 10

    moved = Person.model_validate({**person("new1"), "replacesExternalId": "old1"})
    assert rec.upsert_persons([moved]) == []
    alias, new = rec.get_person("old1"), rec.get_person("new1")
    assert alias is not None and alias.moved_to == "new1"
    assert new is not None and new.data["personnummer"] == old["personnummer"]
