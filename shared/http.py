"""Framework-neutral HTTP request/response and the error-mapping dispatcher.

``functions/_glue.py`` converts ``azure.functions.HttpRequest`` into :class:`ApiRequest`, calls
:func:`dispatch`, and converts the :class:`ApiResponse` back. Keeping this module free of
``azure.functions`` lets handlers in ``shared/`` be tested and reused without the host.
:func:`dispatch` is where an exception leaving a handler becomes its answer; the whole map of
exceptions to answers is the docstring of :mod:`shared.problems`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.problems import PROBLEM_CONTENT_TYPE, FieldError, Problem, bad_request, from_pydantic

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
#: ``Retry-After`` (seconds) of the 503 answered when Table Storage is unavailable
#: (``TransientStorageError``). By then the adapter has already retried the call twice (backoff up
#: to 2 s); throttling ("server busy") and brief outages clear within seconds, and a client that
#: waits this long before retrying neither gives up early nor adds load to a recovering account.
STORAGE_RETRY_AFTER_SECONDS = 5
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1  # Edm.Int64
#: Integer parameter text: ``[negatives allowed]`` → pattern. ``[0-9]`` is ASCII (``\d`` is not);
#: ``fullmatch`` leaves no room for a trailing newline (``$`` would).
_INT_TEXT = {False: re.compile(r"[0-9]{1,19}"), True: re.compile(r"-?[0-9]{1,19}")}

M = TypeVar("M")


@dataclass(frozen=True)
class ApiRequest:
    method: str
    url: str
    route_params: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    invocation_id: str | None = None
    function_name: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def route_param(self, name: str) -> str:
        value = self.route_params.get(name)
        if value is None or value == "":
            raise bad_request(f"Missing route parameter '{name}'.")
        return value

    def int_param(
        self,
        name: str,
        *,
        where: str = "route",
        default: int | None = None,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int:
        """An integer route or query parameter; a 400 problem naming it when it isn't one.

        The text must be exactly ASCII digits, with a leading ``-`` only where ``minimum`` allows a
        negative value: no whitespace (``1%0A`` is not club 1), no ``+``, no other digits (``"²"``
        and ``"١"`` pass ``str.isdigit``), at most 19 digits. The value is then bounded by
        ``minimum``/``maximum`` and always by Edm.Int64, the widest integer Table Storage holds.
        """
        source = self.route_params if where == "route" else self.params
        raw = source.get(name)
        if raw is None or raw == "":
            if default is not None:
                return default
            raise bad_request(f"Missing {where} parameter '{name}'.")
        negative_ok = minimum is None or minimum < 0
        if not _INT_TEXT[negative_ok].fullmatch(raw):
            expected = "an integer" if negative_ok else "a non-negative integer"
            raise bad_request(
                f"{where.capitalize()} parameter '{name}' must be {expected} (ASCII digits only).",
                errors=[FieldError(name, f"must be {expected} written with the digits 0-9 only", "integer")],
            )
        value = int(raw)
        low = _INT_MIN if minimum is None else max(minimum, _INT_MIN)
        high = _INT_MAX if maximum is None else min(maximum, _INT_MAX)
        if not low <= value <= high:
            raise bad_request(
                f"{where.capitalize()} parameter '{name}' is out of range.",
                errors=[FieldError(name, f"must be between {low} and {high}", "range")],
            )
        return value

    def json_body(self, model: type[M] | None = None) -> M | Any:
        """Parse the JSON body and, with ``model``, validate it (400 / 422 problems)."""
        if len(self.body) > MAX_BODY_BYTES:
            raise Problem(413, "Content Too Large", f"Body exceeds {MAX_BODY_BYTES} bytes.", type_slug="too-large")
        if not self.body or not self.body.strip():
            raise bad_request("A JSON body is required.", slug="malformed-json")
        ctype = (self.header("content-type") or "application/json").split(";")[0].strip().lower()
        if ctype not in ("application/json", "text/json", "") and not ctype.endswith("+json"):
            raise Problem(415, "Unsupported Media Type", "Send application/json.", type_slug="unsupported-media-type")
        from shared import jsonsafe

        try:
            data = jsonsafe.loads(self.body)
        except jsonsafe.JsonRejected as exc:
            raise bad_request(f"Malformed JSON: {exc}.", slug="malformed-json") from None
        if model is None:
            return data
        from pydantic import BaseModel, TypeAdapter, ValidationError

        try:
            if isinstance(model, type) and issubclass(model, BaseModel):
                return model.model_validate(data)
            return TypeAdapter(model).validate_python(data)
        except ValidationError as exc:
            raise from_pydantic(exc) from None


@dataclass
class ApiResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")


def _to_jsonable(data: Any) -> Any:
    pydantic = sys.modules.get("pydantic")  # not loaded → ``data`` cannot be a model; don't load it for a dict
    if pydantic is not None and isinstance(data, pydantic.BaseModel):
        return data.model_dump(mode="json", by_alias=True, exclude_none=False)
    if isinstance(data, list):
        return [_to_jsonable(x) for x in data]
    return data


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> ApiResponse:
    body = json.dumps(_to_jsonable(data), ensure_ascii=False, default=str).encode()
    h = {"Content-Type": "application/json; charset=utf-8"}
    h.update(headers or {})
    return ApiResponse(status, body, h)


def problem_response(problem: Problem, instance: str | None = None) -> ApiResponse:
    body = json.dumps(problem.to_dict(instance), ensure_ascii=False, default=str).encode()
    headers = {"Content-Type": PROBLEM_CONTENT_TYPE}
    headers.update(problem.headers)
    return ApiResponse(problem.status, body, headers)


Handler = Callable[[ApiRequest], Any]


def dispatch(handler: Handler, req: ApiRequest) -> ApiResponse:
    """Run ``handler`` and map every outcome to a response; never lets an exception escape.

    :class:`Problem` → itself; ``MissingSetting`` → 503 ``not-configured``;
    ``TransientStorageError`` → 503 ``storage-unavailable`` with ``Retry-After``; invalid
    Settings → 503 ``not-configured`` naming the settings only; pydantic's ``ValidationError``
    → 422; anything else → a logged 500 without internals.

    Settings, the storage adapter and pydantic are imported only when an exception needs them
    (each is already loaded whenever a handler could have raised its exception; none of them
    imports an Azure SDK), so a handler that needs none, such as the liveness probe, runs without
    loading them on a cold start.
    """
    from shared.logs import log_context

    instance = req.url.split("?")[0] if req.url else None
    with log_context(invocation_id=req.invocation_id):
        try:
            result = handler(req)
        except Problem as problem:
            if problem.status >= 500:
                log.warning("request failed: %s %s -> %s %s", req.method, instance, problem.status, problem.detail)
            return problem_response(problem, instance)
        except Exception as exc:
            from pydantic import ValidationError

            from shared.config import MissingSetting
            from shared.tables import TransientStorageError

            if isinstance(exc, MissingSetting):
                log.error("configuration missing: %s", exc.name)
                return problem_response(
                    Problem(
                        503,
                        "Service Unavailable",
                        f"The service is not configured: {exc.name}.",
                        type_slug="not-configured",
                    ),
                    instance,
                )
            if isinstance(exc, TransientStorageError):
                log.warning("storage unavailable in %s: %s", req.function_name or instance, exc)
                return problem_response(
                    Problem(
                        503,
                        "Service Unavailable",
                        "Storage is temporarily unavailable; try again later.",
                        type_slug="storage-unavailable",
                        headers={"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)},
                    ),
                    instance,
                )
            if isinstance(exc, ValidationError) and exc.title == "Settings":
                # the app's configuration is invalid, not the request: name the settings, never
                # their values (a value may be a secret), and answer as for a missing one
                names = sorted({str(e["loc"][0]) for e in exc.errors() if e.get("loc")})
                log.error("configuration invalid: %s", ", ".join(names))
                return problem_response(
                    Problem(
                        503,
                        "Service Unavailable",
                        f"The service is misconfigured: {', '.join(names)}.",
                        type_slug="not-configured",
                    ),
                    instance,
                )
            if isinstance(exc, ValidationError):
                return problem_response(from_pydantic(exc), instance)
            log.exception("unhandled error in %s", req.function_name or instance)
            return problem_response(
                Problem(
                    500,
                    "Internal Server Error",
                    "An unexpected error occurred.",
                    type_slug="internal",
                    extra={"invocationId": req.invocation_id} if req.invocation_id else {},
                ),
                instance,
            )
    if isinstance(result, ApiResponse):
        return result
    return json_response(result)
