"""Delta merge (pure): per-field last-writer-wins, tombstones and informational snapshots.

NIF sends deltas (Added/Modified carry only the changed fields), full snapshots
(Informational, just before the change they announce) and deletions. Deliveries repeat and can
arrive out of order, so a row keeps, for every field, the version (enqueued time + sequence
number, :func:`shared.nif.queue.envelope.version_of`) of the change that last set it:

- Added / Modified / Informational: each field present in the body is set when the message is
  newer than that field's version; an explicit ``null`` clears the field. Fields the body does
  not mention are left alone, so a partial delta is completed by the preceding snapshot.
- Added also ends an earlier tombstone; Deleted sets the tombstone (``deleted``, when, by which
  message). Both are guarded by the version of the last add/delete event.
- An older change therefore never overwrites a newer one (it is journaled, not applied), a
  duplicate changes nothing, and any interleaving of the same messages ends in the same state
  (merge is commutative, associative and idempotent: a join-semilattice per field).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from shared.nif.queue.envelope import ChangeType, Envelope

__all__ = ["RowState", "apply_change", "fold"]


@dataclass
class RowState:
    entity: str
    object_id: int
    data: dict[str, Any] = field(default_factory=dict)
    fv: dict[str, str] = field(default_factory=dict)  # field -> version that set it
    version: str = ""  # newest change applied
    deleted: bool = False
    del_v: str = ""  # version of the last Added/Deleted event
    deleted_at: str | None = None  # enqueued time (ISO) of the tombstoning message
    deleted_by: str | None = None  # message id of the tombstoning message
    deleted_seq: int | None = None
    info_version: str = ""  # newest Informational snapshot merged in
    last_message_id: str | None = None
    merged_into: int | None = None  # survivor PersonId when this (membership) row ended by a merge

    def copy(self) -> RowState:
        return copy.deepcopy(self)


def apply_change(state: RowState | None, env: Envelope) -> RowState:
    """Merge one change into a row; returns the new state. Never mutates ``state``."""
    new = state.copy() if state is not None else RowState(entity=env.entity, object_id=env.object_id)
    v = env.version

    for name, value in env.body.items():
        if new.fv.get(name, "") < v:
            new.data[name] = copy.deepcopy(value)
            new.fv[name] = v

    if env.change_type in (ChangeType.ADDED, ChangeType.DELETED) and new.del_v < v:
        new.del_v = v
        if env.change_type is ChangeType.DELETED:
            enq = env.raw.enqueued_time_utc
            new.deleted = True
            new.deleted_at = enq.isoformat() if enq is not None else None
            new.deleted_by = env.message_id
            new.deleted_seq = env.sequence_number
        else:
            new.deleted = False
            new.deleted_at = None
            new.deleted_by = None
            new.deleted_seq = None

    if env.change_type is ChangeType.INFORMATIONAL and new.info_version < v:
        new.info_version = v

    if new.version < v:
        new.version = v
        new.last_message_id = env.message_id
    return new


def fold(envelopes: list[Envelope], state: RowState | None = None) -> RowState | None:
    """Apply several changes of one row (any order gives the same result)."""
    for env in sorted(envelopes, key=lambda e: e.version):
        state = apply_change(state, env)
    return state
