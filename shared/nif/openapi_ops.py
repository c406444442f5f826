"""OpenAPI operations of the NIF REST wrapper (``/api/openapi.json`` itself is in health_openapi)."""

from shared.nif.models import (
    INT32_MAX,
    Country,
    MembershipRequest,
    MembershipRequestRecord,
    MembershipResult,
    OrgStructure,
    Sport,
    TokenInfo,
)
from shared.openapi import Operation, int_schema

_TAGS = ("nif",)
_NIF_ERRORS = {
    404: "Unknown club (nifCode 1018)",
    502: "NIF unavailable, failed, or refused our credentials",
    504: "NIF did not answer in time",
}
_CLUB_QUERY = (
    ("clubId", int_schema(1, INT32_MAX), "Club whose NIF token is used (NIF requires one for reference data)."),
)

OPERATIONS = [
    Operation(
        "GET",
        "/api/nif/sports",
        "NIF sports with their child sports (cached 24 h)",
        response_model=list[Sport],
        responses={400: "clubId missing or not an integer", **_NIF_ERRORS},
        tags=_TAGS,
        query=_CLUB_QUERY,
    ),
    Operation(
        "GET",
        "/api/nif/countries",
        "NIF countries: ids for countryId/nationalityId (cached 24 h)",
        response_model=list[Country],
        responses={400: "clubId missing or not an integer", **_NIF_ERRORS},
        tags=_TAGS,
        query=_CLUB_QUERY,
    ),
    Operation(
        "GET",
        "/api/nif/clubs/{clubId}/organization",
        "The club's groups and branches; Allidrett groups have no branches (cached 1 h)",
        response_model=OrgStructure,
        responses={400: "clubId not an integer", **_NIF_ERRORS},
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/api/nif/clubs/{clubId}/token",
        "Status of the club's NIF token (never the token)",
        response_model=TokenInfo,
        responses={400: "clubId not an integer", **_NIF_ERRORS},
        tags=_TAGS,
    ),
    Operation(
        "POST",
        "/api/nif/clubs/{clubId}/token",
        "Fetch a fresh NIF token for the club now",
        response_model=TokenInfo,
        responses={400: "clubId not an integer", **_NIF_ERRORS},
        tags=_TAGS,
    ),
    Operation(
        "POST",
        "/api/nif/clubs/{clubId}/memberships",
        "Add a club, branch or Allidrett group membership (NIF POST Membership)",
        description="Validated locally with NIF's rules first: a 422 problem carries NIF's code in "
        "`nifCode` (1001, 1002, 1007, 1010, 1013, 1036, 1038, 1039) and per-field `errors`. "
        "`status` is `pending_verification` until the person completes NIF's two-phase "
        "verification (24 h), else `completed`.",
        request_model=MembershipRequest,
        response_model=MembershipResult,
        responses={409: "NIF: no club membership for a branch-only request (nifCode 3001)", **_NIF_ERRORS},
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/api/nif/clubs/{clubId}/membership-requests/{traceId}",
        "A recorded membership request and its status (expired after 24 h)",
        response_model=MembershipRequestRecord,
        responses={400: "Malformed clubId or traceId", 404: "No such request for this club"},
        tags=_TAGS,
    ),
]
