"""OpenAPI operations of the foundation routes."""

from shared.openapi import Operation

OPERATIONS = [
    Operation(
        "GET",
        "/api/health",
        "Liveness: the worker runs functions (no settings, no storage)",
        auth="anonymous",
        tags=("ops",),
    ),
    Operation(
        "GET",
        "/api/health/ready",
        "Readiness: configuration present and Table Storage reachable",
        auth="anonymous",
        responses={503: "Not configured or storage unreachable"},
        tags=("ops",),
    ),
    Operation("GET", "/api/openapi.json", "This OpenAPI document", tags=("ops",)),
]
