"""The adapter half of a run's selection: what to read, and the persons the files need, streamed.

The decision is the core's, one record at a time (:func:`shared.idrott.delta.person_selected`,
:func:`~shared.idrott.delta.activity_selected`); :func:`select` decides what to read:

- **full load** (no successful run yet): the whole club (activities narrowed by a ``start_time``
  range around the LOK period), full-load rules;
- **scan** (a full load reached the server, but some records may be pending without a dirty
  marker: :func:`shared.idrott.state.markers_complete` is false): the same reads, delta rules; a
  record never sent that a full load would not send either (an activity outside the LOK period)
  is not sent unless a marker names it;
- **delta** (markers complete): only the records named by dirty markers.

Then it resolves the persons the selected activities refer to (``referenced_persons``), following
re-keys: an activity stored before a re-key names the old id, and is sent with the person's
current one.

**Streamed, not held.** A :class:`ClubSelection` keeps the records it reads in a private
temporary SQLite database (``sqlite3.connect("")``: on disk, deleted when closed; its page cache
is capped at ``_CACHE_KIB``), not in Python objects, so a run's memory does not grow with the club. Its
``persons``, ``activities``, ``deletes`` and ``referenced_persons`` are lazy sequences read back in
order (persons by id, activities by start time); :meth:`ClubSelection.person` looks a person up
by id for the XML writer. :func:`leave_out` takes records that cannot be sent back out of a
selection, so the commit keeps them pending; :meth:`ClubSelection.commit_rows` and its siblings
are what the commit (:meth:`shared.idrott.store.ClubRecords.commit`) writes back.
"""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

from shared.idrott.clock import SWEDISH_TIMEZONE
from shared.idrott.delta import activity_selected, in_period, lok_period, person_selected
from shared.idrott.rows import A, D, P, StoredActivity, StoredPerson, activity_from_row, person_from_row

if TYPE_CHECKING:
    from shared.idrott.store import ClubRecords
    from shared.tables_contract import Row

__all__ = ["ClubSelection", "leave_out", "select"]

log = logging.getLogger(__name__)

_MAX_ALIAS_HOPS = 10
#: Rows read from SQLite per fetch while streaming (bounded memory).
_FETCH = 100
#: The spool's page cache in KiB. SQLite's default (2 000 KiB) fills with a big club's records and
#: not with a small one's, so it made a run's memory grow with the club; the spool is read in key
#: order, so a small cache costs little (pages come from the OS's file cache).
_CACHE_KIB = 256
# Membership tests are written ``EXISTS (SELECT 1 FROM rec WHERE ... id = need.id)``, not
# ``id IN (SELECT id FROM rec ...)``: SQLite builds the latter's list of every person id of the club
# in memory first, which made a big club's run grow by it.

#: Roles of a record in a selection.
KNOWN, SEND, DELETE, REFERENCED = 0, 1, 2, 3

_SCHEMA = """
CREATE TABLE rec (
    k TEXT NOT NULL, id TEXT NOT NULL, role INTEGER NOT NULL, skipped INTEGER NOT NULL DEFAULT 0,
    sort TEXT NOT NULL DEFAULT '', moved_to TEXT NOT NULL DEFAULT '', doc TEXT NOT NULL,
    PRIMARY KEY (k, id)) WITHOUT ROWID;
CREATE INDEX rec_role ON rec (k, role, sort, id);
CREATE TABLE marker (k TEXT NOT NULL, id TEXT NOT NULL, etag TEXT NOT NULL, PRIMARY KEY (k, id)) WITHOUT ROWID;
CREATE TABLE need (id TEXT PRIMARY KEY) WITHOUT ROWID;
"""

type Stored = StoredPerson | StoredActivity


# ---- records in and out of the spool --------------------------------------------------------------
def _doc(rec: Stored) -> str:
    if isinstance(rec, StoredPerson):
        d: dict[str, Any] = {"d": rec.data, "h": rec.content_hash, "x": rec.exported_hash, "a": rec.active}
    else:
        start = rec.start_time.isoformat() if rec.start_time is not None else None
        d = {"d": rec.data, "h": rec.content_hash, "x": rec.exported_hash, "del": rec.deleted, "s": start}
        d["xd"] = rec.exported_deleted
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"))


def _person(pid: str, moved_to: str, doc: str) -> StoredPerson:
    d = json.loads(doc)
    return StoredPerson(pid, d["d"], d["h"], d["x"], d["a"], {}, moved_to)


def _activity(aid: str, doc: str) -> StoredActivity:
    d = json.loads(doc)
    start = datetime.fromisoformat(d["s"]) if d["s"] else None
    return StoredActivity(aid, d["d"], d["h"], d["x"], d["del"], d["xd"], start, {})


