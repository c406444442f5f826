"""The OpenAPI document covers exactly the registered HTTP functions, and is served."""

from __future__ import annotations

import json
import re

from shared.openapi import build_document


def _registered(app_host) -> set[tuple[str, str]]:
    out = set()
    for r in app_host.routes:
        path = "/api/" + re.sub(r"{([^}:?]+)[^}]*}", r"{\1}", r.route)
        out |= {(m.lower(), path) for m in r.methods}
    return out


def test_document_and_functions_list_the_same_routes(app_host) -> None:
    doc = build_document()
    documented = {(m, p) for p, item in doc["paths"].items() for m in item}
    registered = _registered(app_host)
    assert registered - documented == set(), "registered but not documented"
    assert documented - registered == set(), "documented but not registered"


def test_auth_levels_match_security(app_host) -> None:
    doc = build_document()
    for r in app_host.routes:
        path = "/api/" + re.sub(r"{([^}:?]+)[^}]*}", r"{\1}", r.route)
        for m in r.methods:
            sec = doc["paths"][path][m.lower()]["security"]
            expected = {
                "anonymous": [],
                "admin": [{"masterKey": []}, {"bearer": []}],
                "function": [{"functionKey": []}, {"masterKey": []}, {"bearer": []}],
            }[r.auth_level]
            assert sec == expected, (m, path)


def test_served_document_is_openapi_3_1(app_host) -> None:
    res = app_host.request("GET", "/api/openapi.json")
    assert res.status_code == 200
    doc = json.loads(res.get_body())
    assert doc["openapi"] == "3.1.0" and doc["paths"]
    for path, item in doc["paths"].items():
        for op in item.values():
            refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(op))
            assert all(ref in doc["components"]["schemas"] for ref in refs), path


def test_every_operation_documents_the_503_any_route_can_answer() -> None:
    """shared.http.dispatch turns storage outages and missing settings into 503 problems on every
    route, so every operation lists 503 with the problem schema."""
    for path, item in build_document()["paths"].items():
        for method, op in item.items():
            answer = op["responses"].get("503")
            assert answer is not None, (method, path)
            assert "application/problem+json" in answer["content"], (method, path)
