"""Persons and activities per club in Table Storage, with change tracking for the delta export.

One table ``IdrottRecords`` (prefixed), one partition per club (``PartitionKey=<clubId>``):

=====================  ===========================================================================
RowKey                 row
=====================  ===========================================================================
``P|<externalId>``     person: intake JSON (``d0..dN`` chunks, ``dn`` count), ``hash`` (core
                       ``content_hash`` of the intake JSON), ``exported_hash`` (core
                       ``export_marker`` last uploaded, absent if never), ``active`` (False = the
                       member left: tombstone, exported as ``IsActive=false``), ``updated_at``,
                       ``left_at``, ``exported_at``
``A|<activityId>``     activity: intake JSON, ``hash``, ``exported_hash``, ``deleted`` (tombstone
                       → ``OptionType=Delete``), ``start_time`` (UTC, narrows a full load's scan
                       to the LOK period), ``updated_at``, ``exported_at``
``D|P|<id>``,          "dirty" markers: written in the same transaction as (and before) the record
``D|A|<id>``           on every intake write; a later run reads only this key range plus the
                       records it names, never the whole club
=====================  ===========================================================================

Intake never reads: it writes the marker and the record (MERGE, so ``exported_hash`` survives).
Selection is the core's (``delta.select_changes``): a record whose ``export_marker(hash,
tombstone)`` equals its ``exported_hash`` is not sent again. Commit (only after every file of a
run is uploaded) sets ``exported_hash`` to the marker that was sent and deletes each marker *with the ETag it had when selected*: a marker rewritten meanwhile
(the record changed during the run) survives, so the newer version goes in the next run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.idrott.models import Activity, Person

log = logging.getLogger(__name__)

TABLE = "IdrottRecords"
P, A, D = "P|", "A|", "D|"
_CHUNK = 30_000  # characters per string property (Table Storage: 64 KiB = 32 K UTF-16 units)
_MAX_CHUNKS = 30
#: With more dirty markers than this, scan the kind's key range instead of point reads.
POINT_READ_LIMIT = 200


def _now() -> datetime:
    return datetime.now(UTC)


def content_hash(payload: dict) -> str:
    from shared.idrott.delta import content_hash as core_hash

    return core_hash(payload)


def _split(text: str) -> dict[str, Any]:
    chunks = [text[i : i + _CHUNK] for i in range(0, len(text), _CHUNK)] or [""]
    if len(chunks) > _MAX_CHUNKS:
        raise ValueError("record too large for Table Storage")
    out: dict[str, Any] = {f"d{i}": c for i, c in enumerate(chunks)}
    out["dn"] = len(chunks)
    return out


def _join(row: dict) -> dict:
    n = int(row.get("dn") or 0)
    return json.loads("".join(row.get(f"d{i}", "") for i in range(n)))


@dataclass
class StoredPerson:
    external_id: str
    data: dict
    hash: str
    exported_hash: str | None
    active: bool
    row: dict = field(repr=False, default_factory=dict)

    def model(self) -> Person:
        return Person.model_validate(self.data)

    def record(self):
        """The writer's record; a member who left has every sport ``IsActive=false``."""
        from shared.idrott.xmlwriter import PersonRecord

        return PersonRecord.from_model(self.model(), left=not self.active)

    @property
    def marker(self) -> str:
        from shared.idrott.delta import export_marker

        return export_marker(self.hash, not self.active)

    def stored(self):
        from shared.idrott.delta import StoredRecord

        return StoredRecord(self.external_id, self.hash, self.exported_hash, not self.active, payload=self)