def _load(k: str, rid: str, moved_to: str, doc: str) -> Stored:
    return _person(rid, moved_to, doc) if k == P else _activity(rid, doc)


class _Records[T](Sequence[T]):
    """The records of one role, read back lazily in order (skipped records left out)."""

    def __init__(self, sel: ClubSelection, k: str, role: int, order: str) -> None:
        self._sel, self._k, self._role, self._order = sel, k, role, order

    def _query(self, tail: str = "", args: tuple = ()) -> sqlite3.Cursor:
        sql = f"SELECT id, moved_to, doc FROM rec WHERE k = ? AND role = ? AND skipped = 0 ORDER BY {self._order}"
        return self._sel.db.execute(sql + tail, (self._k, self._role, *args))

    def __iter__(self) -> Iterator[T]:
        cur = self._query()
        while rows := cur.fetchmany(_FETCH):
            for rid, moved_to, doc in rows:
                yield _load(self._k, rid, moved_to, doc)  # type: ignore[misc]

    def __len__(self) -> int:
        sql = "SELECT COUNT(*) FROM rec WHERE k = ? AND role = ? AND skipped = 0"
        return int(self._sel.db.execute(sql, (self._k, self._role)).fetchone()[0])

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...
    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return list(self)[i]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        (row,) = self._query(" LIMIT 1 OFFSET ?", (i % n,)).fetchall()
        return _load(self._k, *row)  # type: ignore[return-value]

    def __add__(self, other: Iterable[T]) -> list[T]:
        return [*self, *other]

    def __repr__(self) -> str:
        return f"<{len(self)} {self._k} records, role {self._role}>"


