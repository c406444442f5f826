"""traceId confirmation: a queue message carrying a recorded membership request's traceId
confirms that request (:func:`shared.nif.membership_requests.confirm_request`)."""

from __future__ import annotations

import logging
from typing import Protocol

from shared.nif.queue import entities
from shared.nif.queue.apply import Touched

log = logging.getLogger("shared.nif.queue")

#: Entities whose bodies may carry the ``traceId`` of a membership request.
TRACED_ENTITIES = ("TpPerson", "TpMembership", "TpActiveMembership")


class Confirm(Protocol):
    """Marks the request of ``trace_id`` confirmed; False if no such request was recorded."""

    def __call__(self, trace_id: str, *, person_id: int | None, membership_id: int | None, source: str) -> bool: ...


def default_confirm(trace_id: str, *, person_id: int | None, membership_id: int | None, source: str) -> bool:
    """The default :class:`Confirm`: the membership-request store (imported on first use)."""
    from shared.nif import membership_requests

    return membership_requests.confirm_request(
        trace_id, person_id=person_id, membership_id=membership_id, source=source
    )


def confirm_traces(confirm: Confirm, touched: list[Touched]) -> None:
    """Confirm the request of every traceId carried by a message that touched these rows."""
    for t in touched:
        if t.entity not in TRACED_ENTITIES:
            continue
        for env in t.envs:
            trace = entities.field(env.body, *entities.TRACE_ID)
            if not isinstance(trace, str) or not trace.strip():
                continue
            data = t.after.data
            person_id: int | None
            membership_id: int | None
            if t.entity == "TpPerson":
                person_id, membership_id = env.object_id, entities.as_id(entities.field(data, *entities.MEMBERSHIP_ID))
            elif t.entity == "TpMembership":
                person_id, membership_id = entities.as_id(entities.field(data, *entities.PERSON_ID)), env.object_id
            else:
                person_id, membership_id = (
                    entities.as_id(entities.field(data, *entities.PERSON_ID)),
                    entities.as_id(entities.field(data, *entities.MEMBERSHIP_ID)),
                )
            found = confirm(trace.strip(), person_id=person_id, membership_id=membership_id, source=f"queue:{t.entity}")
            log.info(
                "NIF queue traceId confirmation",
                extra={
                    "fields": {
                        "entity": t.entity,
                        "objectId": env.object_id,
                        "messageId": env.message_id,
                        "matched": bool(found),
                    }
                },
            )
