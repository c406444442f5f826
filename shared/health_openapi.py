"""OpenAPI operations of the foundation routes."""

from shared.openapi import Operation

OPERATIONS = [
    Operation("GET", "/api/health", "Configuration present and Table Storage reachable", auth="anonymous",
              responses={503: "Not configured or storage unreachable"}, tags=("ops",)),
    Operation("GET", "/api/openapi.json", "This OpenAPI document", tags=("ops",)),
]
