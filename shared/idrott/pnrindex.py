"""One personnummer, one person: person intake under the club's personnummer index.

IdrottOnline matches persons by personnummer, so a club holds one ``externalId`` per
personnummer. The index is 64 **bucket rows** ``I|<bucket>`` (:mod:`shared.idrott.rows`); each
maps the digests of its personnummer to the ``external_id`` holding each. A digest is a salted
SHA-256 in letters only (:func:`pnr_key`): no personnummer in a row, a key or a storage log.

A person's rows go in one transaction with the bucket row of its personnummer: its record (MERGE,
so ``exported_hash`` survives), its dirty marker once the club's markers are on
(:mod:`shared.idrott.store`), on a re-key (``replacesExternalId``) the old row turned into an
alias (``moved_to``), and the bucket row, written under the ETag it was read with (created when
new). So of two writers of one personnummer exactly one wins, and a writer that meets a
concurrent write of its bucket reads the bucket again and decides again.

**Why buckets.** With one index row per personnummer a new person cost two writes, and a club's
first intake of 10 000 persons sent 20 000 operations. The persons of a bucket share one bucket
write per transaction: 1 000 persons cost about 1 064 writes. What it costs instead: a bucket
write carries the bucket's whole map (~9 KB at 10 000 persons, ~1/64 of the index), and two
concurrent calls for one club meet on the same buckets, so the later one's transactions go again
on fresh reads (``_ROUNDS`` times at most; a person still meeting a writer then is refused with
409, "send it again"). A bucket row holds ~8 000 persons within Table Storage's 1 MiB entity
(text counts two bytes a character), so the index holds about half a million persons per club.

The index is built once per club for persons stored before it existed, and a club indexed in
the earlier layout (``N|<digest>`` rows) has it rebuilt as buckets and those rows deleted
(``M|pnr-buckets``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.idrott.rows import MAX_OPS, PNR_BUCKETS_META, PNR_INDEX_META, I, N, P, key_range, record_data
from shared.lifecycle import on_reset
from shared.tables_contract import Op

if TYPE_CHECKING:
    from shared.idrott.models import Person
    from shared.idrott.store import ClubRecords

log = logging.getLogger(__name__)

#: Bucket rows of a club's index.
BUCKETS = 64
#: The bucket row's map of digest -> external_id (a JSON property; the table stores it in pieces
#: when it outgrows one property).
HOLDERS = "holders"
_MAX_TX_CHARS = 2_000_000  # well below the 4 MiB request limit
#: Rounds of fresh reads for persons whose transaction met a concurrent writer of its rows.
_ROUNDS = 12
_POINT_READS = 8  # read this many buckets one by one; more in one range scan
_INDEXED: set[tuple[str, str]] = set()  # (table, club) whose personnummer index is known built


def _forget_indexed() -> None:
    _INDEXED.clear()


on_reset(_forget_indexed)

_LETTERS = str.maketrans("0123456789", "ghijklmnop")
_DIGITS = str.maketrans("ghijklmnop", "0123456789")


def pnr_key(club_id: str, personnummer: str) -> str:
    """Index key of a (normalised) personnummer in a club: SHA-256 of club + number, hex with the
    digits mapped to letters, so no key or log line ever looks like a personnummer."""
    digest = hashlib.sha256(f"{club_id}\x00{personnummer}".encode()).hexdigest()[:40]
    return digest.translate(_LETTERS)


def bucket_of(digest: str) -> str:
    """The bucket (``00``..``63``) of a digest of :func:`pnr_key`: its first byte modulo 64."""
    return f"{int(digest[:2].translate(_DIGITS), 16) % BUCKETS:02d}"


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
class _Bucket:
    holders: dict[str, str]
    etag: str | None  # None: no row yet


@dataclass
class _Plan:
    """One person's rows, and the digest it holds once they are written (``None``: none)."""

    position: int
    external_id: str
    ops: list[Op]
    digest: str | None
    keys: set[str] = field(init=False)  # its RowKeys
    chars: int = field(init=False)  # its size as JSON, for the transaction's byte limit

    def __post_init__(self) -> None:
        self.keys = {op.entity["RowKey"] for op in self.ops}
        self.chars = sum(len(json.dumps(op.entity, default=str)) for op in self.ops)


