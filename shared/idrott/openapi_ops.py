"""OpenAPI operations of the club registry and the IdrottOnline routes (see shared/idrott/api.py)."""

from shared.clubs import Club, ClubIn
from shared.idrott.models import Activity, Person
from shared.openapi import Operation

_TAGS = ("idrottonline",)
_CLUB = {404: "Club not registered", 409: "Not a Swedish (SE) club"}
_BULK = (
    'Body: a JSON array of at most 1 000 records (or {"%s": [...]}). Each record is validated on its '
    "own; valid records are stored, invalid ones are not. All valid → 200 with per-record results. "
    "Some invalid → 422 problem: `errors` list every failure with its field path (e.g. `[3].personnummer`), "
    "`stored` and `rejected` list `{index, id}`; the valid records WERE stored."
)

OPERATIONS = [
    Operation(
        "PUT",
        "/api/clubs/{clubId}",
        "Register or replace a club (shared by NIF and IdrottOnline)",
        auth="admin",
        request_model=ClubIn,
        response_model=Club,
        tags=("clubs",),
        description="Holds the names of the secrets with the SFTP password or private key, never their "
        "values. `sftpHostKey` pins the server key as `<type> <base64>`. 201 when created.",
        responses={201: "Created"},
    ),
    Operation(
        "GET",
        "/api/clubs/{clubId}",
        "A registered club",
        auth="admin",
        response_model=Club,
        tags=("clubs",),
        responses={404: "Club not registered"},
    ),
    Operation(
        "PUT",
        "/api/idrottonline/clubs/{clubId}/persons",
        "Bulk upsert persons (members)",
        request_model=list[Person],
        tags=_TAGS,
        description=_BULK % "persons",
        responses=_CLUB,
    ),
    Operation(
        "DELETE",
        "/api/idrottonline/clubs/{clubId}/persons/{externalId}",
        "The member leaves: exported with every sport IsActive=false (never a deletion)",
        tags=_TAGS,
        responses={404: "Club or person not registered", 409: "Not a Swedish (SE) club"},
    ),
    Operation(
        "PUT",
        "/api/idrottonline/clubs/{clubId}/activities",
        "Bulk upsert activities with participants",
        request_model=list[Activity],
        tags=_TAGS,
        description=_BULK % "activities" + " Every participant must be a person already sent to "
        "this club (`[i].participants[j].personId`).",
        responses=_CLUB,
    ),
    Operation(
        "DELETE",
        "/api/idrottonline/clubs/{clubId}/activities/{activityId}",
        "Delete an activity: exported as OptionType=Delete",
        tags=_TAGS,
        responses={404: "Club or activity not registered", 409: "Not a Swedish (SE) club"},
    ),
    Operation(
        "GET",
        "/api/idrottonline/clubs/{clubId}/exports",
        "Ledger of export runs, newest first",
        tags=_TAGS,
        query=(("limit", "integer", "Runs to return, 1-500 (default 50)."),),
        responses=_CLUB,
    ),
    Operation(
        "POST",
        "/api/idrottonline/clubs/{clubId}/export",
        "Run the club's export now",
        auth="admin",
        tags=_TAGS,
        responses={
            **_CLUB,
            409: "Not SE, disabled, or another run holds the lock",
            502: "The run failed (recorded in the ledger)",
        },
    ),
    Operation(
        "GET",
        "/api/idrottonline/clubs/{clubId}/export/preview",
        "What the next run would send: the XML and an advisory LOK-stöd prognosis per activity",
        tags=_TAGS,
        responses={**_CLUB, 409: "Not SE, or the next run would fail (reason given)"},
    ),
]
