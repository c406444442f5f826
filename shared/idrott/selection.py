"""The adapter half of a run's selection: what to read, and the persons the files need.

The decision is the core's (:func:`shared.idrott.delta.select_changes`); :func:`select` decides
what to read: on a full load (no successful run yet) the whole club (activities narrowed by a
``start_time`` range around the LOK period), otherwise only the records named by dirty markers.
Then it reads the unchanged persons the selected activities refer to, following re-keys:
an activity stored before a re-key names the old id, and is sent with the person's current one.
:func:`leave_out` takes records that cannot be sent back out of a selection, so the commit keeps
them pending.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from shared.idrott.clock import SWEDISH_TIMEZONE
from shared.idrott.delta import Selection, lok_period, select_changes
from shared.idrott.rows import A, D, P, StoredActivity, StoredPerson, activity_from_row, person_from_row

if TYPE_CHECKING:
    from shared.idrott.store import ClubRecords

log = logging.getLogger(__name__)

#: What a run of one club sends: the core's selection of stored records.
type ClubSelection = Selection[StoredPerson, StoredActivity]

_MAX_ALIAS_HOPS = 10


def select(
    records: ClubRecords, *, full_load: bool, today: date, timezone_name: str = SWEDISH_TIMEZONE
) -> ClubSelection:
    """The records the next run sends (read-only; the preview uses it too). See the module
    docstring; ``dirty_markers`` are the markers read at the start (cleared by the commit)."""
    markers = records.dirty_markers()
    everyone: dict[str, StoredPerson] | None
    if full_load:
        first, last = lok_period(today)
        lo = datetime(first.year, first.month, first.day, tzinfo=UTC) - timedelta(days=1)
        hi = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=2)
        everyone = {p.external_id: p for p in records.all_persons()}
        persons = dict(everyone)
        activities: Iterable[StoredActivity] = list(records.all_activities(lo, hi))
    else:
        everyone = None
        p_ids = {m["RowKey"][len(D + P) :] for m in markers if m["RowKey"].startswith(D + P)}
        a_ids = {m["RowKey"][len(D + A) :] for m in markers if m["RowKey"].startswith(D + A)}
        persons = _persons(records, p_ids, None)
        activities = [activity_from_row(r) for r in records.load_rows(A, a_ids).values()]
    persons = {k: p for k, p in persons.items() if not p.moved_to}  # aliases are never sent
    sel = select_changes(persons.values(), activities, full_load=full_load, today=today, timezone_name=timezone_name)
    sel.dirty_markers = [(m["RowKey"], m["_etag"]) for m in markers]
    sel.persons.sort(key=lambda p: p.external_id)
    sel.activities.sort(key=lambda a: (a.data.get("startTime", ""), a.activity_id))
    sel.deletes.sort(key=lambda a: a.activity_id)
    needed = sel.referenced_person_ids()
    loaded = _persons(records, needed, everyone)
    alias = _aliases(records, loaded, everyone)
    if alias:  # activities stored before a re-key name the old id: send the person's current one
        for a in sel.activities:
            a.data = {**a.data, "participants": _remap_participants(a.data.get("participants", []), alias)}
        needed = sel.referenced_person_ids()
        loaded = {k: v for k, v in loaded.items() if k in needed}
        loaded.update(_persons(records, needed - set(loaded), everyone))
    referenced = {k: v for k, v in loaded.items() if not v.moved_to}
    missing = needed - set(referenced)
    if missing:  # persons removed by DELETE (aliases, ids that were never exportable)
        log.error(
            "club %s: %d participant(s) refer to unknown persons; they are left out", records.club_id, len(missing)
        )
        for a in sel.activities:
            parts = [pt for pt in a.data.get("participants", []) if pt["personId"] not in missing]
            a.data = {**a.data, "participants": parts}
        sel.activities = [a for a in sel.activities if a.data.get("participants")]
    sel.referenced_persons = sorted(referenced.values(), key=lambda p: p.external_id)
    return sel


def leave_out(sel: ClubSelection, skipped: list[dict]) -> None:
    """Take the skipped records (``{"kind", "id", ...}``) out of ``sel``, so the commit neither
    marks them exported nor deletes their dirty markers: they stay pending. Referenced persons are
    kept only for the activities that are still sent."""
    if not skipped:
        return
    skip_p = {s["id"] for s in skipped if s["kind"] == "person"}
    skip_a = {s["id"] for s in skipped if s["kind"] == "activity"}
    sel.persons = [p for p in sel.persons if p.external_id not in skip_p]
    sel.activities = [a for a in sel.activities if a.activity_id not in skip_a]
    sel.deletes = [a for a in sel.deletes if a.activity_id not in skip_a]
    needed = {pid for a in sel.activities for pid in a.participant_ids}
    sel.referenced_persons = [
        p for p in sel.referenced_persons if p.external_id in needed and p.external_id not in skip_p
    ]
    keep = {D + P + i for i in skip_p} | {D + A + i for i in skip_a}
    sel.dirty_markers = [(rk, etag) for rk, etag in sel.dirty_markers if rk not in keep]


def _persons(records: ClubRecords, ids: set[str], everyone: dict[str, StoredPerson] | None) -> dict[str, StoredPerson]:
    if everyone is not None:
        return {k: everyone[k] for k in ids if k in everyone}
    return {k: person_from_row(r) for k, r in records.load_rows(P, ids).items()}


def _aliases(
    records: ClubRecords, loaded: dict[str, StoredPerson], everyone: dict[str, StoredPerson] | None
) -> dict[str, str]:
    """Re-keyed ids among ``loaded`` → the id the person has now (following later re-keys)."""
    out: dict[str, str] = {}
    for old, p in loaded.items():
        target, hops = p.moved_to, 0
        while target and hops < _MAX_ALIAS_HOPS:
            nxt = _persons(records, {target}, everyone).get(target)
            if nxt is None or not nxt.moved_to:
                break
            target, hops = nxt.moved_to, hops + 1
        if target:
            out[old] = target
    return out


def _remap_participants(participants: list[dict], alias: dict[str, str]) -> list[dict]:
    """Participants with re-keyed ids replaced by the current ones; one entry per person (a
    person named under both ids keeps ``leader``/``disabled`` if either entry had it)."""
    out: dict[str, dict] = {}
    for pt in participants:
        pid = alias.get(pt["personId"], pt["personId"])
        if pid in out:
            prev = out[pid]
            out[pid] = {
                **prev,
                "leader": bool(prev.get("leader")) or bool(pt.get("leader")),
                "disabled": bool(prev.get("disabled")) or bool(pt.get("disabled")),
            }
        else:
            out[pid] = {**pt, "personId": pid}
    return list(out.values())
