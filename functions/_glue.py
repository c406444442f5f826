"""Binding glue shared by the blueprints: ``azure.functions`` types ↔ ``shared.http``.

Each function body imports its handler from ``shared/`` (an import inside the body is as lazy as
a string name, so importing ``function_app`` costs little more than importing
``azure.functions``, and an editor or type checker can follow it) and passes it here.

Every HTTP function goes through :func:`http`, which puts the handler behind its route's policy
(``shared.auth``, docs/security.md). :data:`AUTH_MODE` is read from the environment once, when the
host indexes the app, because the auth level of an HTTP trigger is binding metadata the host fixes
at indexing (unlike a schedule, it cannot name an app setting): ``tokens`` makes every HTTP trigger anonymous at the
host (:func:`apply_auth_mode`) and the app then checks tokens and keys itself; ``keys`` (the
default, and the answer to any other value) leaves the levels as declared. Changing an app setting
restarts the app in Azure, so the host's levels and the app's checks always follow the same value.
The read is a dictionary lookup: no I/O, nothing that can fail the import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

if TYPE_CHECKING:
    from shared.http import Handler


def _indexed_auth_mode() -> str:
    import os  # functions/ imports only the cheapest modules at module level

    return "tokens" if os.environ.get("AUTH_MODE", "").strip().lower() == "tokens" else "keys"


#: ``keys`` or ``tokens``: the mode the host indexed this app with (see the module docstring).
AUTH_MODE = _indexed_auth_mode()


def apply_auth_mode(app: func.FunctionApp, mode: str | None = None) -> None:
    """In ``tokens`` mode make every HTTP trigger of ``app`` anonymous at the host (call after
    registering the blueprints; the app itself then authenticates every request)."""
    if (mode or AUTH_MODE) != "tokens":
        return
    # the builders, not app.get_functions(): that validates names once per app and indexing calls it again
    for builder in app._function_builders:
        trigger = builder._function.get_trigger()
        if trigger is not None and trigger.get_binding_name() == "httpTrigger":
            trigger.auth_level = func.AuthLevel.ANONYMOUS  # type: ignore[attr-defined]


def http(handler: Handler, req: func.HttpRequest, context: func.Context | None = None) -> func.HttpResponse:
    """Run an HTTP handler from shared/ behind its route's policy and convert its answer (errors
    become problem JSON)."""
    from shared.auth import guard
    from shared.http import ApiRequest, dispatch

    function_name = getattr(context, "function_name", None)
    api_req = ApiRequest(
        method=req.method.upper(),
        url=req.url,
        route_params=dict(req.route_params or {}),
        params=dict(req.params or {}),
        headers={k.lower(): v for k, v in (req.headers or {}).items()},
        body=req.get_body() or b"",
        invocation_id=getattr(context, "invocation_id", None),
        function_name=function_name,
    )
    res = dispatch(guard(handler, function_name, AUTH_MODE), api_req)
    return func.HttpResponse(body=res.body, status_code=res.status, headers=res.headers)
