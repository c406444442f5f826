"""Mirror read API over the queue's projections (logic in shared.nif.mirror).

The ``/full`` twins are admin-level (master key) and include the fields NIF marks secret; the
host reserves routes starting with ``admin``, so the twins are suffixed instead.
"""

import azure.functions as func

from functions._glue import http

bp = func.Blueprint()


@bp.route(route="nif/clubs/{clubId}/members", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def nif_mirror_club_members(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.mirror import club_members

    return http(club_members, req, context)


@bp.route(route="nif/clubs/{clubId}/members/full", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def nif_mirror_club_members_full(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.mirror import club_members_full

    return http(club_members_full, req, context)


@bp.route(route="nif/persons/{personId}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def nif_mirror_person(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.mirror import person

    return http(person, req, context)


@bp.route(route="nif/persons/{personId}/full", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def nif_mirror_person_full(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.nif.mirror import person_full

    return http(person_full, req, context)
