"""Operational routes: the health probes (the only anonymous routes) and the OpenAPI document."""

import azure.functions as func

from functions._glue import http

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.health import live

    return http(live, req, context)


@bp.route(route="health/ready", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health_ready(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.health import ready

    return http(ready, req, context)


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def openapi_document(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.openapi import get_openapi

    return http(get_openapi, req, context)