@dataclass
class _Unit:
    """Operations that go in one transaction: some persons' rows and, for persons with a
    personnummer, the bucket row they share."""

    plans: list[_Plan]
    ops: list[Op]
    keys: set[str]
    chars: int


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
        first record of a personnummer wins. Persons go in rounds: each round reads the buckets
        it needs, decides every person still open and writes them, the persons of a bucket with
        that bucket row, several buckets per transaction. A person whose transaction met a
        concurrent writer (or did not fit beside its bucket's others) is decided again next
        round on fresh reads.
        """
        if not persons:
            return []
        self.marked = self.records.markers_on()
        self.ensure_built()
        digests = {i: pnr_key(self.club_id, p.personnummer) for i, p in enumerate(persons) if p.personnummer}
        in_request = {p.external_id for p in persons}
        claimed: dict[str, int] = {}  # digest -> position of the record that holds it in this call
        replaced: dict[str, int] = {}  # old id -> position of the record replacing it
        refusals: list[PersonRefusal] = []
        open_ = list(range(len(persons)))
        conflict_rounds = 0
        while open_:
            buckets = self._read_buckets({bucket_of(digests[i]) for i in open_ if i in digests})
            plans: list[_Plan] = []
            for i in open_:
                plan = self._plan_person(i, persons[i], digests.get(i), buckets, persons, in_request, claimed, replaced)
                if isinstance(plan, PersonRefusal):
                    refusals.append(plan)
                    continue
                plans.append(plan)
                if plan.digest is not None:
                    claimed[plan.digest] = i
                old_id = persons[i].replaces_external_id
                if old_id:
                    replaced[old_id] = i
            conflicted, deferred = self._write(plans, buckets)
            again = set(conflicted) | set(deferred)
            claimed = {d: j for d, j in claimed.items() if j not in again}
            replaced = {k: j for k, j in replaced.items() if j not in again}
            if conflicted:
                conflict_rounds += 1
                if conflict_rounds >= _ROUNDS:
                    refusals += [
                        PersonRefusal(i, 409, "externalId", "changed concurrently by another request; send it again")
                        for i in conflicted
                    ]
                    conflicted = []
            open_ = sorted(set(conflicted) | set(deferred))
        if not self.marked:
            refused = {r.position for r in refusals}
            self.records.catch_up_markers(P, [p.external_id for i, p in enumerate(persons) if i not in refused])
        return sorted(refusals, key=lambda r: r.position)

    def _person_ops(self, person: Person) -> list[Op]:
        # moved_to "": a re-used id is a person again, not an alias
        return self.records.record_write(
            P, person.external_id, person.stored_data(), marked=self.marked, active=True, moved_to=""
        )

    def _plan_person(
        self,
        i: int,
        person: Person,
        digest: str | None,
        buckets: dict[str, _Bucket],
        persons: Sequence[Person],
        in_request: set[str],
        claimed: dict[str, int],
        replaced: dict[str, int],
    ) -> _Plan | PersonRefusal:
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
            return _Plan(i, x, ops, None)
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
        holder = buckets[bucket_of(digest)].holders.get(digest) or ""
        if holder and holder not in (x, old_id) and self._holds(digest, holder):
            return PersonRefusal(
                i,
                409,
                "personnummer",
                f"the personnummer is registered for externalId {holder} in this club; IdrottOnline "
                "matches persons by personnummer, so a club has one externalId per person. To move the "
                f'person to externalId {x}, send this record with "replacesExternalId": "{holder}"',
                holder,
            )
        return _Plan(i, x, ops, digest)

    def _holds(self, digest: str, external_id: str) -> bool:
        """Whether ``external_id`` is a person (not an alias) of the club with that personnummer."""
        row = self.t.get(self.club_id, P + external_id) if external_id else None
        if row is None or row.get("moved_to"):
            return False
        pnr = record_data(row).get("personnummer")
        return isinstance(pnr, str) and pnr_key(self.club_id, pnr) == digest

    # ---- buckets ---------------------------------------------------------------------------------
    def _read_buckets(self, names: set[str]) -> dict[str, _Bucket]:
        """The named buckets as stored now (an absent one empty, without an ETag)."""
        if not names:
            return {}
        if len(names) <= _POINT_READS:
            rows: Iterable[dict | None] = [self.t.get(self.club_id, I + b) for b in names]
        else:
            flt, params = key_range(I)
            rows = self.t.query(flt, parameters=params, partition_key=self.club_id)
        found = {r["RowKey"][len(I) :]: _Bucket(dict(r.get(HOLDERS) or {}), r["_etag"]) for r in rows if r is not None}
        return {b: found.get(b) or _Bucket({}, None) for b in names}

    def _bucket_op(self, name: str, holders: dict[str, str], etag: str | None) -> Op:
        entity = {"PartitionKey": self.club_id, "RowKey": I + name, HOLDERS: holders, "updated_at": self.now()}
        if etag is None:
            return Op("create", entity)
        return Op("update", entity, {"etag": etag, "replace": True})

    def _units(self, plans: list[_Plan], buckets: dict[str, _Bucket]) -> tuple[list[_Unit], list[int]]:
        """One unit per person without a personnummer, one per bucket for the others (the bucket
        row written once, under its ETag, even where no entry changes: so a person is never
        written beside a concurrent claim of its personnummer). Persons that do not fit in their
        bucket's unit (operations, size, a row twice) are returned to go next round."""
        units: list[_Unit] = []
        by_bucket: dict[str, list[_Plan]] = {}
        for plan in plans:
            if plan.digest is None:
                units.append(_Unit([plan], plan.ops, set(plan.keys), plan.chars))
            else:
                by_bucket.setdefault(bucket_of(plan.digest), []).append(plan)
        deferred: list[int] = []
        for name, members in by_bucket.items():
            bucket = buckets[name]
            holders = dict(bucket.holders)
            base_chars = len(json.dumps(holders)) + 200
            taken: list[_Plan] = []
            keys: set[str] = set()
            n_ops, chars = 1, base_chars
            for plan in members:
                fits = n_ops + len(plan.ops) <= MAX_OPS and chars + plan.chars + 80 <= _MAX_TX_CHARS
                if taken and (not fits or plan.keys & keys):
                    deferred.append(plan.position)
                    continue
                taken.append(plan)
                keys |= plan.keys
                n_ops, chars = n_ops + len(plan.ops), chars + plan.chars + 80
                assert plan.digest is not None
                holders[plan.digest] = plan.external_id
            ops = [op for p in taken for op in p.ops] + [self._bucket_op(name, holders, bucket.etag)]
            units.append(_Unit(taken, ops, keys | {I + name}, chars))
        return units, deferred

    def _write(self, plans: list[_Plan], buckets: dict[str, _Bucket]) -> tuple[list[int], list[int]]:
        """Write the plans, several units per transaction; return the positions whose unit met a
        concurrent writer even when sent alone, and those deferred to the next round."""
        from shared.tables import Conflict

        units, deferred = self._units(plans, buckets)
        txs: list[list[_Unit]] = []
        tx: list[_Unit] = []
        n_ops = chars = 0
        keys: set[str] = set()
        for unit in units:
            if tx and (n_ops + len(unit.ops) > MAX_OPS or chars + unit.chars > _MAX_TX_CHARS or unit.keys & keys):
                txs.append(tx)
                tx, n_ops, chars, keys = [], 0, 0, set()
            tx.append(unit)
            n_ops, chars, keys = n_ops + len(unit.ops), chars + unit.chars, keys | unit.keys
        if tx:
            txs.append(tx)
        conflicted: list[int] = []
        for tx in txs:
            try:
                self.t.submit([op for u in tx for op in u.ops])
                continue
            except Conflict:
                if len(tx) == 1:
                    conflicted += [p.position for p in tx[0].plans]
                    continue
            for unit in tx:  # find the units that meet a writer; the others go through
                try:
                    self.t.submit(unit.ops)
                except Conflict:
                    conflicted += [p.position for p in unit.plans]
        if conflicted:
            log.info("club %s: %d person(s) met a concurrent write; deciding again", self.club_id, len(conflicted))
        return conflicted, deferred

    # ---- building ------------------------------------------------------------------------------
    def ensure_built(self) -> None:
        """Build the personnummer index once: for persons stored before it existed, and for a club
        indexed in the earlier layout (one ``N|`` row per personnummer, then deleted)."""
        cache_key = (str(getattr(self.t, "name", "")), self.club_id)
        if cache_key in _INDEXED:
            return
        if self.t.get(self.club_id, PNR_BUCKETS_META) is None:
            holders: dict[str, list[tuple[bool, str]]] = {}
            for p in self.records.all_persons():
                pnr = p.data.get("personnummer")
                if pnr and not p.moved_to:
                    holders.setdefault(pnr_key(self.club_id, pnr), []).append((not p.active, p.external_id))
            # active persons first, then the smallest id
            by_bucket: dict[str, dict[str, str]] = {}
            for d, c in holders.items():
                by_bucket.setdefault(bucket_of(d), {})[d] = min(c)[1]
            for name, entries in by_bucket.items():
                self._merge_bucket(name, entries)
            shared = sum(1 for c in holders.values() if len(c) > 1)
            if shared:
                log.warning(
                    "club %s: %d personnummer are held by more than one externalId (stored before "
                    "duplicates were refused); each is indexed to one of them",
                    self.club_id,
                    shared,
                )
            self._drop_earlier_layout()
            self.t.upsert({"PartitionKey": self.club_id, "RowKey": PNR_BUCKETS_META, "built_at": self.now()})
        _INDEXED.add(cache_key)

    def _merge_bucket(self, name: str, entries: dict[str, str]) -> None:
        """Add entries to a bucket without overriding a claim made meanwhile (ETag-guarded)."""
        from shared.tables import Conflict

        while True:
            bucket = self._read_buckets({name})[name]
            merged = entries | bucket.holders
            if bucket.etag is not None and merged == bucket.holders:
                return
            try:
                self.t.submit([self._bucket_op(name, merged, bucket.etag)])
                return
            except Conflict:
                continue  # a writer came first: read it and merge again

    def _drop_earlier_layout(self) -> None:
        """Delete the earlier layout's rows. In a transaction, a row already gone (a concurrent
        build deleted it) fails the whole batch: then one by one, where absent is fine."""
        from shared.tables import Conflict

        flt, params = key_range(N)
        old = [r["RowKey"] for r in self.t.query(flt, parameters=params, partition_key=self.club_id, select=["RowKey"])]
        try:
            self.t.submit([Op("delete", {"PartitionKey": self.club_id, "RowKey": rk}) for rk in old])
        except Conflict:
            for rk in old:
                self.t.delete(self.club_id, rk)
        self.t.delete(self.club_id, PNR_INDEX_META)
