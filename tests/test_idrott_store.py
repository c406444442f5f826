"""Store: dirty markers, change selection without a full read, chunked records (Azurite)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shared.idrott import state
from shared.idrott import store as store_mod
from shared.idrott.models import Activity, Person
from shared.idrott.store import ClubRecords
from tests.idrott_support import activity, person

TODAY = date.today()


@pytest.fixture
def rec(storage):
    return ClubRecords("club1")


def _pdata(i, **over):
    """Person ``p<i>`` with a personnummer of its own (a club holds one externalId per number)."""
    return {**person(f"p{i}", year=2000 + i // 500, serial=2 * (i % 500) + 1), **over}


def _persons(n, start=0):
    return [Person.model_validate(_pdata(i)) for i in range(start, start + n)]


def _ack(rec, full):
    """What a successful run does around its upload (shared.idrott.export)."""
    if full:
        state.start_markers(rec.club_id)
    sel = rec.select(full_load=full, today=TODAY)
    state.mark_run_succeeded(rec.club_id, "batch", datetime.now(UTC), scan=sel.scan)
    rec.commit(sel)
    if sel.scan:
        state.mark_records_committed(rec.club_id)
    return sel


def test_delta_reads_only_marked_records(rec, monkeypatch):
    rec.upsert_persons(_persons(30))
    assert rec.dirty_markers() == []  # before the first full load: it reads the whole club anyway
    _ack(rec, True)
    assert rec.dirty_markers() == []
    rec.upsert_persons(_persons(2, start=100))
    assert len(rec.dirty_markers()) == 2
    scans = []
    real_all = ClubRecords.all_persons
    monkeypatch.setattr(ClubRecords, "all_persons", lambda self: scans.append(1) or real_all(self))
    sel = rec.select(full_load=False, today=TODAY)
    assert [p.external_id for p in sel.persons] == ["p100", "p101"] and scans == []


def test_many_markers_use_range_scan(rec, monkeypatch):
    monkeypatch.setattr(store_mod, "POINT_READ_LIMIT", 5)
    rec.upsert_persons(_persons(12))
    _ack(rec, True)
    rec.upsert_persons([Person.model_validate(_pdata(i, firstName="New")) for i in range(8)])
    sel = rec.select(full_load=False, today=TODAY)
    assert len(sel.persons) == 8


def test_full_load_limits_activities_to_lok_period(rec):
    rec.upsert_persons(_persons(3))
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(days=400)
    rec.upsert_activities(
        [
            Activity.model_validate(activity("now", ["p0", "p1"], start=now - timedelta(hours=3))),
            Activity.model_validate(activity("old", ["p2"], start=old)),
        ]
    )
    sel = rec.select(full_load=True, today=now.date())
    assert [a.activity_id for a in sel.activities] == ["now"]
    assert {p.external_id for p in sel.all_persons()} == {"p0", "p1", "p2"}


def test_large_activity_is_chunked(rec):
    rec.upsert_persons(_persons(1500))
    big = activity("big", [f"p{i}" for i in range(1500)])
    rec.upsert_activities([Activity.model_validate(big)])
    got = rec.get_activity("big")
    import json

    from shared.textsize import MAX_PROPERTY_UNITS, utf16_units

    assert len(got.data["participants"]) == 1500
    assert utf16_units(json.dumps(got.data)) > MAX_PROPERTY_UNITS  # more than one property holds


def test_known_person_ids_both_paths(rec):
    rec.upsert_persons(_persons(60))
    assert rec.known_person_ids({"p1", "nope"}) == {"p1"}
    assert rec.known_person_ids({f"p{i}" for i in range(70)}) == {f"p{i}" for i in range(60)}


def test_reactivated_member_is_sent_active(rec):
    rec.upsert_persons(_persons(1))
    _ack(rec, True)
    rec.mark_person_left("p0")
    sel = _ack(rec, False)
    assert sel.persons[0].active is False
    rec.upsert_persons(_persons(1))
    sel = rec.select(full_load=False, today=TODAY)
    assert sel.persons[0].active is True and all(s.is_active for s in sel.persons[0].record().sports)
