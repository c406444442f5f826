"""OpenAPI 3.1 document assembled from the areas' operation lists and their pydantic models.

Each area declares ``OPERATIONS: list[Operation]`` in a module listed in :data:`OPERATION_MODULES`;
``tests/test_openapi.py`` checks that the document and the registered functions name the same
routes and methods.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.problems import PROBLEM_CONTENT_TYPE

OPERATION_MODULES: tuple[str, ...] = (
    "shared.health_openapi",
    "shared.nif.openapi_ops",
    "shared.nif.mirror_openapi",
    "shared.idrott.openapi_ops",
    "shared.nif.payments.openapi_ops",
    "shared.idrott.fanout_openapi",
)

Auth = Literal["anonymous", "function", "admin"]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # "/api/nif/clubs/{clubId}/memberships"
    summary: str
    auth: Auth = "function"
    request_model: Any = None  # pydantic model class (or None)
    response_model: Any = None  # pydantic model class, or None for free-form JSON
    response_status: int = 200
    responses: dict[int, str] = field(default_factory=dict)  # extra status → description (problems)
    tags: tuple[str, ...] = ()
    description: str | None = None
    #: (name, JSON type or a whole schema such as ``int_schema(1, 500)``, description)
    query: tuple[tuple[str, str | dict[str, Any], str], ...] = ()
    response_content_type: str = "application/json"


def int_schema(minimum: int, maximum: int | None = None, default: int | None = None) -> dict[str, Any]:
    """The schema of an integer parameter with the bounds ``ApiRequest.int_param`` enforces."""
    out: dict[str, Any] = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        out["maximum"] = maximum
    if default is not None:
        out["default"] = default
    return out


_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "nifCode": {"type": "integer", "description": "NIF's own error code, where NIF defines one."},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "message"],
                "properties": {
                    "path": {"type": "string"},
                    "message": {"type": "string"},
                    "code": {"type": ["integer", "string"]},
                },
            },
        },
    },
}


def _schema_ref(model: Any, components: dict[str, Any]) -> dict[str, Any]:
    from pydantic import TypeAdapter

    adapter = TypeAdapter(model)
    schema = adapter.json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    title = schema.get("title") or getattr(model, "__name__", None)
    if title and schema.get("type") == "object":
        components[title] = schema
        return {"$ref": f"#/components/schemas/{title}"}
    return schema


def build_document(operations: list[Operation] | None = None, *, version: str = "1.0.0") -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``operations`` (default: every area's list)."""
    ops = operations if operations is not None else all_operations()
    components: dict[str, Any] = {"Problem": _PROBLEM_SCHEMA}
    paths: dict[str, Any] = {}
    for op in ops:
        item: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(op)}
        if op.description:
            item["description"] = op.description
        if op.tags:
            item["tags"] = list(op.tags)
        params = [
            {"name": name, "in": "path", "required": True, "schema": _path_schema(op.path, name)}
            for name in _path_params(op.path)
        ] + [
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": {"type": typ} if isinstance(typ, str) else typ,
                "description": desc,
            }
            for name, typ, desc in op.query
        ]
        if params:
            item["parameters"] = params
        if op.request_model is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema_ref(op.request_model, components)}},
            }
        ok: dict[str, Any] = {"description": "Success"}
        if op.response_model is not None:
            ok["content"] = {op.response_content_type: {"schema": _schema_ref(op.response_model, components)}}
        elif op.response_content_type:
            ok["content"] = {op.response_content_type: {"schema": {}}}
        responses: dict[str, Any] = {str(op.response_status): ok}
        problem = {"content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        defaults = {400: "Malformed request", 422: "Validation failed"} if op.request_model else {}
        # shared.http.dispatch answers any route so when storage is down or a setting is missing
        defaults[503] = "Storage unavailable (retry after Retry-After) or a required setting missing"
        if op.auth != "anonymous":
            defaults[401] = "Missing or invalid key or bearer token"
            defaults[403] = "The caller may not act for this club, is read-only, or is not an administrator"
        for status, desc in {**defaults, **op.responses}.items():
            responses[str(status)] = {"description": desc, **problem}
        item["responses"] = responses
        item["security"] = SECURITY[op.auth]
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "idrettsbro",
            "version": version,
            "description": "NIF and IdrottOnline integration functions. Errors are RFC 9457 problem details.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "masterKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-functions-key",
                    "description": "Admin-level (host master) key.",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An OpenID Connect access token of the configured issuer (AUTH_ISSUER; "
                    "discovery at <issuer>/.well-known/openid-configuration) for AUTH_AUDIENCE, listing the "
                    "caller's clubs; roles: read-only, all clubs, admin. Accepted when AUTH_MODE=tokens "
                    "(docs/security.md).",
                },
            },
        },
    }


#: The security requirement of each auth level: any one of the schemes listed (docs/security.md). An
#: admin route takes a bearer token only with the admin role.
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "anonymous": [],
    "admin": [{"masterKey": []}, {"bearer": []}],
    "function": [{"functionKey": []}, {"masterKey": []}, {"bearer": []}],
}


def _path_schema(path: str, name: str) -> dict[str, Any]:
    """NIF's club and person ids are positive integers (``ApiRequest.int_param(..., minimum=1)``);
    every other path parameter is text."""
    if path.startswith("/api/nif/") and name in ("clubId", "personId"):
        return int_schema(1)
    return {"type": "string"}


def _path_params(path: str) -> list[str]:
    import re

    return re.findall(r"{([^}:]+)(?::[^}]*)?}", path)


def _operation_id(op: Operation) -> str:
    import re

    words = re.sub(r"[{}]", "", op.path.removeprefix("/api/")).replace("/", " ").replace("-", " ").split()
    return op.method.lower() + "".join(w[:1].upper() + w[1:] for w in words)


def all_operations() -> list[Operation]:
    ops: list[Operation] = []
    for name in OPERATION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # area not present
            raise
        ops.extend(module.OPERATIONS)
    return ops


def get_openapi(req: Any) -> dict[str, Any]:
    """HTTP handler for ``GET /api/openapi.json``."""
    return build_document()