@dataclass
class StoredActivity:
    activity_id: str
    data: dict
    hash: str
    exported_hash: str | None
    deleted: bool
    exported_deleted: bool
    start_time: datetime | None
    row: dict = field(repr=False, default_factory=dict)

    def model(self) -> Activity:
        return Activity.model_validate(self.data)

    def record(self):
        from shared.idrott.xmlwriter import ActivityRecord

        return ActivityRecord.delete(self.activity_id) if self.deleted else ActivityRecord.from_model(self.model())

    @property
    def marker(self) -> str:
        from shared.idrott.delta import export_marker

        return export_marker(self.hash, self.deleted)

    def stored(self):
        from shared.idrott.delta import StoredRecord

        st = self.start_time
        if st is None and self.data.get("startTime"):
            st = datetime.fromisoformat(self.data["startTime"])
        return StoredRecord(
            self.activity_id,
            self.hash,
            self.exported_hash,
            self.deleted,
            start_time=st,
            participant_ids=tuple(p["personId"] for p in self.data.get("participants", [])),
            payload=self,
        )


def _person(row: dict) -> StoredPerson:
    return StoredPerson(
        row["RowKey"][len(P) :],
        _join(row),
        row.get("hash", ""),
        row.get("exported_hash"),
        row.get("active", True) is not False,
        row,
    )


def _activity(row: dict) -> StoredActivity:
    return StoredActivity(
        row["RowKey"][len(A) :],
        _join(row),
        row.get("hash", ""),
        row.get("exported_hash"),
        bool(row.get("deleted")),
        bool(row.get("exported_deleted")),
        row.get("start_time"),
        row,
    )


@dataclass
class Selection:
    """What one run would send, and what to acknowledge once it is uploaded."""

    full_load: bool
    persons: list[StoredPerson] = field(default_factory=list)  # changed persons
    context_persons: list[StoredPerson] = field(default_factory=list)  # referenced, unchanged
    activities: list[StoredActivity] = field(default_factory=list)  # Insert
    deletes: list[StoredActivity] = field(default_factory=list)  # Delete
    markers: list[tuple[str, str]] = field(default_factory=list)  # (RowKey, etag) to clear
    skipped_participants: int = 0

    @property
    def empty(self) -> bool:
        return not (self.persons or self.activities or self.deletes)

    def all_persons(self) -> list[StoredPerson]:
        return self.persons + self.context_persons


def _range(prefix: str) -> tuple[str, dict]:
    """Filter for the RowKeys of one kind. Bounds are single letters (``P`` ≤ key < ``Q``): Azurite
    does not order punctuation ordinally (``'P|x' lt 'P}'`` is false there), letters it does."""
    lo = prefix[0]
    return "RowKey ge @lo and RowKey lt @hi", {"lo": lo, "hi": chr(ord(lo) + 1)}


