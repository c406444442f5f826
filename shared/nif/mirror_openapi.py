"""OpenAPI operations of the NIF mirror read API (shared/nif/mirror.py)."""

from shared.openapi import Operation, int_schema

_TAGS = ("nif-mirror",)
_MEMBERS_QUERY = (
    ("status", "string", "Comma list of active, cancelled, ended, merged, or `all` (default active,cancelled)."),
    ("branchId", int_schema(0), "Only members holding an active membership in this branch."),
    (
        "pageSize",
        int_schema(1, 500, 100),
        "1-500, default 100. A page may hold fewer items; continue while a token is returned.",
    ),
    ("continuationToken", "string", "Opaque token from the previous page."),
)
_MEMBERS_DESC = (
    "Memberships of the club mirrored from NIF's entity queue, with person, contact and active "
    "(branch) memberships. Merged persons resolve to the survivor (`mergedFromPersonId`)."
)
_SECRET = (
    " Fields NIF marks secret (isSecretAddress/Email/MobilePhone/PrivatePhone/WorkPhone) are omitted; "
    "the `/full` twin (master key) includes them."
)

OPERATIONS = [
    Operation(
        "GET",
        "/api/nif/clubs/{clubId}/members",
        "Mirrored club members (allow-listed fields only, none marked secret)",
        description=_MEMBERS_DESC + _SECRET,
        query=_MEMBERS_QUERY,
        tags=_TAGS,
        responses={400: "clubId, filter or continuation token invalid"},
    ),
    Operation(
        "GET",
        "/api/nif/clubs/{clubId}/members/full",
        "Mirrored club members with every stored field (admin)",
        auth="admin",
        description=_MEMBERS_DESC,
        query=_MEMBERS_QUERY,
        tags=_TAGS,
        responses={400: "clubId, filter or continuation token invalid"},
    ),
    Operation(
        "GET",
        "/api/nif/persons/{personId}",
        "Mirrored person (allow-listed fields only, none marked secret)",
        description="An old PersonId of a merged person resolves to the survivor." + _SECRET,
        tags=_TAGS,
        responses={404: "Person not in the mirror"},
    ),
    Operation(
        "GET",
        "/api/nif/persons/{personId}/full",
        "Mirrored person with every stored field (admin)",
        auth="admin",
        description="An old PersonId of a merged person resolves to the survivor.",
        tags=_TAGS,
        responses={404: "Person not in the mirror"},
    ),
]
