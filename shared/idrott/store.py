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
``N|<digest>``         personnummer index: ``external_id`` of the one person holding that
                       personnummer in the club (IdrottOnline matches persons by personnummer).
                       ``<digest>`` is a salted SHA-256 in letters only (:func:`pnr_key`): no
                       personnummer in a key, so none in a storage log
``M|pnr-index``        the index was built for the club's persons stored before it existed
=====================  ===========================================================================

A person row may also be an **alias** (``moved_to=<new id>``, ``active=False``): the person was
re-keyed (``replacesExternalId``); it is never exported as a person, and activities naming it
are exported with the new id.

Intake writes the marker and the record (MERGE, so ``exported_hash`` survives) in one
transaction; persons also claim their personnummer's index row in that transaction (create, or
an ETag-conditional update), so of two writers of one personnummer exactly one wins. The only
reads are the index rows of the request's personnummer (and, on a re-key or a conflict, the
person rows named).
Selection is the core's (``delta.select_changes``): a record whose ``export_marker(hash,
tombstone)`` equals its ``exported_hash`` is not sent again. Commit (only after every file of a
run is uploaded) sets ``exported_hash`` to the marker that was sent and deletes each marker *with the ETag it had when selected*: a marker rewritten meanwhile
(the record changed during the run) survives, so the newer version goes in the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.idrott.models import Activity, Person, is_safe_id
from shared.lifecycle import on_reset
from shared.textsize import CHUNK_UNITS, text_chunks

log = logging.getLogger(__name__)

TABLE = "IdrottRecords"
P, A, D = "P|", "A|", "D|"
N = "N|"  # personnummer index
PNR_INDEX_META = "M|pnr-index"
#: Longest id the DELETE routes look up. Ids intake accepts have at most 64 characters (ids stored
#: before full-string matching at most 65: a trailing newline); every key up to this length fits
#: Table Storage's 1 KiB even with every character escaped (``~XX`` per UTF-8 byte).
MAX_LOOKUP_ID = 80
_MAX_OPS = 100  # Table Storage: operations per transaction
_MAX_TX_CHARS = 2_000_000  # well below the 4 MiB request limit
_MAX_ALIAS_HOPS = 10
#: Validation context for records read back: limits added after a record was written (sports or
#: participants per record, the date-time range) do not make it unreadable (models._stored).
_STORED = {"stored": True}
_INDEXED: set[tuple[str, str]] = set()  # (table, club) whose personnummer index is known built


def _forget_indexed() -> None:
    _INDEXED.clear()


on_reset(_forget_indexed)
_CHUNK = CHUNK_UNITS  # UTF-16 code units per string property (shared/textsize.py)
_MAX_CHUNKS = 30
#: With more dirty markers than this, scan the kind's key range instead of point reads.
POINT_READ_LIMIT = 200


def _now() -> datetime:
    return datetime.now(UTC)


def content_hash(payload: dict) -> str:
    from shared.idrott.delta import content_hash as core_hash

    return core_hash(payload)


def _split(text: str) -> dict[str, Any]:
    chunks = text_chunks(text, _CHUNK) or [""]
    if len(chunks) > _MAX_CHUNKS:
        raise ValueError("record too large for Table Storage")
    out: dict[str, Any] = {f"d{i}": c for i, c in enumerate(chunks)}
    out["dn"] = len(chunks)
    return out


def _join(row: dict) -> dict:
    n = int(row.get("dn") or 0)
    return json.loads("".join(row.get(f"d{i}", "") for i in range(n)))


_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def pnr_key(club_id: str, personnummer: str) -> str:
    """Index key of a (normalised) personnummer in a club: SHA-256 of club + number, hex with the
    digits mapped to letters, so no key or log line ever looks like a personnummer."""
    digest = hashlib.sha256(f"{club_id}\x00{personnummer}".encode()).hexdigest()[:40]
    return digest.translate(_LETTERS)


def lookup_id_ok(value: str) -> bool:
    """Whether a DELETE route may look ``value`` up: any non-empty string up to
    :data:`MAX_LOOKUP_ID` characters that Table Storage can hold (legacy ids included)."""
    if not value or len(value) > MAX_LOOKUP_ID:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: can never have been stored
        return False
    return True