class ClubRecords:
    """All reads and writes of one club's IdrottOnline records."""

    def __init__(self, club_id: str, table: Any = None) -> None:
        self.club_id = club_id
        if table is None:
            from shared.tables import get_table_store

            table = get_table_store().table(TABLE)
        self.t = table

    # ---- intake ------------------------------------------------------------------------------
    def _ops(self, kind: str, key: str, record: dict, h: str) -> list[tuple]:
        marker = {"PartitionKey": self.club_id, "RowKey": f"{D}{kind}{key}", "hash": h, "marked_at": _now()}
        return [("upsert", marker, {"replace": True}), ("upsert", record)]

    def upsert_persons(self, persons: Sequence[Person]) -> None:
        ops: list[tuple] = []
        for person in persons:
            data = person.model_dump(mode="json", by_alias=True, exclude_none=True)
            h = content_hash(data)
            rec = {
                "PartitionKey": self.club_id,
                "RowKey": P + person.external_id,
                **_split(json.dumps(data)),
                "hash": h,
                "active": True,
                "updated_at": _now(),
            }
            ops += self._ops(P, person.external_id, rec, h)
        if ops:
            self.t.submit(ops)

    def mark_person_left(self, external_id: str) -> bool:
        """The member leaves: tombstone (exported with every sport inactive). False if unknown."""
        row = self.t.get(self.club_id, P + external_id)
        if row is None:
            return False
        if row.get("active", True) is False:
            return True
        from shared.idrott.delta import export_marker

        h = row.get("hash", "")
        rec = {
            "PartitionKey": self.club_id,
            "RowKey": P + external_id,
            "active": False,
            "left_at": _now(),
            "updated_at": _now(),
        }
        self.t.submit(self._ops(P, external_id, rec, export_marker(h, True)))
        return True

    def upsert_activities(self, activities: Sequence[Activity]) -> None:
        ops: list[tuple] = []
        for act in activities:
            data = act.model_dump(mode="json", by_alias=True, exclude_none=True)
            h = content_hash(data)
            rec = {
                "PartitionKey": self.club_id,
                "RowKey": A + act.activity_id,
                **_split(json.dumps(data)),
                "hash": h,
                "deleted": False,
                "start_time": act.start_time.astimezone(UTC),
                "updated_at": _now(),
            }
            ops += self._ops(A, act.activity_id, rec, h)
        if ops:
            self.t.submit(ops)

    def delete_activity(self, activity_id: str) -> bool:
        row = self.t.get(self.club_id, A + activity_id)
        if row is None:
            return False
        if row.get("deleted"):
            return True
        from shared.idrott.delta import export_marker

        rec = {"PartitionKey": self.club_id, "RowKey": A + activity_id, "deleted": True, "updated_at": _now()}
        self.t.submit(self._ops(A, activity_id, rec, export_marker(row.get("hash", ""), True)))
        return True

    def known_person_ids(self, ids: Iterable[str]) -> set[str]:
        wanted = set(ids)
        if not wanted:
            return set()
        if len(wanted) <= 50:
            return {i for i in wanted if self.t.get(self.club_id, P + i, select=["RowKey"]) is not None}
        flt, params = _range(P)
        return {
            r["RowKey"][len(P) :]
            for r in self.t.query(flt, parameters=params, partition_key=self.club_id, select=["RowKey"])
        } & wanted

    # ---- reads --------------------------------------------------------------------------------
    def get_person(self, external_id: str) -> StoredPerson | None:
        row = self.t.get(self.club_id, P + external_id)
        return None if row is None else _person(row)

    def get_activity(self, activity_id: str) -> StoredActivity | None:
        row = self.t.get(self.club_id, A + activity_id)
        return None if row is None else _activity(row)

    def all_persons(self) -> Iterable[StoredPerson]:
        flt, params = _range(P)
        return (_person(r) for r in self.t.query(flt, parameters=params, partition_key=self.club_id))

    def all_activities(self, start: datetime | None = None, end: datetime | None = None) -> Iterable[StoredActivity]:
        flt, params = _range(A)
        if start is not None:
            flt += " and start_time ge @start"
            params["start"] = start
        if end is not None:
            flt += " and start_time lt @end"
            params["end"] = end
        return (_activity(r) for r in self.t.query(flt, parameters=params, partition_key=self.club_id))

    def markers(self) -> list[dict]:
        flt, params = _range(D)
        return list(self.t.query(flt, parameters=params, partition_key=self.club_id, select=["RowKey", "hash"]))

    def _load(self, prefix: str, ids: set[str]) -> dict[str, dict]:
        if not ids:
            return {}
        if len(ids) <= POINT_READ_LIMIT:
            rows = (self.t.get(self.club_id, prefix + i) for i in ids)
            return {r["RowKey"][len(prefix) :]: r for r in rows if r is not None}
        flt, params = _range(prefix)
        return {
            r["RowKey"][len(prefix) :]: r
            for r in self.t.query(flt, parameters=params, partition_key=self.club_id)
            if r["RowKey"][len(prefix) :] in ids
        }

    def counts(self) -> dict[str, int]:
        out = {"persons": 0, "activePersons": 0, "activities": 0, "pendingChanges": 0}
        for r in self.t.query(partition_key=self.club_id, select=["RowKey", "active", "deleted"]):
            rk = r["RowKey"]
            if rk.startswith(P):
                out["persons"] += 1
                out["activePersons"] += r.get("active", True) is not False
            elif rk.startswith(A):
                out["activities"] += not r.get("deleted")
            elif rk.startswith(D):
                out["pendingChanges"] += 1
        return out

    # ---- selection ----------------------------------------------------------------------------
    def select(self, *, full_load: bool, today: date, timezone_name: str = "Europe/Stockholm") -> Selection:
        """The records the next run sends (read-only; the preview uses it too).

        The decision is the core's (:func:`shared.idrott.delta.select_changes`); this method only
        decides what to read: on a full load (no successful run yet) the whole club (activities
        narrowed by a ``start_time`` range around the LOK period), otherwise only the records named
        by dirty markers. Then the unchanged persons the selected activities refer to.
        """
        from shared.idrott.delta import lok_period, select_changes

        sel = Selection(full_load=full_load)
        markers = self.markers()
        sel.markers = [(m["RowKey"], m["_etag"]) for m in markers]
        if full_load:
            first, last = lok_period(today)
            lo = datetime(first.year, first.month, first.day, tzinfo=UTC) - timedelta(days=1)
            hi = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=2)
            persons = {p.external_id: p for p in self.all_persons()}
            activities = list(self.all_activities(lo, hi))
        else:
            p_ids = {m["RowKey"][len(D + P) :] for m in markers if m["RowKey"].startswith(D + P)}
            a_ids = {m["RowKey"][len(D + A) :] for m in markers if m["RowKey"].startswith(D + A)}
            persons = {k: _person(r) for k, r in self._load(P, p_ids).items()}
            activities = [_activity(r) for r in self._load(A, a_ids).values()]
        core = select_changes(
            (p.stored() for p in persons.values()),
            (a.stored() for a in activities),
            first_run=full_load,
            today=today,
            timezone_name=timezone_name,
        )
        sel.persons = sorted((r.payload for r in core.persons), key=lambda p: p.external_id)
        sel.activities = sorted(
            (r.payload for r in core.activities), key=lambda a: (a.data.get("startTime", ""), a.activity_id)
        )
        sel.deletes = sorted((r.payload for r in core.deleted_activities), key=lambda a: a.activity_id)
        needed = set(core.referenced_person_ids)
        if full_load:
            context = {k: persons[k] for k in needed if k in persons}
        else:
            context = {k: _person(r) for k, r in self._load(P, needed).items()}
        missing = needed - set(context)
        if missing:  # cannot happen through the API (persons are never hard-deleted); be safe
            log.error(
                "club %s: %d participant(s) refer to unknown persons; they are left out", self.club_id, len(missing)
            )
            for a in sel.activities:
                parts = [pt for pt in a.data.get("participants", []) if pt["personId"] not in missing]
                sel.skipped_participants += len(a.data.get("participants", [])) - len(parts)
                a.data = {**a.data, "participants": parts}
            sel.activities = [a for a in sel.activities if a.data.get("participants")]
        sel.context_persons = sorted(context.values(), key=lambda p: p.external_id)
        return sel

    # ---- commit -------------------------------------------------------------------------------
    def commit(self, sel: Selection) -> None:
        """Record what was uploaded (call only after every file of the run is on the server)."""
        from shared.tables import Conflict

        now = _now()
        ops: list[tuple] = []
        for p in sel.all_persons():
            ops.append(
                (
                    "upsert",
                    {
                        "PartitionKey": self.club_id,
                        "RowKey": P + p.external_id,
                        "exported_hash": p.marker,
                        "exported_at": now,
                    },
                )
            )
        for a in sel.activities + sel.deletes:
            ops.append(
                (
                    "upsert",
                    {
                        "PartitionKey": self.club_id,
                        "RowKey": A + a.activity_id,
                        "exported_hash": a.marker,
                        "exported_at": now,
                    },
                )
            )
        if ops:
            self.t.submit(ops)
        deletes = [("delete", {"PartitionKey": self.club_id, "RowKey": rk}, {"etag": etag}) for rk, etag in sel.markers]
        try:
            if deletes:
                self.t.submit(deletes)
        except Conflict:
            # some marker was rewritten during the run: clear the others one by one, keep that one
            kept = 0
            for _, entity, opts in deletes:
                try:
                    self.t.delete(self.club_id, entity["RowKey"], etag=opts["etag"])
                except Conflict:
                    kept += 1
            log.info("club %s: %d record(s) changed during the export; they go in the next run", self.club_id, kept)
