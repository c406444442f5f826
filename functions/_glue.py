"""Binding glue shared by the blueprints: ``azure.functions`` types ↔ ``shared.http``.

Each function body imports its handler from ``shared/`` (an import inside the body is as lazy as
a string name, so importing ``function_app`` costs little more than importing
``azure.functions``, and an editor or type checker can follow it) and passes it here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

if TYPE_CHECKING:
    from shared.http import Handler


def http(handler: Handler, req: func.HttpRequest, context: func.Context | None = None) -> func.HttpResponse:
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
    res = dispatch(handler, api_req)
    return func.HttpResponse(body=res.body, status_code=res.status, headers=res.headers)
