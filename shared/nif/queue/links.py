"""Index and merge-map rows (pure): ``NifLinks`` and ``NifMergeMap`` keys, and merge chains.

Keys (docs/queue.md, "Table data model"):

- ``NifLinks``: ``club-<clubId>`` / ``m-<membershipId>`` (a club's memberships, one partition per
  club) and ``person-<personId // 1000>`` / ``<personId>-<m|a|c|p>-<objectId>`` (a person's
  memberships, active memberships, contacts and periods: one range query).
- ``NifMergeMap``: partition ``person`` / ``membership`` / ``activeMembership``, RowKey the old id,
  ``SurvivorId`` (and ``SurvivorPersonId`` for memberships).
"""

from __future__ import annotations

from typing import Any

from shared.nif.queue import entities

#: Link kind per entity, the ``<m|a|c|p>`` of a person link's RowKey.
LINK_KINDS = {
    "TpMembership": "m",
    "TpActiveMembership": "a",
    "TpPersonContactInformation": "c",
    "TpMembershipPeriod": "p",
}
#: Merge-map partition of the merged-away ids each membership entity carries.
MERGE_KINDS = {"TpMembership": "membership", "TpActiveMembership": "activeMembership"}


def link_rows(entity: str, object_id: int, links: dict[str, int]) -> list[dict[str, Any]]:
    """``NifLinks`` rows for a row's links (:func:`shared.nif.queue.entities.links_of`)."""
    kind = LINK_KINDS[entity]
    oid = entities.pad(object_id)
    rows = []
    pid = links.get("personId")
    if pid:
        rows.append(
            {
                "PartitionKey": f"person-{entities.bucket(pid)}",
                "RowKey": f"{entities.pad(pid)}-{kind}-{oid}",
                "Kind": kind,
                "ObjectId": object_id,
                "PersonId": pid,
            }
        )
    if entity == "TpMembership" and links.get("clubId"):
        rows.append(
            {
                "PartitionKey": f"club-{links['clubId']}",
                "RowKey": f"m-{oid}",
                "Kind": "m",
                "ObjectId": object_id,
                "PersonId": pid,
            }
        )
    return rows


def merge_row(kind: str, old_id: int, survivor: int, survivor_person: int | None = None) -> dict[str, Any]:
    """``NifMergeMap`` row: ``old_id`` of ``kind`` was merged into ``survivor``."""
    row: dict[str, Any] = {
        "PartitionKey": kind,
        "RowKey": entities.pad(old_id),
        "OldId": old_id,
        "SurvivorId": survivor,
    }
    if kind != "person":
        row["SurvivorPersonId"] = survivor_person
    return row


def survivor_of(person_map: dict[int, int], person_id: int) -> int:
    """The person ``person_id`` ends up as: follow old → new through ``person_map`` until an id
    that was not merged away (chains followed, cycle-safe)."""
    seen = {person_id}
    while person_id in person_map:
        person_id = person_map[person_id]
        if person_id in seen:
            break
        seen.add(person_id)
    return person_id
