"""IdrottOnline (RF, Sweden) and club registry: HTTP routes and the nightly export timer.

Glue only: each body hands the binding to a handler in shared/ named by a lazy string.
Register with ``app.register_functions(idrott.bp)`` in function_app.py.
"""

import azure.functions as func

from functions._glue import http

bp = func.Blueprint()


# ---- club registry (admin key) -------------------------------------------------------------------
@bp.route(route="clubs/{clubId}", methods=["PUT"], auth_level=func.AuthLevel.ADMIN)
def clubs_put(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.idrott.api import put_club

    return http(put_club, req, context)


@bp.route(route="clubs/{clubId}", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def clubs_get(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.idrott.api import get_club

    return http(get_club, req, context)


# ---- intake (function key) ------------------------------------------------------------------------
@bp.route(route="idrottonline/clubs/{clubId}/persons", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
def idrott_persons_put(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.idrott.api import put_persons

    return http(put_persons, req, context)


@bp.route(
    route="idrottonline/clubs/{clubId}/persons/{externalId}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION
)
def idrott_person_delete(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.idrott.api import delete_person

    return http(delete_person, req, context)


@bp.route(route="idrottonline/clubs/{clubId}/activities", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
def idrott_activities_put(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.idrott.api import put_activities

    return http(put_activities, req, context)


@bp.route(
    route="idrottonline/clubs/{clubId}/activities/{activityId}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION
)
def idrott_activity_delete(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.idrott.api import delete_activity

    return http(delete_activity, req, context)


# ---- ledger, manual run, preview ------------------------------------------------------------------
@bp.route(route="idrottonline/clubs/{clubId}/exports", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def idrott_exports_get(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.idrott.api import get_exports

    return http(get_exports, req, context)


@bp.route(route="idrottonline/clubs/{clubId}/exports/full", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def idrott_exports_full_get(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    # the ledger with error details (hosts, users, secret names): the host tells a handler which
    # key was used only through the route's auth level, hence an admin-level twin, as nif …/full
    from shared.idrott.api import get_exports_full

    return http(get_exports_full, req, context)


@bp.route(route="idrottonline/clubs/{clubId}/export", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
def idrott_export_post(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.idrott.api import post_export

    return http(post_export, req, context)


@bp.route(route="idrottonline/clubs/{clubId}/export/preview", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def idrott_export_preview(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.idrott.api import get_preview

    return http(get_preview, req, context)


# ---- nightly export -------------------------------------------------------------------------------
@bp.timer_trigger(arg_name="timer", schedule="%IDROTTONLINE_EXPORT_SCHEDULE%", run_on_startup=False, use_monitor=True)
def idrott_export_timer(timer: func.TimerRequest) -> None:
    from shared.idrott.schedule import run_scheduled

    run_scheduled(timer)
