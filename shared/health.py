"""Health probes: ``GET /api/health`` (liveness) and ``GET /api/health/ready`` (readiness).

- **Liveness** answers 200 as soon as the worker can run a function: no settings, no storage,
  nothing that loads pydantic or an Azure SDK. It is what a probe or an uptime monitor should poll,
  and it is the first request of the cold-start benchmark (bench/bench_cold_start.py).
- **Readiness** checks that the configuration is present and valid and that Table Storage answers
  (200 / 503). Its first call pays for loading Settings and the Table SDK and for a storage round
  trip; monitors that alert on configuration or storage should poll this one.
"""

from __future__ import annotations

import logging

from shared.http import ApiRequest, ApiResponse, json_response

log = logging.getLogger(__name__)


def live(req: ApiRequest) -> ApiResponse:
    """The worker is up and runs functions."""
    return json_response({"status": "pass"}, headers={"Cache-Control": "no-store"})


def ready(req: ApiRequest) -> ApiResponse:
    """Configuration present and valid, Table Storage reachable."""
    from pydantic import ValidationError

    from shared.config import get_settings

    checks: dict[str, dict[str, str]] = {}
    try:
        settings = get_settings()
    except ValidationError as exc:
        names = sorted({str(e["loc"][0]) for e in exc.errors() if e.get("loc")})
        checks["configuration"] = {"status": "fail", "detail": "invalid settings: " + ", ".join(names)}
        return json_response({"status": "fail", "checks": checks}, 503)

    missing = [
        name
        for name, value in (
            ("NIF_API_BASE_URL", settings.NIF_API_BASE_URL),
            ("NIF_SUBSCRIPTION_KEY", settings.NIF_SUBSCRIPTION_KEY),
            (
                "DATA_TABLES_CONNECTION or DATA_TABLES_ENDPOINT",
                settings.DATA_TABLES_CONNECTION or settings.DATA_TABLES_ENDPOINT,
            ),
        )
        if not value
    ]
    checks["configuration"] = (
        {"status": "fail", "detail": "missing: " + ", ".join(missing)} if missing else {"status": "pass"}
    )
    if settings.DATA_TABLES_CONNECTION or settings.DATA_TABLES_ENDPOINT:
        from shared.tables import StorageError, get_table_store

        try:
            get_table_store().ping()
            checks["tableStorage"] = {"status": "pass"}
        except StorageError as exc:
            log.warning("health: table storage unreachable: %s", exc)
            checks["tableStorage"] = {"status": "fail", "detail": "unreachable"}
    else:
        checks["tableStorage"] = {"status": "fail", "detail": "not configured"}
    ok = all(c["status"] == "pass" for c in checks.values())
    return json_response(
        {"status": "pass" if ok else "fail", "checks": checks},
        200 if ok else 503,
        headers={"Cache-Control": "no-store"},
    )
