"""Validation of a bulk intake request, item by item: one bad record never rejects the others.

Errors are ``(index in the request, field path, message)`` with JSON (camelCase) paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel

from shared.idrott.models import Activity

BulkError = tuple[int, str, str]  # (index in the request, field path, message)
M = TypeVar("M", bound=BaseModel)


def _loc(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc)


def validate_bulk[M: BaseModel](
    model: type[M], items: Sequence[Any], *, today: date | None = None
) -> tuple[list[tuple[int, M]], list[BulkError]]:
    """Validate each item; return ``(valid [(index, model)], errors [(index, path, message)])``.

    Paths use the JSON (camelCase) names, dotted, list positions as numbers
    (``sports.0.sportId``); an error on the record itself has path ``""``.
    """
    ok: list[tuple[int, M]] = []
    errors: list[BulkError] = []
    ctx = {"today": today} if today else None
    for i, item in enumerate(items):
        try:
            ok.append((i, model.model_validate(item, context=ctx)))
        except ValidationError as exc:
            for e in exc.errors(include_url=False, include_input=False):
                errors.append((i, _loc(_camel_loc(e["loc"])), e["msg"]))
    return ok, errors


def _camel_loc(loc: Sequence[Any]) -> list[Any]:
    return [to_camel(p) if isinstance(p, str) else p for p in loc]


def check_participants_resolve(
    activities: Iterable[Activity], known_person_ids: Iterable[str] | set[str]
) -> list[BulkError]:
    """Participants whose ``personId`` is not a known person of the club:
    ``[(activity index, "participants.<i>.personId", message)]``."""
    known = known_person_ids if isinstance(known_person_ids, (set, frozenset)) else set(known_person_ids)
    out: list[BulkError] = []
    for ai, act in enumerate(activities):
        for pi, p in enumerate(act.participants):
            if p.person_id not in known:
                out.append((ai, f"participants.{pi}.personId", f"personId {p.person_id} is not a person of this club"))
    return out
