"""All reads and writes of one club's IdrottOnline records (``IdrottRecords``, one partition per
club; the row layout and the stored record types are :mod:`shared.idrott.rows`).

Intake writes each record with its dirty marker in one transaction (MERGE, so ``exported_hash``
survives); persons go through the personnummer index (:mod:`shared.idrott.pnrindex`). The next
run's selection reads the dirty markers and the records they name (:mod:`shared.idrott.selection`;
the decision is the core's ``delta.select_changes``). Commit (only after every file of a run is
uploaded) sets ``exported_hash`` to the export marker that was sent and deletes each dirty marker
*with the ETag it had when selected*: a marker rewritten meanwhile (the record changed during the
run) survives, so the newer version goes in the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from shared.idrott import pnrindex, selection
from shared.idrott.clock import SWEDISH_TIMEZONE, Clock, utc_now
from shared.idrott.delta import content_hash, current_marker, export_marker
from shared.idrott.models import Activity, Person, is_safe_id
from shared.idrott.pnrindex import PersonRefusal
from shared.idrott.rows import (
    DATA,
    TABLE,
    A,
    D,
    P,
    StoredActivity,
    StoredPerson,
    activity_from_row,
    key_range,
    lookup_id_ok,
    person_from_row,
)
from shared.tables_contract import Op

if TYPE_CHECKING:
    from shared.idrott.selection import ClubSelection
    from shared.tables_contract import Row, StorageTable

log = logging.getLogger(__name__)

#: With more dirty markers than this, scan the kind's key range instead of point reads.
POINT_READ_LIMIT = 200


class ClubRecords:
    """All reads and writes of one club's IdrottOnline records."""

    def __init__(self, club_id: str, table: StorageTable | None = None, *, now: Clock = utc_now) -> None:
        """``table``: ``IdrottRecords`` of the process-wide store unless given; a table given must be
        opened with ``chunked=True`` (a record longer than one property is stored in pieces)."""
        self.club_id = club_id
        if table is None:
            from shared.tables import get_table_store

            table = get_table_store().table(TABLE, chunked=True)
        self.t = table
        self.now = now

    # ---- intake ------------------------------------------------------------------------------
    def marked_write(self, kind: str, key: str, record: dict, h: str) -> list[Op]:
        """The operations writing ``record`` and its dirty marker (``kind`` ``P|`` or ``A|``), to
        go into one transaction."""
        marker = {"PartitionKey": self.club_id, "RowKey": f"{D}{kind}{key}", "hash": h, "marked_at": self.now()}
        return [Op("upsert", marker, {"replace": True}), Op("upsert", record)]

    def record_write(self, kind: str, key: str, data: dict, **fields: Any) -> list[Op]:
        """The operations writing a record: its intake JSON (``data``), its content hash,
        ``fields`` and its dirty marker (:meth:`marked_write`)."""
        h = content_hash(data)
        rec = {
            "PartitionKey": self.club_id,
            "RowKey": kind + key,
            DATA: data,
            "hash": h,
            **fields,
            "updated_at": self.now(),
        }
        return self.marked_write(kind, key, rec, h)

    def upsert_persons(self, persons: Sequence[Person]) -> list[PersonRefusal]:
        """Store persons; return the ones refused (the others are stored).

        A personnummer belongs to one external id per club: a person whose personnummer another
        external id holds is refused (409, naming it) unless it says ``replacesExternalId`` of
        that id: then, in one transaction, the person is stored under the new id, the index
        moves to it and the old row becomes an alias (``moved_to``). Within the sequence, the
        first record of a personnummer wins (:mod:`shared.idrott.pnrindex`).
        """
        return pnrindex.PersonIntake(self).upsert(persons)

    def _remove(self, prefix: str, key: str) -> None:
        """Hard delete of a row that can never be exported (and its marker)."""
        self.t.delete(self.club_id, prefix + key)
        self.t.delete(self.club_id, f"{D}{prefix}{key}")

    def mark_person_left(self, external_id: str) -> str | None:
        """The member leaves: ``"left"`` (tombstone, exported with every sport inactive), or
        ``"removed"`` for a row that can never be exported (an alias left by a re-key, or an id
        stored before ids were matched as a whole, e.g. with a trailing newline: it failed every
        export's XSD, so IdrottOnline never received it). ``None`` if unknown."""
        if not lookup_id_ok(external_id):
            return None
        row = self.t.get(self.club_id, P + external_id)
        if row is None:
            return None
        if row.get("moved_to") or not is_safe_id(external_id):
            self._remove(P, external_id)
            return "removed"
        if row.get("active", True) is False:
            return "left"
        h = row.get("hash", "")
        rec = {
            "PartitionKey": self.club_id,
            "RowKey": P + external_id,
            "active": False,
            "left_at": self.now(),
            "updated_at": self.now(),
        }
        self.t.submit(self.marked_write(P, external_id, rec, export_marker(h, True)))
        return "left"

    def upsert_activities(self, activities: Sequence[Activity]) -> None:
        ops: list[Op] = []
        for act in activities:
            data = act.model_dump(mode="json", by_alias=True, exclude_none=True)
            ops += self.record_write(A, act.activity_id, data, deleted=False, start_time=act.start_time.astimezone(UTC))
        if ops:
            self.t.submit(ops)

    def delete_activity(self, activity_id: str) -> str | None:
        """``"deleted"`` (tombstone → ``OptionType=Delete``), ``"removed"`` for an id stored
        before ids were matched as a whole (never exportable, so never sent), ``None`` if unknown."""
        if not lookup_id_ok(activity_id):
            return None
        row = self.t.get(self.club_id, A + activity_id)
        if row is None:
            return None
        if not is_safe_id(activity_id):
            self._remove(A, activity_id)
            return "removed"
        if row.get("deleted"):
            return "deleted"
        rec = {"PartitionKey": self.club_id, "RowKey": A + activity_id, "deleted": True, "updated_at": self.now()}
        self.t.submit(self.marked_write(A, activity_id, rec, export_marker(row.get("hash", ""), True)))
        return "deleted"

    def known_person_ids(self, ids: Iterable[str]) -> set[str]:
        wanted = set(ids)
        if not wanted:
            return set()
        if len(wanted) <= 50:
            return {i for i in wanted if self.t.get(self.club_id, P + i, select=["RowKey"]) is not None}
        flt, params = key_range(P)
        return {
            r["RowKey"][len(P) :]
            for r in self.t.query(flt, parameters=params, partition_key=self.club_id, select=["RowKey"])
        } & wanted

    # ---- reads --------------------------------------------------------------------------------
    def get_person(self, external_id: str) -> StoredPerson | None:
        row = self.t.get(self.club_id, P + external_id)
        return None if row is None else person_from_row(row)

    def get_activity(self, activity_id: str) -> StoredActivity | None:
        row = self.t.get(self.club_id, A + activity_id)
        return None if row is None else activity_from_row(row)

    def all_persons(self) -> Iterable[StoredPerson]:
        flt, params = key_range(P)
        return (person_from_row(r) for r in self.t.query(flt, parameters=params, partition_key=self.club_id))

    def all_activities(self, start: datetime | None = None, end: datetime | None = None) -> Iterable[StoredActivity]:
        flt, params = key_range(A)
        if start is not None:
            flt += " and start_time ge @start"
            params["start"] = start
        if end is not None:
            flt += " and start_time lt @end"
            params["end"] = end
        return (activity_from_row(r) for r in self.t.query(flt, parameters=params, partition_key=self.club_id))

    def dirty_markers(self) -> list[Row]:
        """The club's dirty marker rows (``RowKey``, ``hash``, ``_etag``): the records written since
        the last run that committed them."""
        flt, params = key_range(D)
        return list(self.t.query(flt, parameters=params, partition_key=self.club_id, select=["RowKey", "hash"]))

    def load_rows(self, prefix: str, ids: set[str]) -> dict[str, Row]:
        """The rows of kind ``prefix`` with these ids (point reads, or one range scan for many)."""
        if not ids:
            return {}
        if len(ids) <= POINT_READ_LIMIT:
            rows = (self.t.get(self.club_id, prefix + i) for i in ids)
            return {r["RowKey"][len(prefix) :]: r for r in rows if r is not None}
        flt, params = key_range(prefix)
        return {
            r["RowKey"][len(prefix) :]: r
            for r in self.t.query(flt, parameters=params, partition_key=self.club_id)
            if r["RowKey"][len(prefix) :] in ids
        }

    def counts(self) -> dict[str, int]:
        out = {"persons": 0, "activePersons": 0, "activities": 0, "pendingChanges": 0}
        for r in self.t.query(partition_key=self.club_id, select=["RowKey", "active", "deleted", "moved_to"]):
            rk = r["RowKey"]
            if rk.startswith(P) and not r.get("moved_to"):
                out["persons"] += 1
                out["activePersons"] += r.get("active", True) is not False
            elif rk.startswith(A):
                out["activities"] += not r.get("deleted")
            elif rk.startswith(D):
                out["pendingChanges"] += 1
        return out

    # ---- selection ----------------------------------------------------------------------------
    def select(self, *, full_load: bool, today: date, timezone_name: str = SWEDISH_TIMEZONE) -> ClubSelection:
        """The records the next run sends (read-only; the preview uses it too):
        :func:`shared.idrott.selection.select`."""
        return selection.select(self, full_load=full_load, today=today, timezone_name=timezone_name)

    # ---- commit -------------------------------------------------------------------------------
    def commit(self, sel: ClubSelection) -> None:
        """Record what was uploaded (call only after every file of the run is on the server)."""
        from shared.tables import Conflict

        now = self.now()
        sent: list[tuple[str, StoredPerson | StoredActivity]] = [(P, p) for p in sel.all_persons()]
        sent += [(A, a) for a in sel.activities + sel.deletes]
        ops = [
            Op(
                "upsert",
                {
                    "PartitionKey": self.club_id,
                    "RowKey": kind + r.record_id,
                    "exported_hash": current_marker(r),
                    "exported_at": now,
                },
            )
            for kind, r in sent
        ]
        if ops:
            self.t.submit(ops)
        deletes = [
            Op("delete", {"PartitionKey": self.club_id, "RowKey": rk}, {"etag": etag}) for rk, etag in sel.dirty_markers
        ]
        try:
            if deletes:
                self.t.submit(deletes)
        except Conflict:
            # some marker was rewritten during the run: clear the others one by one, keep that one
            kept = 0
            for op in deletes:
                try:
                    self.t.delete(self.club_id, op.entity["RowKey"], etag=op.options.get("etag"))
                except Conflict:
                    kept += 1
            log.info("club %s: %d record(s) changed during the export; they go in the next run", self.club_id, kept)
