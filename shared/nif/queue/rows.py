"""Projection rows: a merged :class:`~shared.nif.queue.merge.RowState` to a table entity and back.

Few properties on purpose (each costs serialisation in a transaction): the current values in
``data`` (JSON; written through a table opened with ``chunked=True``, so the adapter stores a
value longer than one property holds in pieces, :mod:`shared.tables_contract`), the merge
bookkeeping in ``st`` (JSON), and the promoted columns the readers use (``PersonId``, ``ClubId``,
``BranchId``, ``Deleted``, ``DeletedAt``, ``DeletedBy``, ``SoftDeleted``, ``MergedInto``). Rows
written before the adapter did that carry a long ``data`` as ``data00``, ``data01``… with
``dataChunks``; :func:`row_data` still reads them (a projection write replaces the whole row, so
the next change of such a row rewrites it in the current layout). Layout documented in
docs/queue.md ("Table data model"). Pure: the processor writes these entities, the mirror reads
them.
"""

from __future__ import annotations

import json
from typing import Any

from shared.nif.queue import entities
from shared.nif.queue.merge import RowState

#: The earlier layout of a long ``data``: ``data00``, ``data01``… and their count.
_LEGACY_CHUNKS = "dataChunks"


def state_to_entity(state: RowState, pk: str, rk: str) -> dict[str, Any]:
    """The projection row of ``state``. ``None`` values are not stored."""
    links = entities.links_of(state.entity, state.data)
    soft = entities.as_bool(entities.field(state.data, *entities.SOFT_DELETE))
    return {
        "data": state.data,
        "PartitionKey": pk,
        "RowKey": rk,
        "ObjectId": state.object_id,
        "st": {
            "fv": state.fv,
            "v": state.version,
            "dv": state.del_v,
            "iv": state.info_version,
            "lm": state.last_message_id,
            "ds": state.deleted_seq,
        },
        "Deleted": state.deleted or None,
        "SoftDeleted": soft or None,
        "DeletedAt": state.deleted_at,
        "DeletedBy": state.deleted_by,
        "MergedInto": state.merged_into,
        "PersonId": links.get("personId"),
        "ClubId": links.get("clubId"),
        "BranchId": links.get("branchId"),
    }


def row_data(ent: dict[str, Any]) -> dict[str, Any]:
    """The row's current values (also from a row written in the earlier ``data00``… layout)."""
    n = ent.get(_LEGACY_CHUNKS)
    if n and "data" not in ent:
        return json.loads("".join(ent.get(f"data{i:02d}") or "" for i in range(int(n))))
    return dict(ent.get("data") or {})


def entity_to_state(ent: dict[str, Any], entity: str) -> RowState:
    """The merge state of a stored projection row (inverse of :func:`state_to_entity`)."""
    st = ent.get("st") or {}
    return RowState(
        entity=entity,
        object_id=int(ent.get("ObjectId") or 0),
        data=row_data(ent),
        fv=dict(st.get("fv") or {}),
        version=st.get("v") or "",
        deleted=bool(ent.get("Deleted")),
        del_v=st.get("dv") or "",
        deleted_at=ent.get("DeletedAt"),
        deleted_by=ent.get("DeletedBy"),
        deleted_seq=st.get("ds"),
        info_version=st.get("iv") or "",
        last_message_id=st.get("lm"),
        merged_into=ent.get("MergedInto"),
    )


def row_version(ent: dict[str, Any]) -> str:
    """Version of the newest change applied to a stored row (``""`` if none)."""
    return (ent.get("st") or {}).get("v") or ""


def is_ended(state: RowState) -> bool:
    """Tombstoned, or soft-deleted by a flag in a delta (both end a membership)."""
    return state.deleted or entities.as_bool(entities.field(state.data, *entities.SOFT_DELETE))
