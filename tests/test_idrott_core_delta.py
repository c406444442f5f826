"""Delta selection, content hashes, LOK periods."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from shared.idrott.delta import content_hash, current_marker, export_marker, is_pending, lok_period, select_changes
from shared.idrott.models import Activity

TODAY = date(2024, 5, 20)


@dataclass(frozen=True)
class Rec:
    """Any record with these attributes can be selected (``delta.Tracked`` / ``TrackedActivity``)."""

    record_id: str
    content_hash: str
    exported_hash: str | None = None
    tombstone: bool = False
    start_time: datetime | None = None
    participant_ids: tuple[str, ...] = ()


def P(key, h="h1", exported=None, tomb=False):
    return Rec(key, h, exported, tomb)


def A(key, start, h="h1", exported=None, tomb=False, parts=()):
    return Rec(key, h, exported, tomb, start_time=start, participant_ids=tuple(parts))


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


def test_full_load_all_persons_and_current_period_activities():
    persons = [P("p1"), P("p2", exported="h1"), P("gone", tomb=True)]
    acts = [
        A("in", datetime(2024, 3, 1, 10, tzinfo=UTC), parts=["p1", "other"]),
        A("old", datetime(2023, 12, 31, 10, tzinfo=UTC)),
        A("edge", datetime(2023, 12, 31, 23, 30, tzinfo=UTC)),  # 1 Jan 00:30 in Stockholm
        A("deleted", datetime(2024, 3, 1, tzinfo=UTC), tomb=True),
    ]
    sel = select_changes(persons, acts, full_load=True, today=TODAY)
    assert [p.record_id for p in sel.persons] == ["p1", "p2"]
    assert [a.record_id for a in sel.activities] == ["in", "edge"]
    assert sel.deletes == []
    assert sel.referenced_person_ids() == {"other"}
    assert sel.full_load and not sel.empty


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
    sel = select_changes(persons, acts, full_load=False, today=TODAY)
    assert [p.record_id for p in sel.persons] == ["changed", "new", "left"]
    assert [a.record_id for a in sel.activities] == ["changed-old-period"]
    assert [a.record_id for a in sel.deletes] == ["del"]
    assert sel.referenced_person_ids() == {"same"}  # "changed" is already selected
    assert [current_marker(p) for p in sel.persons if p.record_id == "left"] == ["deleted:d"]
    assert [current_marker(a) for a in sel.deletes] == ["deleted:x"]


def test_nothing_to_do():
    sel = select_changes([P("a", exported="h1")], [], full_load=False, today=TODAY)
    assert sel.empty and sel.all_persons() == [] and not is_pending(P("a", exported="h1"))


def test_after_markers_stored_nothing_is_pending():
    persons = [P("a", h="1"), P("b", h="2", exported="1", tomb=True)]
    sel = select_changes(persons, [], full_load=False, today=TODAY)
    stored = {p.record_id: current_marker(p) for p in sel.persons}
    again = [Rec(p.record_id, p.content_hash, stored[p.record_id], p.tombstone) for p in persons]
    assert select_changes(again, [], full_load=False, today=TODAY).empty


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
