"""OpenAPI operations of the club registry and the IdrottOnline routes (see shared/idrott/api.py)."""

from shared.clubs import Club, ClubIn
from shared.idrott.models import Activity, Person
from shared.openapi import Operation, int_schema

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
        description=_BULK % "persons" + " A club holds one externalId per personnummer (IdrottOnline matches "
        "persons by it): a record whose personnummer another externalId holds, or an earlier record of the "
        "request holds, is refused with error code `personnummer-conflict` and listed in `conflicts` "
        "(`{index, id, existingExternalId}`); 409 when every rejected record is such a conflict. To move a "
        'person to a new externalId, send the record with `"replacesExternalId": "<old id>"` (same '
        "personnummer): one transaction stores it and turns the old id into an alias.",
        responses={**_CLUB, 409: "Not a Swedish (SE) club, or every rejected record conflicts (personnummer)"},
    ),
    Operation(
        "DELETE",
        "/api/idrottonline/clubs/{clubId}/persons/{externalId}",
        "The member leaves: exported with every sport IsActive=false (never a deletion)",
        tags=_TAGS,
        description="Any stored id can be given (URL-encoded), also one the import format cannot carry "
        "(stored before ids were checked as a whole) or an id left by a re-key: such a record was never "
        "exported under that id and is removed (`removed: true`).",
        responses={404: "Club or person not registered", 409: "Not a Swedish (SE) club"},
    ),
    Operation(
        "PUT",
        "/api/idrottonline/clubs/{clubId}/activities",
        "Bulk upsert activities with participants",
        request_model=list[Activity],
        tags=_TAGS,
        description=_BULK % "activities" + " Every participant must be a person already sent to "
        "this club (`[i].participants[j].personId`). An activity is exported with all its participants in "
        "one file, so `[i].participants` is refused when the activity with every participant as a largest "
        "possible person might exceed IDROTTONLINE_MAX_FILE_BYTES (the message says how many fit).",
        responses=_CLUB,
    ),
    Operation(
        "DELETE",
        "/api/idrottonline/clubs/{clubId}/activities/{activityId}",
        "Delete an activity: exported as OptionType=Delete",
        tags=_TAGS,
        description="Any stored id can be given (URL-encoded); one the import format cannot carry (stored "
        "before ids were checked as a whole) was never exported and is removed (`removed: true`).",
        responses={404: "Club or activity not registered", 409: "Not a Swedish (SE) club"},
    ),
    Operation(
        "GET",
        "/api/idrottonline/clubs/{clubId}/exports",
        "Ledger of export runs, newest first",
        tags=_TAGS,
        description="Each run's files (with `uploaded` as the server confirmed each one) and skipped "
        "records. A failed or abandoned run shows `errorCode` and a plain sentence in `error` "
        "(docs/idrottonline.md, error codes); the technical detail is in `…/exports/full` (admin).",
        query=(("limit", int_schema(1, 500, 50), "Runs to return, 1-500 (default 50)."),),
        responses=_CLUB,
    ),
    Operation(
        "GET",
        "/api/idrottonline/clubs/{clubId}/exports/full",
        "Ledger of export runs with error details (hosts, users, secret names)",
        auth="admin",
        tags=_TAGS,
        description="The ledger plus `errorDetail` per run. Admin-level twin of `…/exports`.",
        query=(("limit", int_schema(1, 500, 50), "Runs to return, 1-500 (default 50)."),),
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
