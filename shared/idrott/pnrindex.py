"""One personnummer, one person: person intake under the club's personnummer index.

IdrottOnline matches persons by personnummer, so a club holds one ``externalId`` per
personnummer. The index rows ``N|<digest>`` (:mod:`shared.idrott.rows`) name the ``external_id``
holding each one; ``<digest>`` is a salted SHA-256 in letters only (:func:`pnr_key`): no
personnummer in a key, so none in a storage log.

A person's rows are written in one transaction: its record (MERGE, so ``exported_hash``
survives), its dirty marker once the club's markers are on (:mod:`shared.idrott.store`) and its
claim on the index row (create, or an ETag-conditional
update), so of two writers of one personnummer exactly one wins. A re-key
(``replacesExternalId``) adds the old row turned into an alias (``moved_to``) to that
transaction. The only reads are the index rows of the request's personnummer (and, on a re-key or
a conflict, the person rows named). The index is built once per club for persons stored before
it existed (``M|pnr-index``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.idrott.rows import MAX_OPS, PNR_INDEX_META, N, P, key_range, record_data
from shared.lifecycle import on_reset
from shared.tables_contract import Op

if TYPE_CHECKING:
    from shared.idrott.models import Person
    from shared.idrott.store import ClubRecords

log = logging.getLogger(__name__)

_MAX_TX_CHARS = 2_000_000  # well below the 4 MiB request limit
_INDEXED: set[tuple[str, str]] = set()  # (table, club) whose personnummer index is known built


def _forget_indexed() -> None:
    _INDEXED.clear()


on_reset(_forget_indexed)

_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def pnr_key(club_id: str, personnummer: str) -> str:
    """Index key of a (normalised) personnummer in a club: SHA-256 of club + number, hex with the
    digits mapped to letters, so no key or log line ever looks like a personnummer."""
    digest = hashlib.sha256(f"{club_id}\x00{personnummer}".encode()).hexdigest()[:40]
    return digest.translate(_LETTERS)


@dataclass(frozen=True)
class PersonRefusal:
    """A person of an upsert that was not stored. ``status`` 409 (the personnummer or the re-keyed
    id belongs to another person: ``existing_id``) or 422 (the request itself is inconsistent)."""

    position: int  # index into the sequence given to upsert_persons
    status: int
    path: str  # field of the record: "personnummer" | "replacesExternalId"
    message: str  # never contains a personnummer
    existing_id: str | None = None


class PersonIntake:
    """Person intake of one club (:meth:`shared.idrott.store.ClubRecords.upsert_persons`)."""

    def __init__(self, records: ClubRecords) -> None:
        self.records = records
        self.club_id = records.club_id
        self.t = records.t
        self.now = records.now
        self.marked = True  # whether the person's dirty marker goes in its transaction (upsert)

    def upsert(self, persons: Sequence[Person]) -> list[PersonRefusal]:
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
        self.marked = self.records.markers_on()
        self.ensure_built()
        digests = {i: pnr_key(self.club_id, p.personnummer) for i, p in enumerate(persons) if p.personnummer}
        index = self._index_rows(set(digests.values()))
        in_request = {p.external_id for p in persons}
        claimed: dict[str, int] = {}  # digest -> position of the record that holds it in this call
        replaced: dict[str, int] = {}  # old id -> position of the record replacing it
        refusals: list[PersonRefusal] = []
        groups: list[tuple[int, list[Op]]] = []
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
        if not self.marked:
            refused = {r.position for r in refusals}
            self.records.catch_up_markers(P, [p.external_id for i, p in enumerate(persons) if i not in refused])
        return sorted(refusals, key=lambda r: r.position)

    def _person_ops(self, person: Person) -> list[Op]:
        # moved_to "": a re-used id is a person again, not an alias
        return self.records.record_write(
            P, person.external_id, person.stored_data(), marked=self.marked, active=True, moved_to=""
        )

    def _index_entity(self, digest: str, external_id: str) -> dict:
        return {
            "PartitionKey": self.club_id,
            "RowKey": N + digest,
            "external_id": external_id,
            "updated_at": self.now(),
        }

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
    ) -> list[Op] | PersonRefusal:
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
                if record_data(row).get("personnummer") != person.personnummer:
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
                    "moved_at": self.now(),
                    "updated_at": self.now(),
                }
                ops.append(Op("update", alias, {"etag": row["_etag"]}))
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
            ops.append(Op("create", self._index_entity(digest, x)))
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
        ops.append(Op("update", self._index_entity(digest, x), {"etag": entry["_etag"]}))
        return ops

    def _holds(self, digest: str, external_id: str) -> bool:
        """Whether ``external_id`` is a person (not an alias) of the club with that personnummer."""
        row = self.t.get(self.club_id, P + external_id) if external_id else None
        if row is None or row.get("moved_to"):
            return False
        pnr = record_data(row).get("personnummer")
        return isinstance(pnr, str) and pnr_key(self.club_id, pnr) == digest

    def _index_rows(self, digests: set[str]) -> dict[str, dict]:
        if not digests:
            return {}
        if len(digests) <= 50:
            rows = (self.t.get(self.club_id, N + d) for d in digests)
            return {r["RowKey"][len(N) :]: r for r in rows if r is not None}
        flt, params = key_range(N)
        return {
            r["RowKey"][len(N) :]: r
            for r in self.t.query(flt, parameters=params, partition_key=self.club_id, select=["RowKey", "external_id"])
            if r["RowKey"][len(N) :] in digests
        }

    def _submit_groups(self, groups: list[tuple[int, list[Op]]]) -> list[int]:
        """Write each group atomically (several per transaction); return the positions whose
        transaction failed with a conflict even when sent alone."""
        from shared.tables import Conflict

        chunks: list[list[tuple[int, list[Op]]]] = []
        chunk: list[tuple[int, list[Op]]] = []
        ops_n = chars = 0
        keys: set[str] = set()
        for i, ops in groups:
            size = sum(len(json.dumps(op.entity, default=str)) for op in ops)
            rks = {op.entity["RowKey"] for op in ops}
            if chunk and (ops_n + len(ops) > MAX_OPS or chars + size > _MAX_TX_CHARS or rks & keys):
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

    def ensure_built(self) -> None:
        """Build the personnummer index once for persons stored before it existed."""
        from shared.tables import Conflict

        cache_key = (str(getattr(self.t, "name", "")), self.club_id)
        if cache_key in _INDEXED:
            return
        if self.t.get(self.club_id, PNR_INDEX_META) is None:
            holders: dict[str, list[tuple[bool, str]]] = {}
            for p in self.records.all_persons():
                pnr = p.data.get("personnummer")
                if pnr and not p.moved_to:
                    holders.setdefault(pnr_key(self.club_id, pnr), []).append((not p.active, p.external_id))
            # active persons first, then the smallest id; create (insert-if-absent) never overrides
            # a claim made meanwhile: a transaction that meets one goes row by row
            entities = [self._index_entity(d, min(c)[1]) for d, c in holders.items()]
            for k in range(0, len(entities), MAX_OPS):
                part = entities[k : k + MAX_OPS]
                try:
                    self.t.submit([Op("create", e) for e in part])
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
            self.t.upsert({"PartitionKey": self.club_id, "RowKey": PNR_INDEX_META, "built_at": self.now()})
        _INDEXED.add(cache_key)
