"""IdrottOnline (RF, Sweden) and club registry: HTTP routes and the nightly export timer.

Glue only: each body hands the binding to a handler in shared/ named by a lazy string.
Register with ``app.register_functions(idrott.bp)`` in function_app.py.
"""

import azure.functions as func

from functions._glue import call, http

bp = func.Blueprint()


# ---- club registry (admin key) -------------------------------------------------------------------
@bp.route(route="clubs/{clubId}", methods=["PUT"], auth_level=func.AuthLevel.ADMIN)
def clubs_put(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return http("shared.idrott.api:put_club", req, context)


@bp.route(route="clubs/{clubId}", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def clubs_get(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return http("shared.idrott.api:get_club", req, context)


# ---- intake (function key) ------------------------------------------------------------------------
@bp.route(route="idrottonline/clubs/{clubId}/persons", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
def idrott_persons_put(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return http("shared.idrott.api:put_persons", req, context)


@bp.route(route="idrottonline/clubs/{clubId}/persons/{externalId}", methods=["DELETE"],
          auth_level=func.AuthLevel.FUNCTION)
def idrott_person_delete(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return http("shared.idrott.api:delete_person", req, context)


@bp.route(route="idrottonline/clubs/{clubId}/activities", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
def idrott_activities_put(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return http("shared.idrott.api:put_activities", req, context)


@bp.route(route="idrottonline/clubs/{clubId}/activities/{activityId}", methods=["DELETE"],
          auth_level=func.AuthLevel.FUNCTION)
def idrott_activity_delete(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return http("shared.idrott.api:delete_activity", req, context)


# ---- ledger, manual run, preview ------------------------------------------------------------------
@bp.route(route="idrottonline/clubs/{clubId}/exports", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def idrott_exports_get(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return http("shared.idrott.api:get_exports", req, context)


@bp.route(route="idrottonline/clubs/{clubId}/export", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
def idrott_export_post(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return http("shared.idrott.api:post_export", req, context)


@bp.route(route="idrottonline/clubs/{clubId}/export/preview", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def idrott_export_preview(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return http("shared.idrott.api:get_preview", req, context)


# ---- nightly export -------------------------------------------------------------------------------
@bp.timer_trigger(arg_name="timer", schedule="%IDROTTONLINE_EXPORT_SCHEDULE%", run_on_startup=False,
                  use_monitor=True)
def idrott_export_timer(timer: func.TimerRequest) -> None:
    call("shared.idrott.export:run_scheduled", timer)
