"""Binding glue shared by the blueprints: azure.functions types ↔ shared.http, lazily.

Handlers are named as ``"package.module:attribute"`` strings and imported on first call, so
importing ``function_app`` costs little more than importing ``azure.functions``.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import azure.functions as func

from shared.logs import install_redaction

install_redaction()

_resolved: dict[str, Callable[..., Any]] = {}


def resolve(target: str) -> Callable[..., Any]:
    """``"shared.nif.api:get_sports"`` → the callable (cached)."""
    fn = _resolved.get(target)
    if fn is None:
        module, _, attr = target.partition(":")
        fn = getattr(importlib.import_module(module), attr)
        _resolved[target] = fn
    return fn


def http(target: str, req: func.HttpRequest, context: func.Context | None = None) -> func.HttpResponse:
    """Run an HTTP handler from shared/ and convert its answer (errors become problem JSON)."""
    from shared.http import ApiRequest, dispatch

    api_req = ApiRequest(
        method=req.method.upper(),
        url=req.url,
        route_params=dict(req.route_params or {}),
        params=dict(req.params or {}),
        headers={k.lower(): v for k, v in (req.headers or {}).items()},
        body=req.get_body() or b"",
        invocation_id=getattr(context, "invocation_id", None),
        function_name=getattr(context, "function_name", None),
    )
    res = dispatch(resolve(target), api_req)
    return func.HttpResponse(body=res.body, status_code=res.status, headers=res.headers)


def call(target: str, *args: Any, **kwargs: Any) -> Any:
    """Run a non-HTTP handler (queue, timer) from shared/; exceptions propagate to the host."""
    return resolve(target)(*args, **kwargs)
