"""RFC 9457 problem details: the one error shape of the HTTP API.

Domain code raises :class:`Problem`; the HTTP layer (``shared.http.dispatch``) renders it as
``application/problem+json``. ``nifCode`` carries NIF's own error code where NIF defines one, and
``errors`` lists field-level validation failures with their JSON paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://idrettsbro.dev/problems/"


@dataclass(frozen=True)
class FieldError:
    """One invalid field: ``path`` is a JSON path such as ``person.email`` or ``[3].startTime``."""

    path: str
    message: str
    code: int | str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "message": self.message}
        if self.code is not None:
            out["code"] = self.code
        return out


@dataclass
class Problem(Exception):
    """An error answer. ``type_slug`` becomes ``<PROBLEM_TYPE_BASE><slug>``."""

    status: int
    title: str
    detail: str | None = None
    type_slug: str | None = None
    nif_code: int | None = None
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail or self.title)

    @property
    def type(self) -> str:
        return PROBLEM_TYPE_BASE + self.type_slug if self.type_slug else "about:blank"

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.nif_code is not None:
            body["nifCode"] = self.nif_code
        if self.errors:
            body["errors"] = [e.to_dict() for e in self.errors]
        body.update(self.extra)
        return body


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def bad_request(detail: str, *, slug: str = "bad-request", errors: Iterable[FieldError] = ()) -> Problem:
    return Problem(400, _phrase(400), detail, slug, errors=list(errors))


def not_found(detail: str) -> Problem:
    return Problem(404, _phrase(404), detail, "not-found")


def conflict(detail: str) -> Problem:
    return Problem(409, _phrase(409), detail, "conflict")


def validation_problem(
    errors: Iterable[FieldError],
    detail: str = "The request is not valid.",
    *,
    nif_code: int | None = None,
    slug: str = "validation",
    extra: dict[str, Any] | None = None,
) -> Problem:
    """422 with field errors; ``nif_code`` when the failure maps to one NIF code."""
    return Problem(
        422, "Unprocessable Content", detail, slug, nif_code=nif_code, errors=list(errors), extra=extra or {}
    )


def json_path(loc: Iterable[Any], prefix: str = "") -> str:
    """``("person", "email")`` → ``person.email``; ``(3, "startTime")`` → ``[3].startTime``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "$"


def field_errors_from_pydantic(exc: Any, *, prefix: str = "") -> list[FieldError]:
    """Field errors from a ``pydantic.ValidationError`` (no input values echoed: they may be personal)."""
    errors = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = [p for p in err.get("loc", ()) if p not in ("body",)]
        msg = err.get("msg", "invalid")
        errors.append(FieldError(json_path(loc, prefix), msg, err.get("type")))
    return errors


def from_pydantic(exc: Any, *, prefix: str = "", detail: str = "The request is not valid.") -> Problem:
    return validation_problem(field_errors_from_pydantic(exc, prefix=prefix), detail)
