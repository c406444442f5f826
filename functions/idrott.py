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


# ---- nightly export: the timer fans out, the queue trigger exports one club per message -----------
@bp.timer_trigger(arg_name="timer", schedule="%IDROTTONLINE_EXPORT_SCHEDULE%", run_on_startup=False, use_monitor=True)
def idrott_export_timer(timer: func.TimerRequest) -> None:
    from shared.idrott.fanout import fan_out

    fan_out(timer)


@bp.queue_trigger(arg_name="msg", queue_name="%IDROTTONLINE_EXPORT_QUEUE%", connection="AzureWebJobsStorage")
def idrott_export_worker(msg: func.QueueMessage) -> None:
    from shared.idrott.worker import handle_work_item

    handle_work_item(msg.get_body(), message_id=msg.id or "", dequeue_count=msg.dequeue_count or 1)


# ---- the fan-out's admin routes ---------------------------------------------------------------------
@bp.route(route="idrottonline/export", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
def idrott_export_all(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.idrott.fanout_api import post_export_all

    return http(post_export_all, req, context)


@bp.route(route="idrottonline/export/nights/{night}", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def idrott_export_night(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.idrott.fanout_api import get_night

    return http(get_night, req, context)


@bp.route(route="idrottonline/export/overdue", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def idrott_export_overdue(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.idrott.fanout_api import get_overdue

    return http(get_overdue, req, context)


@bp.route(route="idrottonline/export/poison", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def idrott_export_poison(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.idrott.fanout_api import get_poison

    return http(get_poison, req, context)


@bp.route(route="idrottonline/export/poison/requeue", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
def idrott_export_poison_requeue(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.idrott.fanout_api import post_poison_requeue

    return http(post_poison_requeue, req, context)
