"""Pure change selection for an export run, content hashes and LOK periods.

Each stored record (person or activity) carries its current ``content_hash``, the
``exported_hash`` last confirmed sent (``None`` = never sent) and a ``tombstone`` flag (person:
the member left; activity: deleted): the :class:`Tracked` protocol, which the adapter's stored
records (``shared.idrott.rows.StoredPerson`` / ``StoredActivity``) satisfy as they are. A run
sends:

- **full load** (the club has no successful run yet): every person that is not a never-sent
  tombstone, with all sport memberships (tombstoned persons that were never sent are skipped:
  nothing to retract), and every non-deleted activity that starts in the current LOK period
  (:func:`lok_period` of ``today``);
- **later runs**: persons and activities whose :func:`export_marker` differs from
  ``exported_hash`` (new, changed, left / deleted), in any period (a correction to last period
  can still matter before the application deadline); deleted activities (``deletes``) only when
  they were sent before (otherwise there is nothing to delete);
- in both cases the persons that the selected activities refer to and that are not already
  selected (:meth:`Selection.referenced_person_ids`): the adapter reads them into
  ``referenced_persons``, and the XML writer includes them so every file is self-contained.

After **every** file of the run has been uploaded, the adapter stores each selected record's
export marker as its ``exported_hash``; a failed run stores nothing, so the next run selects the
same records again (same ids: harmless). :func:`person_selected` and :func:`activity_selected`
decide one record at a time, so an adapter can stream a club through them;
:func:`select_changes` applies them to whole collections.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from shared.idrott.clock import SWEDISH_TIMEZONE, local_date

__all__ = [
    "Selection",
    "Tracked",
    "TrackedActivity",
    "activity_selected",
    "content_hash",
    "current_marker",
    "export_marker",
    "in_period",
    "is_pending",
    "lok_period",
    "person_selected",
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


class Tracked(Protocol):
    """A stored record as the selection sees it: its id and its export state."""

    @property
    def record_id(self) -> str: ...  # Person.externalId or Activity.activityId
    @property
    def content_hash(self) -> str: ...
    @property
    def exported_hash(self) -> str | None: ...
    @property
    def tombstone(self) -> bool: ...  # person: the member left; activity: deleted


class TrackedActivity(Tracked, Protocol):
    """An activity adds what a full load and the referenced persons need."""

    @property
    def start_time(self) -> datetime | None: ...  # for the LOK period of a full load
    @property
    def participant_ids(self) -> tuple[str, ...]: ...


def current_marker(record: Tracked) -> str:
    """The export marker of the record's current state: its ``exported_hash`` once it is sent."""
    return export_marker(record.content_hash, record.tombstone)


def is_pending(record: Tracked) -> bool:
    """Whether the record's current state has not been sent yet."""
    return record.exported_hash != current_marker(record)


@dataclass(slots=True)
class Selection[P: Tracked, A: TrackedActivity]:
    """What one run sends. The core fills ``persons``, ``activities`` and ``deletes``; the adapter
    adds what only it can read: ``referenced_persons`` (the :meth:`referenced_person_ids`) and the
    ``dirty_markers`` to clear once every file is on the server."""

    full_load: bool
    persons: list[P] = field(default_factory=list)  # send as Update (tombstone → IsActive=false)
    activities: list[A] = field(default_factory=list)  # send as Insert
    deletes: list[A] = field(default_factory=list)  # send as Delete
    referenced_persons: list[P] = field(default_factory=list)  # unchanged, named by the activities
    dirty_markers: list[tuple[str, str]] = field(default_factory=list)  # adapter: (RowKey, ETag)

    @property
    def empty(self) -> bool:
        return not (self.persons or self.activities or self.deletes)

    def all_persons(self) -> list[P]:
        """Every person the run's files hold: the selected and the referenced ones."""
        return self.persons + self.referenced_persons

    def referenced_person_ids(self) -> set[str]:
        """Participants of the selected activities that are not selected persons themselves."""
        selected = {p.record_id for p in self.persons}
        return {pid for a in self.activities for pid in a.participant_ids if pid not in selected}


def person_selected(p: Tracked, *, full_load: bool) -> bool:
    """Whether a run sends this person (module docstring): a never-sent tombstone never, else all on
    a full load, the pending ones later."""
    if p.tombstone and p.exported_hash is None:
        return False  # never sent: nothing to mark inactive
    return full_load or is_pending(p)


def activity_selected(
    a: TrackedActivity, *, full_load: bool, period: tuple[date, date], timezone_name: str = SWEDISH_TIMEZONE
) -> str | None:
    """How a run sends this activity: ``"insert"``, ``"delete"`` or ``None`` (not at all);
    ``period`` is the current LOK period (:func:`lok_period`), which limits a full load."""
    if a.tombstone:
        # never sent: nothing to delete
        return "delete" if a.exported_hash is not None and is_pending(a) else None
    if full_load:
        return "insert" if in_period(a, period, timezone_name) else None
    return "insert" if is_pending(a) else None


def in_period(a: TrackedActivity, period: tuple[date, date], timezone_name: str = SWEDISH_TIMEZONE) -> bool:
    """Whether the activity starts within ``period`` (local dates, inclusive)."""
    first, last = period
    return a.start_time is not None and first <= local_date(a.start_time, timezone_name) <= last


def select_changes[P: Tracked, A: TrackedActivity](
    persons: Iterable[P],
    activities: Iterable[A],
    *,
    full_load: bool,
    today: date,
    timezone_name: str = SWEDISH_TIMEZONE,
) -> Selection[P, A]:
    """Decide what one run sends (see the module docstring); input order is kept."""
    sel: Selection[P, A] = Selection(full_load=full_load)
    sel.persons = [p for p in persons if person_selected(p, full_load=full_load)]
    period = lok_period(today)
    for a in activities:
        how = activity_selected(a, full_load=full_load, period=period, timezone_name=timezone_name)
        if how == "delete":
            sel.deletes.append(a)
        elif how == "insert":
            sel.activities.append(a)
    return sel
