"""Rows derived from applied projection rows: links, the person-merge map, merged marks.

Written after the rows' own projection write, every step idempotent:

- :func:`write_links`: ``NifLinks`` index rows (club → memberships, person → memberships,
  active memberships, contacts, periods). Stale index rows are harmless (readers check the
  projection row), so they are never deleted.
- :func:`write_merges`: person merge (reference 6.5). ``mergedPersonIds`` /
  ``mergedMembershipIds`` / ``mergedActiveMembershipIds`` write ``NifMergeMap`` rows, and the
  memberships of a merged-away person are marked ``MergedInto`` (ETag-conditional), whichever of
  the merge and the membership's end arrives first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.nif.queue import entities
from shared.nif.queue.apply import MAX_CONFLICT_RETRIES, ConflictRetriesExhausted, Touched, projection_table
from shared.nif.queue.cache import RowCache
from shared.nif.queue.links import MERGE_KINDS, link_rows, merge_row, survivor_of
from shared.nif.queue.pools import links_pool, write_per_partition
from shared.nif.queue.rows import entity_to_state, is_ended, state_to_entity
from shared.tables_contract import Op

if TYPE_CHECKING:
    from shared.tables_contract import Row, Storage

#: Field names of the merged-away ids each entity may carry.
_MERGED_IDS = {
    "TpPerson": entities.MERGED_PERSONS,
    "TpMembership": entities.MERGED_MEMBERSHIPS,
    "TpActiveMembership": entities.MERGED_ACTIVE,
}

#: ``(membership entity, object id, survivor PersonId)``: a row to mark ``MergedInto``.
Mark = tuple[str, int, int]


def write_links(store: Storage, touched: list[Touched], *, redelivered: bool) -> None:
    """Index rows of freshly written rows (new ones, or whose links changed; all on redelivery)."""
    ops: list[Op] = []
    for t in touched:
        links = entities.links_of(t.entity, t.after.data)
        old_links = entities.links_of(t.entity, t.before.data) if t.before is not None else {}
        if links and (redelivered or links != old_links or t.before is None):
            ops.extend(Op("upsert", r) for r in link_rows(t.entity, t.after.object_id, links))
    if ops:
        write_per_partition(store.table(entities.LINKS_TABLE), ops, pool=links_pool)


def _newly_merged(t: Touched, *, redelivered: bool) -> list[int]:
    """Merged-away ids the row carries that it did not carry before (all of them on redelivery)."""
    names = _MERGED_IDS[t.entity]
    new = set(entities.as_ids(entities.field(t.after.data, *names)))
    if not redelivered and t.before is not None:
        new -= set(entities.as_ids(entities.field(t.before.data, *names)))
    return sorted(i for i in new if i != t.after.object_id)


def write_merges(store: Storage, cache: RowCache, touched: list[Touched], *, redelivered: bool) -> None:
    """Merge-map rows and ``MergedInto`` marks for the merges the touched rows announce or end."""
    merge_ops: list[Op] = []
    marks: list[Mark] = []
    ended: list[Touched] = []
    for t in touched:
        after = t.after
        if t.entity == "TpPerson":
            for pid in _newly_merged(t, redelivered=redelivered):
                merge_ops.append(Op("upsert", merge_row("person", pid, after.object_id)))
                marks.extend(_memberships_of_person(store, pid, after.object_id))
        elif t.entity in MERGE_KINDS:
            survivor_person = entities.links_of(t.entity, after.data).get("personId")
            for mid in _newly_merged(t, redelivered=redelivered):
                merge_ops.append(Op("upsert", merge_row(MERGE_KINDS[t.entity], mid, after.object_id, survivor_person)))
                if survivor_person:
                    marks.append((t.entity, mid, survivor_person))
            if is_ended(after) and after.merged_into is None:
                ended.append(t)
    if merge_ops:
        write_per_partition(store.table(entities.MERGE_TABLE), merge_ops)
    if ended:
        marks.extend(_merged_ends(store, ended))
    for entity, object_id, survivor in marks:
        _mark_merged(store, cache, entity, object_id, survivor)


def _memberships_of_person(store: Storage, person_id: int, survivor: int) -> list[Mark]:
    links = store.table(entities.LINKS_TABLE)
    p = entities.pad(person_id)
    out = []
    for row in links.query(
        "RowKey ge @lo and RowKey lt @hi",
        parameters={"lo": p + "-", "hi": p + "."},
        partition_key=f"person-{entities.bucket(person_id)}",
    ):
        kind = row.get("Kind")
        if kind == "m":
            out.append(("TpMembership", int(row["ObjectId"]), survivor))
        elif kind == "a":
            out.append(("TpActiveMembership", int(row["ObjectId"]), survivor))
    return out


def _merged_ends(store: Storage, ended: list[Touched]) -> list[Mark]:
    """Ended memberships whose person (or membership id) was merged away → merged, not left."""
    persons = {pid for t in ended if (pid := entities.links_of(t.entity, t.after.data).get("personId")) is not None}
    person_map = {old: int(r["SurvivorId"]) for old, r in _lookup(store, "person", persons).items()}
    out = []
    for entity, kind in MERGE_KINDS.items():
        mine = [t for t in ended if t.entity == entity]
        if not mine:
            continue
        mem_map = _lookup(store, kind, {t.after.object_id for t in mine})
        for t in mine:
            pid = entities.links_of(t.entity, t.after.data).get("personId")
            if pid in person_map:
                out.append((entity, t.after.object_id, survivor_of(person_map, pid)))
            elif t.after.object_id in mem_map and mem_map[t.after.object_id].get("SurvivorPersonId"):
                out.append((entity, t.after.object_id, int(mem_map[t.after.object_id]["SurvivorPersonId"])))
    return out


def _lookup(store: Storage, partition: str, ids: set[int]) -> dict[int, Row]:
    """Merge-map rows of ``partition`` for ``ids`` (one point read or one range query)."""
    if not ids:
        return {}
    merge = store.table(entities.MERGE_TABLE)
    ordered = sorted(ids)
    if len(ordered) == 1:
        row = merge.get(partition, entities.pad(ordered[0]))
        return {ordered[0]: row} if row else {}
    rows = merge.query(
        "RowKey ge @lo and RowKey le @hi",
        parameters={"lo": entities.pad(ordered[0]), "hi": entities.pad(ordered[-1])},
        partition_key=partition,
    )
    return {int(r["OldId"]): r for r in rows if int(r["OldId"]) in ids}


def _mark_merged(store: Storage, cache: RowCache, entity: str, object_id: int, survivor: int) -> None:
    """Set ``MergedInto`` on an existing membership row (ETag-conditional, idempotent)."""
    from shared.tables import Conflict

    table_name = entities.PROJECTION_TABLES[entity]
    pk, rk = entities.row_keys(entity, True, object_id)
    table = projection_table(store, table_name)
    for _ in range(MAX_CONFLICT_RETRIES):
        row = table.get(pk, rk)
        if row is None:
            return  # the row's own deletion will look the merge up when it arrives
        state = entity_to_state(row, entity)
        value = max(survivor, state.merged_into or 0)
        if state.merged_into == value:
            return
        state.merged_into = value
        try:
            etag = table.update(state_to_entity(state, pk, rk), etag=row["_etag"], replace=True)
        except Conflict:
            continue
        cache.put((table_name, pk, rk), state, etag)
        return
    raise ConflictRetriesExhausted(f"row {table_name}/{pk}/{rk} kept changing")