class ClubSelection:
    """What one run of a club sends (module docstring), spooled to a temporary SQLite database.

    ``scan``: the selection read the whole club (a full load, or markers incomplete), so records
    it sends may have no dirty marker."""

    def __init__(self, full_load: bool, *, scan: bool) -> None:
        self.full_load = full_load
        self.scan = scan
        self.db = sqlite3.connect("")  # a private temporary database on disk, removed on close
        self.db.executescript(
            f"PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-{_CACHE_KIB};" + _SCHEMA
        )
        self.persons: _Records[StoredPerson] = _Records(self, P, SEND, "id")
        self.referenced_persons: _Records[StoredPerson] = _Records(self, P, REFERENCED, "id")
        self.activities: _Records[StoredActivity] = _Records(self, A, SEND, "sort, id")
        self.deletes: _Records[StoredActivity] = _Records(self, A, DELETE, "id")

    def close(self) -> None:
        self.db.close()

    def __del__(self) -> None:
        try:
            self.db.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown
            pass

    @property
    def empty(self) -> bool:
        sql = "SELECT 1 FROM rec WHERE skipped = 0 AND ((k = ? AND role = ?) OR (k = ? AND role IN (?, ?))) LIMIT 1"
        return self.db.execute(sql, (P, SEND, A, SEND, DELETE)).fetchone() is None

    def all_persons(self) -> Iterator[StoredPerson]:
        """Every person the run's files hold: the selected and the referenced ones."""
        return itertools.chain(self.persons, self.referenced_persons)

    def person(self, pid: str) -> StoredPerson | None:
        """A selected or referenced person by id (``None`` if the run holds no such person)."""
        row = self.db.execute(
            "SELECT moved_to, doc FROM rec WHERE k = ? AND id = ? AND role IN (?, ?)", (P, pid, SEND, REFERENCED)
        ).fetchone()
        return None if row is None else _person(pid, *row)

    # ---- filling ------------------------------------------------------------------------------
    def add_markers(self, markers: Iterable[dict]) -> None:
        rows = ((m["RowKey"][len(D) : len(D) + 2], m["RowKey"][len(D) + 2 :], m["_etag"]) for m in markers)
        self.db.executemany("INSERT OR REPLACE INTO marker VALUES (?, ?, ?)", rows)

    def marked_ids(self, k: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM marker WHERE k = ?", (k,))}

    def add(self, k: str, records: Iterable[Stored], role: Callable[[Any], int]) -> None:
        """Spool records of kind ``k`` (``P|`` / ``A|``), each with the role ``role(record)`` gives."""

        def rows() -> Iterator[tuple]:
            for r in records:
                moved = r.moved_to if isinstance(r, StoredPerson) else ""
                sort = r.data.get("startTime", "") if isinstance(r, StoredActivity) else ""
                yield k, r.record_id, role(r), sort, moved, _doc(r)

        self.db.executemany(
            "INSERT OR REPLACE INTO rec (k, id, role, sort, moved_to, doc) VALUES (?,?,?,?,?,?)", rows()
        )

    def has(self, k: str, rid: str) -> bool:
        return self.db.execute("SELECT 1 FROM rec WHERE k = ? AND id = ?", (k, rid)).fetchone() is not None

    def moved_to(self, pid: str) -> str | None:
        """The person's ``moved_to`` (``""``: not an alias), ``None`` if not spooled."""
        row = self.db.execute("SELECT moved_to FROM rec WHERE k = ? AND id = ?", (P, pid)).fetchone()
        return None if row is None else row[0]

    def sent_activity_docs(self) -> Iterator[tuple[str, StoredActivity]]:
        cur = self.db.execute("SELECT id, doc FROM rec WHERE k = ? AND role = ? AND skipped = 0 ORDER BY id", (A, SEND))
        while rows := cur.fetchmany(_FETCH):
            for aid, doc in rows:
                yield aid, _activity(aid, doc)

    def fill_need(self) -> None:
        """``need``: participants of the activities sent that are not selected persons themselves."""
        db = self.db
        db.execute("DELETE FROM need")
        db.execute(  # in SQLite (JSON1): no activity is decoded into Python objects
            "INSERT OR IGNORE INTO need SELECT json_extract(j.value, '$.personId') "
            "FROM rec, json_each(rec.doc, '$.d.participants') AS j WHERE rec.k = ? AND rec.role = ? AND rec.skipped = 0",
            (A, SEND),
        )
        db.execute(
            "DELETE FROM need WHERE EXISTS (SELECT 1 FROM rec WHERE k = ? AND id = need.id AND role = ?)", (P, SEND)
        )

    def need_ids(self, where: str = "") -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM need " + where)]

    def rewrite(self, updates: list[tuple[StoredActivity, int]]) -> None:
        """Store changed activities (their participants) with a new role."""
        self.db.executemany(
            "UPDATE rec SET doc = ?, role = ? WHERE k = ? AND id = ?",
            [(_doc(a), role, A, a.activity_id) for a, role in updates],
        )

    def mark_referenced(self) -> None:
        db = self.db
        db.execute("UPDATE rec SET role = ? WHERE k = ? AND role = ?", (KNOWN, P, REFERENCED))
        db.execute(
            "UPDATE rec SET role = ? WHERE k = ? AND role = ? AND moved_to = '' AND id IN (SELECT id FROM need)",
            (REFERENCED, P, KNOWN),
        )

    # ---- what the commit writes back ------------------------------------------------------------
    def commit_rows(self) -> Iterator[tuple[str, Stored, str | None]]:
        """``(kind, record, marker ETag or None)`` of every record the run's files hold."""
        cur = self.db.execute(
            "SELECT r.k, r.id, r.moved_to, r.doc, m.etag FROM rec r LEFT JOIN marker m ON m.k = r.k AND m.id = r.id "
            "WHERE r.role > 0 AND r.skipped = 0"
        )
        while rows := cur.fetchmany(_FETCH):
            for k, rid, moved, doc, etag in rows:
                yield k, _load(k, rid, moved, doc), etag

    def stale_markers(self) -> Iterator[tuple[str, str, str]]:
        """``(kind, id, ETag)`` of markers naming nothing the run sends or keeps pending."""
        return iter(
            self.db.execute(
                "SELECT m.k, m.id, m.etag FROM marker m LEFT JOIN rec r ON r.k = m.k AND r.id = m.id "
                "WHERE r.id IS NULL OR (r.role = ? AND r.skipped = 0)",
                (KNOWN,),
            ).fetchall()
        )

    def skipped_unmarked(self) -> list[tuple[str, str]]:
        """``(kind, id)`` of skipped records the run selected that no marker names (they must keep one)."""
        return self.db.execute(
            "SELECT r.k, r.id FROM rec r LEFT JOIN marker m ON m.k = r.k AND m.id = r.id "
            "WHERE r.skipped = 1 AND r.role IN (?, ?) AND m.id IS NULL",
            (SEND, DELETE),
        ).fetchall()


# ---- select -----------------------------------------------------------------------------------------
def select(
    records: ClubRecords,
    *,
    full_load: bool,
    today: date,
    timezone_name: str = SWEDISH_TIMEZONE,
    scan: bool | None = None,
    markers: list[Row] | None = None,
) -> ClubSelection:
    """The records the next run sends (read-only; the preview uses it too). See the module
    docstring. ``scan``: read the whole club (default: on a full load, or when the club's markers
    are not complete). ``markers``: the club's dirty markers, when the caller has just read them
    (:meth:`shared.idrott.store.ClubRecords.dirty_markers`)."""
    if scan is None:
        scan = full_load or not records.markers_complete()
    sel = ClubSelection(full_load, scan=scan)
    sel.add_markers(records.dirty_markers() if markers is None else markers)
    period = lok_period(today)
    marked_a = sel.marked_ids(A)

    def person_role(p: StoredPerson) -> int:
        return SEND if not p.moved_to and person_selected(p, full_load=full_load) else KNOWN

    def activity_role(a: StoredActivity) -> int:
        how = activity_selected(a, full_load=full_load, period=period, timezone_name=timezone_name)
        if how is None:
            return KNOWN
        if how == "delete":
            return DELETE
        if scan and not full_load and a.exported_hash is None and a.activity_id not in marked_a:
            # never sent and unmarked: what a full load would send of it (the LOK period)
            return SEND if in_period(a, period, timezone_name) else KNOWN
        return SEND

    loader: Callable[[set[str]], Iterable[StoredPerson]] | None
    if scan:
        first, last = period
        lo = datetime(first.year, first.month, first.day, tzinfo=UTC) - timedelta(days=1)
        hi = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=2)
        sel.add(P, records.all_persons(), person_role)
        sel.add(A, records.all_activities(lo, hi), activity_role)
        outside = {aid for aid in marked_a if not sel.has(A, aid)}  # marked, outside the scanned range
        sel.add(A, (activity_from_row(r) for r in records.load_rows(A, outside).values()), activity_role)
        loader = None  # every person is spooled already
    else:
        sel.add(P, (person_from_row(r) for r in records.load_rows(P, sel.marked_ids(P)).values()), person_role)
        sel.add(A, (activity_from_row(r) for r in records.load_rows(A, marked_a).values()), activity_role)

        def loader(ids: set[str]) -> Iterable[StoredPerson]:
            return (person_from_row(r) for r in records.load_rows(P, ids).values())

    _resolve_participants(records.club_id, sel, loader)
    return sel


