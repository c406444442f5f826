"""All reads and writes of one club's IdrottOnline records (``IdrottRecords``, one partition per
club; the row layout and the stored record types are :mod:`shared.idrott.rows`).

**Bookkeeping: one write per exported record.** A record is pending while its ``exported_hash``
differs from the export marker of its current content (``delta.is_pending``); dirty markers
(``D|…`` rows) only say where a run must look.

- **Intake** writes a record (MERGE, so ``exported_hash`` survives); persons go through the
  personnummer index (:mod:`shared.idrott.pnrindex`). Once the club's first full load has started
  (:func:`shared.idrott.state.markers_on`), its dirty marker goes in the same transaction.
  Before that no marker is written: the full load reads the whole club anyway. A call that found
  markers off reads the state again after its writes and, if a full load started meanwhile,
  writes the markers then; so every write a run's selection may have missed has a marker.
- **The selection** (:mod:`shared.idrott.selection`) reads the whole club on a full load or when
  markers are not complete (:func:`shared.idrott.state.markers_complete`), otherwise only the
  dirty markers and the records they name.
- **Commit** (only after every file of a run is uploaded) writes, per record the files held whose
  ``exported_hash`` changes, one MERGE of ``exported_hash`` := the marker that was sent
  (If-Match ``*``: a row removed meanwhile is not brought back), and in the same transaction
  deletes its dirty marker, if it had one, *with the ETag the marker had when selected*. A record
  changed by intake during the run keeps its rewritten marker and, its content differing from
  what was sent, stays pending: it goes in the next run. A full load of a club without markers
  therefore costs one batched write per record; a delta run two (record and marker) in one
  transaction. A record that cannot be sent keeps (or gets) its marker and is not touched.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from shared.idrott import pnrindex, selection
from shared.idrott.clock import SWEDISH_TIMEZONE, Clock, utc_now
from shared.idrott.delta import content_hash, current_marker, export_marker
from shared.idrott.models import Activity, Person, is_safe_id
from shared.idrott.pnrindex import PersonRefusal
from shared.idrott.rows import (
    DATA,
    MAX_OPS,
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
from shared.idrott.state import STATE_ROW, markers_complete, markers_on
from shared.lifecycle import on_reset
from shared.tables_contract import Op

if TYPE_CHECKING:
    from shared.idrott.selection import ClubSelection
    from shared.tables_contract import Row, StorageTable

log = logging.getLogger(__name__)

#: With more dirty markers than this, scan the kind's key range instead of point reads.
POINT_READ_LIMIT = 200
#: Rows per request when a run scans a club's records. A scan holds about three pages at a time
#: (each decoded page is several times its JSON): at the service's 1 000 a 10 000-person club's scan
#: peaked ~9.5 MiB above a 1 000-person club's ~3.8, at 250 both stay near 2 MiB (bench_bigclub).
SCAN_PAGE = 100
#: (state table, club) known to have markers on: monotonic, so a process may remember it.
_MARKERS_ON: set[tuple[str, str]] = set()
on_reset(_MARKERS_ON.clear)


class CommitReport(NamedTuple):
    """What a commit wrote: record rows, markers deleted, markers written, transactions, records
    whose marker changed during the run (they stay pending)."""

    records: int = 0
    markers_deleted: int = 0
    markers_written: int = 0
    transactions: int = 0
    changed_during_run: int = 0


class ClubRecords:
    """All reads and writes of one club's IdrottOnline records."""

    def __init__(
        self,
        club_id: str,
        table: StorageTable | None = None,
        *,
        now: Clock = utc_now,
        state: StorageTable | None = None,
    ) -> None:
        """``table``: ``IdrottRecords`` of the process-wide store unless given; a table given must be
        opened with ``chunked=True`` (a record longer than one property is stored in pieces).
        ``state``: the ``IdrottExportState`` table that says whether intake writes dirty markers
        (:mod:`shared.idrott.state`); the process-wide one when ``table`` is not given. Without
        one, intake always writes markers and only a full load reads the whole club."""
        self.club_id = club_id
        if table is None:
            from shared.idrott.state import state_table
            from shared.tables import get_table_store

            table = get_table_store().table(TABLE, chunked=True)
            state = state if state is not None else state_table()
        self.t = table
        self.state = state
        self.now = now

    # ---- markers on / complete (shared.idrott.state) --------------------------------------------
    def _state_row(self) -> dict | None:
        assert self.state is not None
        return self.state.get(self.club_id, STATE_ROW, select=["full_load_done", "markers_since", "scan_needed"])

    def markers_on(self) -> bool:
        """Whether intake writes dirty markers now (always without a state table)."""
        if self.state is None:
            return True
        key = (self.state.name, self.club_id)
        if key in _MARKERS_ON:
            return True
        on = markers_on(self._state_row())
        if on:
            _MARKERS_ON.add(key)
        return on

    def markers_complete(self) -> bool:
        """Whether every pending record has a dirty marker (a run may read only those)."""
        return self.state is None or markers_complete(self._state_row())

    # ---- intake ------------------------------------------------------------------------------
    def _marker(self, kind: str, key: str, h: str | None = None) -> Op:
        marker = {"PartitionKey": self.club_id, "RowKey": f"{D}{kind}{key}", "hash": h, "marked_at": self.now()}
        return Op("upsert", marker, {"replace": True})

    def marked_write(self, kind: str, key: str, record: dict, h: str) -> list[Op]:
        """The operations writing ``record`` and its dirty marker (``kind`` ``P|`` or ``A|``), to
        go into one transaction."""
        return [self._marker(kind, key, h), Op("upsert", record)]

    def _write(self, kind: str, key: str, record: dict, h: str, *, marked: bool) -> list[Op]:
        return self.marked_write(kind, key, record, h) if marked else [Op("upsert", record)]

    def record_write(self, kind: str, key: str, data: dict, *, marked: bool = True, **fields: Any) -> list[Op]:
        """The operations writing a record: its intake JSON (``data``), its content hash,
        ``fields``, who wrote it (``actorKind`` and a token's ``actorSubject``/``actorClientId``:
        :func:`shared.auth.attribution`) and, when ``marked``, its dirty marker (:meth:`marked_write`)."""
        from shared.auth import attribution

        h = content_hash(data)
        rec = {
            "PartitionKey": self.club_id,
            "RowKey": kind + key,
            DATA: data,
            "hash": h,
            **fields,
            **attribution(),
            "updated_at": self.now(),
        }
        return self._write(kind, key, rec, h, marked=marked)

    def catch_up_markers(self, kind: str, keys: Iterable[str]) -> None:
        """After records were written without markers (markers were off when the call began): if
        a full load started meanwhile, its selection may have missed them, so mark them now."""
        keys = list(keys)
        if keys and self.markers_on():
            self.t.submit([self._marker(kind, k) for k in keys])

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
        marked = self.markers_on()
        self.t.submit(self._write(P, external_id, rec, export_marker(h, True), marked=marked))
        if not marked:
            self.catch_up_markers(P, [external_id])
        return "left"

    def upsert_activities(self, activities: Sequence[Activity]) -> None:
        marked = self.markers_on()
        ops: list[Op] = []
        for act in activities:
            data = act.model_dump(mode="json", by_alias=True, exclude_none=True)
            start = act.start_time.astimezone(UTC)
            ops += self.record_write(A, act.activity_id, data, marked=marked, deleted=False, start_time=start)
        if ops:
            self.t.submit(ops)
            if not marked:
                self.catch_up_markers(A, [a.activity_id for a in activities])

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
        marked = self.markers_on()
        self.t.submit(self._write(A, activity_id, rec, export_marker(row.get("hash", ""), True), marked=marked))
        if not marked:
            self.catch_up_markers(A, [activity_id])
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
        rows = self.t.query(flt, parameters=params, partition_key=self.club_id, page_size=SCAN_PAGE)
        return (person_from_row(r) for r in rows)

    def all_activities(self, start: datetime | None = None, end: datetime | None = None) -> Iterable[StoredActivity]:
        flt, params = key_range(A)
        if start is not None:
            flt += " and start_time ge @start"
            params["start"] = start
        if end is not None:
            flt += " and start_time lt @end"
            params["end"] = end
        rows = self.t.query(flt, parameters=params, partition_key=self.club_id, page_size=SCAN_PAGE)
        return (activity_from_row(r) for r in rows)

    def iter_markers(self) -> Iterator[Row]:
        """The club's dirty marker rows (``RowKey``, ``hash``, ``_etag``), streamed."""
        flt, params = key_range(D)
        return self.t.query(flt, parameters=params, partition_key=self.club_id, select=["RowKey", "hash"])

    def dirty_markers(self) -> list[Row]:
        """The club's dirty marker rows (``RowKey``, ``hash``, ``_etag``): the records written since
        the last run that committed them (once the club's markers are on)."""
        return list(self.iter_markers())

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
            for r in self.t.query(flt, parameters=params, partition_key=self.club_id, page_size=SCAN_PAGE)
            if r["RowKey"][len(prefix) :] in ids
        }

    def counts(self, *, today: date | None = None) -> dict[str, int]:
        """Persons, active persons, activities and ``pendingChanges``: the records named by a dirty
        marker together with those a run would send as changes without one (when markers are not
        complete), so a marker that names nothing to send shows."""
        out = {"persons": 0, "activePersons": 0, "activities": 0, "pendingChanges": 0}
        marked: set[str] = set()
        for r in self.t.query(partition_key=self.club_id, select=["RowKey", "active", "deleted", "moved_to"]):
            rk = r["RowKey"]
            if rk.startswith(P) and not r.get("moved_to"):
                out["persons"] += 1
                out["activePersons"] += r.get("active", True) is not False
            elif rk.startswith(A):
                out["activities"] += not r.get("deleted")
            elif rk.startswith(D):
                marked.add(rk[len(D) :])
        if not self.markers_complete():
            sel = self.select(full_load=False, today=today or utc_now().date())
            marked |= {P + p.external_id for p in sel.persons}
            marked |= {A + a.activity_id for a in itertools.chain(sel.activities, sel.deletes)}
            sel.close()
        out["pendingChanges"] = len(marked)
        return out

    # ---- selection ----------------------------------------------------------------------------
    def select(
        self,
        *,
        full_load: bool,
        today: date,
        timezone_name: str = SWEDISH_TIMEZONE,
        scan: bool | None = None,
        markers: list[Row] | None = None,
    ) -> ClubSelection:
        """The records the next run sends (read-only; the preview uses it too):
        :func:`shared.idrott.selection.select`. ``scan``: whether to read the whole club, when the
        caller knows it from the state row it read (default: read the row again); ``markers``: the
        dirty markers, when the caller has read them (default: read them)."""
        return selection.select(
            self, full_load=full_load, today=today, timezone_name=timezone_name, scan=scan, markers=markers
        )

    # ---- commit -------------------------------------------------------------------------------
    def commit(self, sel: ClubSelection) -> CommitReport:
        """Record what was uploaded (call only after every file of the run is on the server):
        module docstring. Returns what was written."""
        now = self.now()
        report = _Counts()
        chunk: list[list[Op]] = []
        size = 0

        def flush() -> None:
            nonlocal chunk, size
            if chunk:
                self._submit_groups(chunk, report)
            chunk, size = [], 0

        def add(group: list[Op]) -> None:
            nonlocal size
            if size + len(group) > MAX_OPS:
                flush()
            chunk.append(group)
            size += len(group)

        for kind, rec, etag in sel.commit_rows():
            group: list[Op] = []
            marker = current_marker(rec)
            if rec.exported_hash != marker:
                row = {"PartitionKey": self.club_id, "RowKey": kind + rec.record_id}
                group.append(Op("update", {**row, "exported_hash": marker, "exported_at": now}, {"etag": "*"}))
            if etag is not None:
                group.append(self._marker_delete(kind, rec.record_id, etag))
            if group:
                add(group)
        for kind, rid, etag in sel.stale_markers():
            add([self._marker_delete(kind, rid, etag)])
        for kind, rid in sel.skipped_unmarked():  # a record that cannot be sent keeps a marker
            add([self._marker(kind, rid)])
        flush()
        if report.changed:
            log.info(
                "club %s: %d record(s) changed during the export; they go in the next run", self.club_id, report.changed
            )
        return CommitReport(report.records, report.deleted, report.written, report.transactions, report.changed)

    def _marker_delete(self, kind: str, rid: str, etag: str) -> Op:
        return Op("delete", {"PartitionKey": self.club_id, "RowKey": f"{D}{kind}{rid}"}, {"etag": etag})

    def _submit_groups(self, groups: list[list[Op]], report: _Counts) -> None:
        """One transaction; when it meets a change (a marker rewritten, a row removed), each
        record's group alone, and a record whose marker changed keeps it."""
        from shared.tables import Conflict

        try:
            self.t.submit([op for g in groups for op in g])
            report.transactions += 1
            for g in groups:
                report.count(g)
            return
        except Conflict:
            pass
        for g in groups:
            try:
                self.t.submit(g)
                report.transactions += 1
                report.count(g)
                continue
            except Conflict:
                report.transactions += 1
            # the marker was rewritten (the record changed during the run) or the row is gone:
            # what was sent is still recorded; the marker stays, so the newer version goes next
            update = [op for op in g if op.kind == "update"]
            if update:
                report.changed += 1
                try:
                    self.t.submit(update)
                    report.count(update)
                except Conflict:
                    pass  # removed meanwhile (DELETE of a never-exportable id)
                report.transactions += 1


class _Counts:
    __slots__ = ("changed", "deleted", "records", "transactions", "written")

    def __init__(self) -> None:
        self.records = self.deleted = self.written = self.transactions = self.changed = 0

    def count(self, ops: list[Op]) -> None:
        for op in ops:
            if op.kind == "update":
                self.records += 1
            elif op.kind == "delete":
                self.deleted += 1
            else:
                self.written += 1
