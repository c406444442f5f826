"""Health probe: the only anonymous route."""

import azure.functions as func

from functions._glue import http

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return http("shared.health:health", req, context)
