"""The export work item: one message on the export queue, one club to export (pure).

JSON (camelCase), e.g. ``{"clubId": "c-17", "reason": "timer", "night": "2026-12-02",
"requestedAt": "2026-12-02T01:00:00Z"}``. It names the club, why (``timer`` or ``manual``) and, for
the timer, which night (RF's calendar date, :data:`shared.idrott.clock.SWEDISH_TIMEZONE`) it
belongs to; ``deferrals`` counts how often the worker put it back because every export slot was
taken; ``actor`` says who asked for a manual export of every club (``actorKind`` and a token's
``actorSubject``/``actorClientId``, as stored on the run's ledger row). It carries ids only: never
personal data, so a poison queue may be listed to an admin.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

from shared.clubs import CLUB_ID_PATTERN

__all__ = ["MAX_WORK_ITEM_BYTES", "WorkItem", "parse_work_item"]

MAX_WORK_ITEM_BYTES = 4096  # a real item is ~120 bytes; anything bigger is not ours

Reason = Literal["timer", "manual"]
ActorField = Literal["actorKind", "actorSubject", "actorClientId"]


class WorkItem(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    club_id: str = Field(pattern=CLUB_ID_PATTERN)
    reason: Reason
    night: date | None = None
    requested_at: AwareDatetime
    deferrals: int = Field(0, ge=0, le=10_000)
    actor: dict[ActorField, Annotated[str, StringConstraints(min_length=1, max_length=256)]] | None = None

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


def parse_work_item(body: str | bytes) -> WorkItem | None:
    """The work item in a message body, or None when the body is not one (too big, not JSON, a
    wrong field): such a message goes to the poison queue at once, retrying cannot fix it."""
    if len(body) > MAX_WORK_ITEM_BYTES:
        return None
    try:
        item = WorkItem.model_validate_json(body)
    except ValidationError:
        return None
    if item.reason == "timer" and item.night is None:
        return None
    return item
