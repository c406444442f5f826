"""The local host's routing and key checks (it stands in for the Functions host in tests and make run)."""

from __future__ import annotations

import json

import httpx

from devtools.host import _route_regex


def test_route_templates() -> None:
    rx = _route_regex("nif/clubs/{clubId}/membership-requests/{traceId}")
    m = rx.match("nif/clubs/19430/membership-requests/7AC07206-471E")
    assert m and m.groupdict() == {"clubId": "19430", "traceId": "7AC07206-471E"}
    assert not rx.match("nif/clubs/19430/membership-requests")
    assert _route_regex("x/{id:int}").match("x/12") and not _route_regex("x/{id:int}").match("x/ab")


def test_liveness_is_anonymous_and_needs_no_configuration(app_host) -> None:
    res = app_host.request("GET", "/api/health", key=None)
    assert res.status_code == 200 and json.loads(res.get_body())["status"] == "pass"


def test_readiness_is_anonymous_and_reports_missing_configuration(app_host) -> None:
    res = app_host.request("GET", "/api/health/ready", key=None)
    assert res.status_code == 503
    body = json.loads(res.get_body())
    assert body["status"] == "fail" and "NIF_API_BASE_URL" in body["checks"]["configuration"]["detail"]


def test_readiness_passes_with_storage_and_configuration(app_host, storage, env) -> None:
    env.set(NIF_API_BASE_URL="http://127.0.0.1:1", NIF_SUBSCRIPTION_KEY="local-sub-key")
    res = app_host.request("GET", "/api/health/ready", key=None)
    assert res.status_code == 200, res.get_body()
    assert json.loads(res.get_body())["checks"]["tableStorage"] == {"status": "pass"}


def test_unknown_route_is_404(app_host) -> None:
    assert app_host.request("GET", "/api/does/not/exist").status_code == 404
    assert app_host.request("GET", "/nothing").status_code == 404


def test_keys_are_enforced_for_every_non_health_route(app_host) -> None:
    for route in app_host.routes:
        if route.auth_level == "anonymous":
            continue
        path = "/api/" + route.route.replace("{", "").replace("}", "").replace(":int", "")
        path = "/api/" + "/".join("1" if "{" in seg else seg for seg in route.route.split("/"))
        method = route.methods[0]
        assert app_host.request(method, path, key=None).status_code == 401, route.name
        assert app_host.request(method, path, key="wrong").status_code == 401, route.name
        if route.auth_level == "admin":
            assert app_host.request(method, path, key="function").status_code == 401, route.name


def test_served_over_real_http(app_host) -> None:
    server = app_host.serve(port=0)
    try:
        port = server.server_address[1]
        res = httpx.get(f"http://127.0.0.1:{port}/api/health/ready", timeout=5)
        assert res.status_code == 503 and res.headers["content-type"].startswith("application/json")
        assert httpx.get(f"http://127.0.0.1:{port}/api/nope", timeout=5).status_code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_any_method_is_routed_not_refused_by_the_server(app_host) -> None:
    server = app_host.serve(port=0)
    try:
        port = server.server_address[1]
        for method in ("OPTIONS", "TRACE", "PATCH", "QUERY", "PROPFIND"):
            res = httpx.request(method, f"http://127.0.0.1:{port}/api/health", timeout=5)
            assert res.status_code == 404, method
    finally:
        server.shutdown()
        server.server_close()
