"""Delta selection, content hashes, LOK periods."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shared.idrott.delta import StoredRecord, content_hash, export_marker, lok_period, select_changes
from shared.idrott.models import Activity

TODAY = date(2024, 5, 20)


def P(key, h="h1", exported=None, tomb=False):
    return StoredRecord(key=key, content_hash=h, exported_hash=exported, tombstone=tomb)


def A(key, start, h="h1", exported=None, tomb=False, parts=()):
    return StoredRecord(
        key=key, content_hash=h, exported_hash=exported, tombstone=tomb, start_time=start, participant_ids=tuple(parts)
    )


@pytest.mark.parametrize(
    "d,period",
    [
        (date(2024, 1, 1), (date(2024, 1, 1), date(2024, 6, 30))),
        (date(2024, 6, 30), (date(2024, 1, 1), date(2024, 6, 30))),
        (date(2024, 7, 1), (date(2024, 7, 1), date(2024, 12, 31))),
        (date(2024, 12, 31), (date(2024, 7, 1), date(2024, 12, 31))),
    ],
)
def test_lok_period(d, period):
    assert lok_period(d) == period


def test_first_run_all_persons_and_current_period_activities():
    persons = [P("p1"), P("p2", exported="h1"), P("gone", tomb=True)]
    acts = [
        A("in", datetime(2024, 3, 1, 10, tzinfo=UTC), parts=["p1", "other"]),
        A("old", datetime(2023, 12, 31, 10, tzinfo=UTC)),
        A("edge", datetime(2023, 12, 31, 23, 30, tzinfo=UTC)),  # 1 Jan 00:30 in Stockholm
        A("deleted", datetime(2024, 3, 1, tzinfo=UTC), tomb=True),
    ]
    sel = select_changes(persons, acts, first_run=True, today=TODAY)
    assert [p.key for p in sel.persons] == ["p1", "p2"]
    assert [a.key for a in sel.activities] == ["in", "edge"]
    assert sel.deleted_activities == []
    assert sel.referenced_person_ids == {"other"}
    assert sel.first_run and not sel.empty


def test_later_run_only_changes():
    persons = [
        P("same", h="a", exported="a"),
        P("changed", h="b", exported="a"),
        P("new", h="c"),
        P("left", h="d", exported="d", tomb=True),
        P("left-sent", h="d", exported=export_marker("d", True), tomb=True),
        P("left-never-sent", h="e", tomb=True),
    ]
    acts = [
        A("same", datetime(2024, 3, 1, tzinfo=UTC), h="x", exported="x", parts=["same"]),
        A("changed-old-period", datetime(2023, 9, 1, tzinfo=UTC), h="y", exported="x", parts=["same", "changed"]),
        A("del", datetime(2024, 3, 1, tzinfo=UTC), h="x", exported="x", tomb=True),
        A("del-sent", datetime(2024, 3, 1, tzinfo=UTC), h="x", exported=export_marker("x", True), tomb=True),
        A("del-never-sent", datetime(2024, 3, 1, tzinfo=UTC), tomb=True),
    ]
    sel = select_changes(persons, acts, first_run=False, today=TODAY)
    assert [p.key for p in sel.persons] == ["changed", "new", "left"]
    assert [a.key for a in sel.activities] == ["changed-old-period"]
    assert [a.key for a in sel.deleted_activities] == ["del"]
    assert sel.referenced_person_ids == {"same"}  # "changed" is already selected
    assert ("person", "left", "deleted:d") in sel.markers()
    assert ("activity", "del", "deleted:x") in sel.markers()


def test_nothing_to_do():
    sel = select_changes([P("a", exported="h1")], [], first_run=False, today=TODAY)
    assert sel.empty and sel.markers() == []


def test_after_markers_stored_nothing_is_pending():
    persons = [P("a", h="1"), P("b", h="2", exported="1", tomb=True)]
    sel = select_changes(persons, [], first_run=False, today=TODAY)
    stored = {key: marker for _, key, marker in sel.markers()}
    again = [StoredRecord(p.key, p.content_hash, stored[p.key], p.tombstone) for p in persons]
    assert select_changes(again, [], first_run=False, today=TODAY).empty


def test_content_hash_stable_and_order_insensitive():
    base = {
        "activityId": "a1",
        "typeId": 1,
        "name": "T",
        "sportId": 1,
        "venueName": "V",
        "startTime": "2024-03-01T10:00:00+01:00",
        "endTime": "2024-03-01T11:00:00+01:00",
        "participants": [{"personId": "p1"}, {"personId": "p2", "leader": True}],
    }
    a = Activity.model_validate(base)
    b = Activity.model_validate(
        {**base, "participants": list(reversed(base["participants"])), "startTime": "2024-03-01T09:00:00Z"}
    )
    assert content_hash(a) == content_hash(b)
    assert len(content_hash(a)) == 64
    c = Activity.model_validate({**base, "name": "T2"})
    assert content_hash(c) != content_hash(a)
    assert content_hash({"x": 1, "y": None}) == content_hash({"x": 1})
    # pinned: canonical JSON → sha256 must not change between releases (stored hashes)
    assert content_hash({"b": [1, 2], "a": "å"}) == "f1f28697192401885b4a27f9f65989afb4269f31fb0ae9875e928e421b1a63f0"


def test_content_hash_refuses_naive():
    with pytest.raises(ValueError):
        content_hash({"t": datetime(2024, 1, 1)})
