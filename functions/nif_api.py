"""NIF REST wrapper routes: binding glue only (handlers in shared/nif/api.py)."""

import azure.functions as func

from functions._glue import http

bp = func.Blueprint()
_FUNCTION = func.AuthLevel.FUNCTION


@bp.route(route="nif/sports", methods=["GET"], auth_level=_FUNCTION)
def nif_sports(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.api import get_sports

    return http(get_sports, req, context)


@bp.route(route="nif/countries", methods=["GET"], auth_level=_FUNCTION)
def nif_countries(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.api import get_countries

    return http(get_countries, req, context)


@bp.route(route="nif/clubs/{clubId}/organization", methods=["GET"], auth_level=_FUNCTION)
def nif_org_structure(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.api import get_org_structure

    return http(get_org_structure, req, context)


@bp.route(route="nif/clubs/{clubId}/token", methods=["GET"], auth_level=_FUNCTION)
def nif_token_status(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.api import get_token

    return http(get_token, req, context)


@bp.route(route="nif/clubs/{clubId}/token", methods=["POST"], auth_level=_FUNCTION)
def nif_token_refresh(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.api import refresh_token

    return http(refresh_token, req, context)


@bp.route(route="nif/clubs/{clubId}/memberships", methods=["POST"], auth_level=_FUNCTION)
def nif_membership_add(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.api import add_membership

    return http(add_membership, req, context)


@bp.route(route="nif/clubs/{clubId}/membership-requests/{traceId}", methods=["GET"], auth_level=_FUNCTION)
def nif_membership_request(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.api import get_membership_request

    return http(get_membership_request, req, context)
