"""Pure change selection for an export run, content hashes and LOK periods.

Each stored record (person or activity) carries its current ``content_hash``, the
``exported_hash`` last confirmed sent (``None`` = never sent) and a ``tombstone`` flag (person:
the member left; activity: deleted). A run sends:

- **first run** (the club has no successful run yet): every person that is not a never-sent
  tombstone, with all sport memberships (tombstoned persons that were never sent are skipped:
  nothing to retract), and every non-deleted activity that starts in the current LOK period
  (:func:`lok_period` of ``today``);
- **later runs**: persons and activities whose :func:`export_marker` differs from
  ``exported_hash`` (new, changed, left / deleted), in any period (a correction to last period
  can still matter before the application deadline); deleted activities only when they were
  sent before (otherwise there is nothing to delete);
- in both cases, the ids of the persons that the selected activities refer to and that are not
  already selected (``referenced_person_ids``): the XML writer includes them so every file is
  self-contained.

After **every** file of the run has been uploaded, the adapter stores ``marker`` of each selected
record as its ``exported_hash``; a failed run stores nothing, so the next run selects the same
records again (same ids: harmless).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

__all__ = [
    "Selection",
    "StoredRecord",
    "content_hash",
    "export_marker",
    "lok_period",
    "select_changes",
]

_TOMBSTONE_PREFIX = "deleted:"


def lok_period(d: date) -> tuple[date, date]:
    """The LOK-stöd half-year containing ``d``: 1 Jan–30 Jun or 1 Jul–31 Dec (inclusive)."""
    if d.month <= 6:
        return date(d.year, 1, 1), date(d.year, 6, 30)
    return date(d.year, 7, 1), date(d.year, 12, 31)


def _canonical(v: Any) -> Any:
    if hasattr(v, "model_dump"):
        v = v.model_dump(mode="python", by_alias=True)
    if isinstance(v, dict):
        out = {str(k): _canonical(x) for k, x in v.items() if x is not None}
        # order-insensitive lists whose order carries no meaning
        for key, sort_key in (("participants", "personId"), ("sports", "sportId")):
            if isinstance(out.get(key), list):
                out[key] = sorted(out[key], key=lambda e: str(e.get(sort_key)) if isinstance(e, dict) else str(e))
        return out
    if isinstance(v, (list, tuple)):
        return [_canonical(x) for x in v]
    if isinstance(v, datetime):
        if v.tzinfo is None:
            raise ValueError("content_hash: naive datetime")
        return v.astimezone(UTC).isoformat()
    if isinstance(v, date):
        return v.isoformat()
    return v


def content_hash(record: Any) -> str:
    """SHA-256 hex of canonical JSON: pydantic models by alias, ``None`` fields dropped, keys
    sorted, datetimes in UTC, participants/sports order ignored. Stable across processes."""
    doc = json.dumps(_canonical(record), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()


def export_marker(content_hash: str, tombstone: bool) -> str:
    """What ``exported_hash`` must hold once the record's current state has been sent."""
    return f"{_TOMBSTONE_PREFIX}{content_hash}" if tombstone else content_hash


@dataclass(frozen=True, slots=True)
class StoredRecord:
    key: str  # Person.externalId or Activity.activityId
    content_hash: str
    exported_hash: str | None = None
    tombstone: bool = False
    start_time: datetime | None = None  # activities: for the LOK period of a first run
    participant_ids: tuple[str, ...] = ()  # activities
    payload: Any = None  # whatever the adapter wants back (the stored row, a model...)

    @property
    def marker(self) -> str:
        return export_marker(self.content_hash, self.tombstone)

    @property
    def pending(self) -> bool:
        return self.exported_hash != self.marker


@dataclass(slots=True)
class Selection:
    persons: list[StoredRecord] = field(default_factory=list)  # send as Update (tombstone → IsActive=false)
    activities: list[StoredRecord] = field(default_factory=list)  # send as Insert
    deleted_activities: list[StoredRecord] = field(default_factory=list)  # send as Delete
    referenced_person_ids: set[str] = field(default_factory=set)  # participants to include, not selected
    first_run: bool = False

    @property
    def empty(self) -> bool:
        return not (self.persons or self.activities or self.deleted_activities)

    def markers(self) -> list[tuple[Literal["person", "activity"], str, str]]:
        """``(kind, key, marker)`` to store as exported_hash after the whole run is uploaded."""
        out: list[tuple[Literal["person", "activity"], str, str]] = [("person", r.key, r.marker) for r in self.persons]
        out += [("activity", r.key, r.marker) for r in self.activities]
        out += [("activity", r.key, r.marker) for r in self.deleted_activities]
        return out


def _local_date(dt: datetime, tz: str) -> date:
    from zoneinfo import ZoneInfo

    if dt.tzinfo is None:
        raise ValueError("activity start_time must be timezone-aware")
    return dt.astimezone(ZoneInfo(tz)).date()


def select_changes(
    persons: Iterable[StoredRecord],
    activities: Iterable[StoredRecord],
    *,
    first_run: bool,
    today: date,
    timezone_name: str = "Europe/Stockholm",
) -> Selection:
    """Decide what one run sends (see the module docstring)."""
    sel = Selection(first_run=first_run)
    for p in persons:
        if p.tombstone and p.exported_hash is None:
            continue  # never sent: nothing to mark inactive
        if first_run or p.pending:
            sel.persons.append(p)
    period = lok_period(today)
    for a in activities:
        if a.tombstone:
            if a.exported_hash is None:
                continue  # never sent: nothing to delete
            if a.pending:
                sel.deleted_activities.append(a)
            continue
        if first_run:
            if a.start_time is None or not period[0] <= _local_date(a.start_time, timezone_name) <= period[1]:
                continue
            sel.activities.append(a)
        elif a.pending:
            sel.activities.append(a)
    selected = {p.key for p in sel.persons}
    for a in sel.activities:
        for pid in a.participant_ids:
            if pid not in selected:
                sel.referenced_person_ids.add(pid)
    return sel