def _resolve_participants(
    club_id: str, sel: ClubSelection, loader: Callable[[set[str]], Iterable[StoredPerson]] | None
) -> None:
    """Referenced persons: spool the participants the activities need, follow re-keys, leave out
    participants that are no person of the club."""

    def fetch(ids: set[str]) -> None:
        ids = {i for i in ids if not sel.has(P, i)}
        if ids and loader is not None:
            sel.add(P, loader(ids), lambda _p: KNOWN)

    sel.fill_need()
    fetch(set(sel.need_ids()))
    aliased = sel.need_ids(f"WHERE EXISTS (SELECT 1 FROM rec WHERE k = '{P}' AND id = need.id AND moved_to != '')")
    if aliased:  # activities stored before a re-key name the old id: send the person's current one
        alias = _aliases(sel, aliased, fetch)
        sel.rewrite(
            [
                (_with_participants(a, _remap_participants(a.data.get("participants", []), alias)), SEND)
                for _, a in sel.sent_activity_docs()
                if any(pid in alias for pid in a.participant_ids)
            ]
        )
        sel.fill_need()
        fetch(set(sel.need_ids()))
    missing = set(
        sel.need_ids(f"WHERE NOT EXISTS (SELECT 1 FROM rec WHERE k = '{P}' AND id = need.id AND moved_to = '')")
    )
    if missing:  # persons removed by DELETE (aliases, ids that were never exportable)
        log.error("club %s: %d participant(s) refer to unknown persons; they are left out", club_id, len(missing))
        updates = []
        for _, a in sel.sent_activity_docs():
            if missing.intersection(a.participant_ids):
                parts = [pt for pt in a.data.get("participants", []) if pt["personId"] not in missing]
                updates.append((_with_participants(a, parts), SEND if parts else KNOWN))
        sel.rewrite(updates)
        sel.fill_need()
    sel.mark_referenced()


def _with_participants(a: StoredActivity, participants: list[dict]) -> StoredActivity:
    a.data = {**a.data, "participants": participants}
    return a


def leave_out(sel: ClubSelection, skipped: list[dict]) -> None:
    """Take the skipped records (``{"kind", "id", ...}``) out of ``sel``, so the commit neither
    marks them exported nor clears their dirty markers: they stay pending. Referenced persons are
    kept only for the activities that are still sent."""
    if not skipped:
        return
    kinds = {"person": P, "activity": A}
    sel.db.executemany(
        "UPDATE rec SET skipped = 1 WHERE k = ? AND id = ?", [(kinds[s["kind"]], s["id"]) for s in skipped]
    )
    sel.fill_need()
    sel.db.execute(
        "UPDATE rec SET role = ? WHERE k = ? AND role = ? AND id NOT IN (SELECT id FROM need)", (KNOWN, P, REFERENCED)
    )


def _aliases(sel: ClubSelection, old_ids: Sequence[str], fetch: Callable[[set[str]], None]) -> dict[str, str]:
    """Re-keyed ids → the id the person has now (following later re-keys)."""
    out: dict[str, str] = {}
    for old in old_ids:
        target, hops = sel.moved_to(old) or "", 0
        while target and hops < _MAX_ALIAS_HOPS:
            fetch({target})
            nxt = sel.moved_to(target)
            if not nxt:
                break
            target, hops = nxt, hops + 1
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
