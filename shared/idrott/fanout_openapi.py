"""OpenAPI operations of the export fan-out's admin routes (shared/idrott/fanout_api.py)."""

from shared.openapi import Operation

_TAGS = ("idrottonline",)
_503 = {503: "Storage (tables or the export queue) unavailable; retry after Retry-After"}

OPERATIONS = [
    Operation(
        "POST",
        "/api/idrottonline/export",
        "Enqueue every enabled Swedish club's export now",
        auth="admin",
        tags=_TAGS,
        response_status=202,
        description="One work item per enabled SE club on IDROTTONLINE_EXPORT_QUEUE (`reason: manual`); the "
        "queue-triggered worker runs them. Not deduplicated per night; a club whose run is in progress is "
        "skipped by its lock. 207 when some clubs could not be enqueued (`failed`).",
        responses={207: "Some clubs could not be enqueued", **_503},
    ),
    Operation(
        "GET",
        "/api/idrottonline/export/nights/{night}",
        "The roll call of one night: every enabled club's status",
        auth="admin",
        tags=_TAGS,
        description="`night` is RF's calendar date (Europe/Stockholm), `YYYY-MM-DD`. Each club's row: `queued`, "
        "`running`, `succeeded`, `empty`, `failed` or `skipped`, with attempts, batchId and errorCode. "
        "`notRolled` lists enabled clubs without a row (registered after the timer ran).",
        responses={422: "Not a date", **_503},
    ),
    Operation(
        "GET",
        "/api/idrottonline/export/overdue",
        "Clubs without a successful export for IDROTTONLINE_OVERDUE_NIGHTS nights",
        auth="admin",
        tags=_TAGS,
        responses=_503,
    ),
    Operation(
        "GET",
        "/api/idrottonline/export/poison",
        "The export queue's poison items (first 32) and their approximate count",
        auth="admin",
        tags=_TAGS,
        description="Work items whose export failed on every delivery, or that are not work items at all "
        "(`readable: false`). They carry ids only.",
        responses=_503,
    ),
    Operation(
        "POST",
        "/api/idrottonline/export/poison/requeue",
        "Put poison items back on the export queue",
        auth="admin",
        tags=_TAGS,
        query=(("clubId", "string", "Only these clubs (comma-separated); all readable items when absent."),),
        description="Fix the cause first (the ledger's errorCode). Unreadable items stay in the poison queue.",
        responses={422: "Invalid clubId", **_503},
    ),
]
