"""NIF payment routes and the retry timer: binding glue only (handlers in shared/nif/payments/api.py)."""

import azure.functions as func

from functions._glue import http

bp = func.Blueprint()
_FUNCTION = func.AuthLevel.FUNCTION


@bp.route(route="nif/clubs/{clubId}/payments", methods=["POST"], auth_level=_FUNCTION)
def nif_payment_post(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.payments.api import post_payment

    return http(post_payment, req, context)


@bp.route(route="nif/clubs/{clubId}/payments", methods=["GET"], auth_level=_FUNCTION)
def nif_payment_list(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.payments.api import list_payments

    return http(list_payments, req, context)


@bp.route(route="nif/clubs/{clubId}/payments/{externalId}", methods=["GET"], auth_level=_FUNCTION)
def nif_payment_get(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.payments.api import get_payment

    return http(get_payment, req, context)


@bp.route(route="nif/clubs/{clubId}/persons/{personId}/payments", methods=["GET"], auth_level=_FUNCTION)
def nif_person_payments(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.payments.api import get_person_payments

    return http(get_person_payments, req, context)


@bp.route(route="nif/payment-types", methods=["GET"], auth_level=_FUNCTION)
def nif_payment_types(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.payments.api import get_payment_types

    return http(get_payment_types, req, context)


@bp.route(route="nif/payments/retry", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
def nif_payment_retry_now(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.payments.api import retry_now

    return http(retry_now, req, context)


@bp.timer_trigger(arg_name="timer", schedule="%NIF_PAYMENTS_RETRY_SCHEDULE%", run_on_startup=False, use_monitor=True)
def nif_payment_retry_timer(timer: func.TimerRequest) -> None:
    from shared.nif.payments.api import run_timer

    run_timer(timer)