@dataclass(frozen=True)
class PersonRefusal:
    """A person of an upsert that was not stored. ``status`` 409 (the personnummer or the re-keyed
    id belongs to another person: ``existing_id``) or 422 (the request itself is inconsistent)."""

    position: int  # index into the sequence given to upsert_persons
    status: int
    path: str  # field of the record: "personnummer" | "replacesExternalId"
    message: str  # never contains a personnummer
    existing_id: str | None = None


@dataclass
class StoredPerson:
    external_id: str
    data: dict
    hash: str
    exported_hash: str | None
    active: bool
    row: dict = field(repr=False, default_factory=dict)
    moved_to: str = ""  # re-keyed: an alias of that person, never exported itself

    def model(self) -> Person:
        return Person.model_validate(self.data, context=_STORED)

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
        return Activity.model_validate(self.data, context=_STORED)

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
        row.get("moved_to") or "",
    )


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

    def upsert_persons(self, persons: Sequence[Person]) -> list[PersonRefusal]:
        """Store persons; return the ones refused (the others are stored).

        A personnummer belongs to one external id per club: a person whose personnummer another
        external id holds is refused (409, naming it) unless it says ``replacesExternalId`` of
        that id: then, in one transaction, the person is stored under the new id, the index
        moves to it and the old row becomes an alias (``moved_to``). Within the sequence, the
        first record of a personnummer wins. Each person is written in one transaction of its own
        rows (marker, record, index, alias), several persons per transaction; a transaction that
        meets a concurrent writer is retried person by person, and a person whose rows changed
        meanwhile is decided again on fresh reads.
        """
        if not persons:
            return []
        self.ensure_pnr_index()
        digests = {i: pnr_key(self.club_id, p.personnummer) for i, p in enumerate(persons) if p.personnummer}
        index = self._index_rows(set(digests.values()))
        in_request = {p.external_id for p in persons}
        claimed: dict[str, int] = {}  # digest -> position of the record that holds it in this call
        replaced: dict[str, int] = {}  # old id -> position of the record replacing it
        refusals: list[PersonRefusal] = []
        groups: list[tuple[int, list[tuple]]] = []
        for i, person in enumerate(persons):
            plan = self._plan_person(i, person, digests.get(i), index, persons, in_request, claimed, replaced)
            if isinstance(plan, PersonRefusal):
                refusals.append(plan)
                continue
            groups.append((i, plan))
            if i in digests:
                claimed[digests[i]] = i
            if person.replaces_external_id:
                replaced[person.replaces_external_id] = i
        for i in self._submit_groups(groups):
            # a concurrent writer changed one of this person's rows: decide again, once
            person, digest = persons[i], digests.get(i)
            if digest is not None:
                index.pop(digest, None)
                index.update(self._index_rows({digest}))
            others = {d: j for d, j in claimed.items() if j != i}
            again = {k: j for k, j in replaced.items() if j != i}
            plan = self._plan_person(i, person, digest, index, persons, in_request, others, again)
            if isinstance(plan, PersonRefusal):
                refusals.append(plan)
            elif self._submit_groups([(i, plan)]):
                refusals.append(
                    PersonRefusal(i, 409, "externalId", "changed concurrently by another request; send it again")
                )
        return sorted(refusals, key=lambda r: r.position)

    def _person_ops(self, person: Person) -> list[tuple]:
        data = person.stored_data()
        h = content_hash(data)
        rec = {
            "PartitionKey": self.club_id,
            "RowKey": P + person.external_id,
            **_split(json.dumps(data)),
            "hash": h,
            "active": True,
            "moved_to": "",  # a re-used id is a person again, not an alias
            "updated_at": _now(),
        }
        return self._ops(P, person.external_id, rec, h)

    def _index_entity(self, digest: str, external_id: str) -> dict:
        return {"PartitionKey": self.club_id, "RowKey": N + digest, "external_id": external_id, "updated_at": _now()}

    def _plan_person(
        self,
        i: int,
        person: Person,
        digest: str | None,
        index: dict[str, dict],
        persons: Sequence[Person],
        in_request: set[str],
        claimed: dict[str, int],
        replaced: dict[str, int],
    ) -> list[tuple] | PersonRefusal:
        """The rows to write for one person, or why it is refused."""
        x, old_id = person.external_id, person.replaces_external_id
        ops = self._person_ops(person)
        if old_id is not None:
            path = "replacesExternalId"
            if old_id in in_request:
                return PersonRefusal(i, 422, path, f"{old_id} is also a record of this request: send one of them")
            if old_id in replaced:
                return PersonRefusal(
                    i, 422, path, f"record [{replaced[old_id]}] of this request already replaces {old_id}"
                )
            row = self.t.get(self.club_id, P + old_id)
            if row is None:
                return PersonRefusal(i, 422, path, f"{old_id} is not a person of this club")
            moved_to = row.get("moved_to") or ""
            if moved_to and moved_to != x:
                return PersonRefusal(i, 409, path, f"{old_id} was already moved to {moved_to}", moved_to)
            if not moved_to:
                if _join(row).get("personnummer") != person.personnummer:
                    return PersonRefusal(
                        i,
                        409,
                        path,
                        f"{old_id} has another personnummer (or none): a re-key moves one person to a new "
                        "externalId and keeps its personnummer",
                        old_id,
                    )
                alias = {
                    "PartitionKey": self.club_id,
                    "RowKey": P + old_id,
                    "moved_to": x,
                    "active": False,
                    "moved_at": _now(),
                    "updated_at": _now(),
                }
                ops.append(("update", alias, {"etag": row["_etag"]}))
        if digest is None:
            return ops
        if digest in claimed and persons[claimed[digest]].external_id != x:
            j = claimed[digest]
            holder = persons[j].external_id
            return PersonRefusal(
                i,
                409,
                "personnummer",
                f"the personnummer repeats record [{j}] (externalId {holder}) of this request; "
                "IdrottOnline matches persons by personnummer, so a club has one externalId per person",
                holder,
            )
        entry = index.get(digest)
        if entry is None:
            ops.append(("create", self._index_entity(digest, x)))
            return ops
        holder = entry.get("external_id") or ""
        if holder == x:
            return ops
        if holder != old_id and self._holds(digest, holder):
            return PersonRefusal(
                i,
                409,
                "personnummer",
                f"the personnummer is registered for externalId {holder} in this club; IdrottOnline "
                "matches persons by personnummer, so a club has one externalId per person. To move the "
                f'person to externalId {x}, send this record with "replacesExternalId": "{holder}"',
                holder,
            )
        # the holder is being re-keyed to x, or the entry is stale (its person is gone or changed)
        ops.append(("update", self._index_entity(digest, x), {"etag": entry["_etag"]}))
        return ops

    def _holds(self, digest: str, external_id: str) -> bool:
        """Whether ``external_id`` is a person (not an alias) of the club with that personnummer."""
        row = self.t.get(self.club_id, P + external_id) if external_id else None
        if row is None or row.get("moved_to"):
            return False
        pnr = _join(row).get("personnummer")
        return isinstance(pnr, str) and pnr_key(self.club_id, pnr) == digest

    def _index_rows(self, digests: set[str]) -> dict[str, dict]:
        if not digests:
            return {}
        if len(digests) <= 50:
            rows = (self.t.get(self.club_id, N + d) for d in digests)
            return {r["RowKey"][len(N) :]: r for r in rows if r is not None}
        flt, params = _range(N)
        return {
            r["RowKey"][len(N) :]: r
            for r in self.t.query(flt, parameters=params, partition_key=self.club_id, select=["RowKey", "external_id"])
            if r["RowKey"][len(N) :] in digests
        }

    def _submit_groups(self, groups: list[tuple[int, list[tuple]]]) -> list[int]:
        """Write each group atomically (several per transaction); return the positions whose
        transaction failed with a conflict even when sent alone."""
        from shared.tables import Conflict

        chunks: list[list[tuple[int, list[tuple]]]] = []
        chunk: list[tuple[int, list[tuple]]] = []
        ops_n = chars = 0
        keys: set[str] = set()
        for i, ops in groups:
            size = sum(len(json.dumps(op[1], default=str)) for op in ops)
            rks = {op[1]["RowKey"] for op in ops}
            if chunk and (ops_n + len(ops) > _MAX_OPS or chars + size > _MAX_TX_CHARS or rks & keys):
                chunks.append(chunk)
                chunk, ops_n, chars, keys = [], 0, 0, set()
            chunk.append((i, ops))
            ops_n, chars, keys = ops_n + len(ops), chars + size, keys | rks
        if chunk:
            chunks.append(chunk)
        failed: list[int] = []
        for ch in chunks:
            try:
                self.t.submit([op for _, ops in ch for op in ops])
            except Conflict:
                if len(ch) == 1:
                    failed.append(ch[0][0])
                    continue
                for i, ops in ch:  # find the one that conflicts; the others go through
                    try:
                        self.t.submit(ops)
                    except Conflict:
                        failed.append(i)
        return failed

    def ensure_pnr_index(self) -> None:
        """Build the personnummer index once for persons stored before it existed."""
        from shared.tables import Conflict

        cache_key = (str(getattr(self.t, "name", "")), self.club_id)
        if cache_key in _INDEXED:
            return
        if self.t.get(self.club_id, PNR_INDEX_META) is None:
            holders: dict[str, list[tuple[bool, str]]] = {}
            for p in self.all_persons():
                pnr = p.data.get("personnummer")
                if pnr and not p.moved_to:
                    holders.setdefault(pnr_key(self.club_id, pnr), []).append((not p.active, p.external_id))
            # active persons first, then the smallest id; create (insert-if-absent) never overrides
            # a claim made meanwhile: a transaction that meets one goes row by row
            entities = [self._index_entity(d, min(c)[1]) for d, c in holders.items()]
            for k in range(0, len(entities), _MAX_OPS):
                part = entities[k : k + _MAX_OPS]
                try:
                    self.t.submit([("create", e) for e in part])
                except Conflict:
                    for e in part:
                        self.t.insert(e)
            shared = sum(1 for c in holders.values() if len(c) > 1)
            if shared:
                log.warning(
                    "club %s: %d personnummer are held by more than one externalId (stored before "
                    "duplicates were refused); each is indexed to one of them",
                    self.club_id,
                    shared,
                )
            self.t.upsert({"PartitionKey": self.club_id, "RowKey": PNR_INDEX_META, "built_at": _now()})
        _INDEXED.add(cache_key)

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
        return "left"

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
        from shared.idrott.delta import export_marker

        rec = {"PartitionKey": self.club_id, "RowKey": A + activity_id, "deleted": True, "updated_at": _now()}
        self.t.submit(self._ops(A, activity_id, rec, export_marker(row.get("hash", ""), True)))
        return "deleted"

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
            everyone: dict[str, StoredPerson] | None = {p.external_id: p for p in self.all_persons()}
            persons = dict(everyone or {})
            activities = list(self.all_activities(lo, hi))
        else:
            everyone = None
            p_ids = {m["RowKey"][len(D + P) :] for m in markers if m["RowKey"].startswith(D + P)}
            a_ids = {m["RowKey"][len(D + A) :] for m in markers if m["RowKey"].startswith(D + A)}
            persons = {k: _person(r) for k, r in self._load(P, p_ids).items()}
            activities = [_activity(r) for r in self._load(A, a_ids).values()]
        persons = {k: p for k, p in persons.items() if not p.moved_to}  # aliases are never sent
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
        loaded = self._persons(needed, everyone)
        alias = self._aliases(loaded, everyone)
        if alias:  # activities stored before a re-key name the old id: send the person's current one
            for a in sel.activities:
                a.data = {**a.data, "participants": _remap_participants(a.data.get("participants", []), alias)}
            selected = {p.external_id for p in sel.persons}
            needed = {pt["personId"] for a in sel.activities for pt in a.data["participants"]} - selected
            loaded = {k: v for k, v in loaded.items() if k in needed}
            loaded.update(self._persons(needed - set(loaded), everyone))
        context = {k: v for k, v in loaded.items() if not v.moved_to}
        missing = needed - set(context)
        if missing:  # persons removed by DELETE (aliases, ids that were never exportable)
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

    def _persons(self, ids: set[str], everyone: dict[str, StoredPerson] | None) -> dict[str, StoredPerson]:
        if everyone is not None:
            return {k: everyone[k] for k in ids if k in everyone}
        return {k: _person(r) for k, r in self._load(P, ids).items()}

    def _aliases(self, loaded: dict[str, StoredPerson], everyone: dict[str, StoredPerson] | None) -> dict[str, str]:
        """Re-keyed ids among ``loaded`` → the id the person has now (following later re-keys)."""
        out: dict[str, str] = {}
        for old, p in loaded.items():
            target, hops = p.moved_to, 0
            while target and hops < _MAX_ALIAS_HOPS:
                nxt = self._persons({target}, everyone).get(target)
                if nxt is None or not nxt.moved_to:
                    break
                target, hops = nxt.moved_to, hops + 1
            if target:
                out[old] = target
        return out

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
