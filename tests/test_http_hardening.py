"""Issue 9 (8, 11): integers from a request are exact and bounded before they reach a handler or a table.

- Route and query integers are ASCII digits only (a leading ``-`` only where negatives are
  allowed): ``/nif/clubs/1%0A/members`` is not club 1, it is a 400 problem naming ``clubId``.
- Every integer of every JSON request body is bounded in the OpenAPI document and by the model,
  within Edm.Int64 (the widest integer Table Storage holds): ``PUT clubs/x1`` with
  ``nifOrganisationId: 9223372036854775808`` was a 500 (the SDK's ``TypeError``), now a 422.
- Every route with a JSON body refuses duplicate keys and 5 000-digit integers with a 400
  (``shared/jsonsafe.py``; the membership route has its own cases in test_nif_api.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.http import ApiRequest, dispatch
from shared.openapi import all_operations, build_document

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _req(**kw: Any) -> ApiRequest:
    return ApiRequest(method="GET", url="http://h/api/x", **kw)


def _problem(status: int, content_type: str | None, raw: bytes) -> dict:
    assert content_type is not None and content_type.startswith("application/problem+json"), content_type
    body = json.loads(raw)
    assert body["status"] == status and body["title"] and body["type"], body
    return body


# --- int_param ----------------------------------------------------------------------------------
NOT_DIGITS = [
    "1\n",  # the issue's /nif/clubs/1%0A/members
    "1\r\n",
    "\n1",
    " 1",
    "1 ",
    "\t1",
    "1\x00",
    "1\u00a0",  # no-break space
    "1\u2028",  # line separator (str.strip removes it too)
    "+1",
    "1_000",
    "0x1",
    "1e3",
    "1.0",
    "١",  # Arabic-Indic one: isdigit() and int() accept it
    "１",  # fullwidth one
    "²",
    "--1",
    "1-",
]


@pytest.mark.parametrize("raw", NOT_DIGITS, ids=repr)
@pytest.mark.parametrize("where", ["route", "query"])
def test_int_param_accepts_only_ascii_digits(raw: str, where: str) -> None:
    source = {"route_params": {"clubId": raw}} if where == "route" else {"params": {"clubId": raw}}
    res = dispatch(lambda r: {"id": r.int_param("clubId", where=where, minimum=1)}, _req(**source))
    problem = _problem(400, res.content_type, res.body)
    assert res.status == 400
    assert "'clubId'" in problem["detail"]
    assert [e["path"] for e in problem["errors"]] == ["clubId"]


@pytest.mark.parametrize("raw", ["-1", "-0", "-19428"])
def test_minus_sign_only_where_negatives_are_allowed(raw: str) -> None:
    res = dispatch(lambda r: {"id": r.int_param("branchId", minimum=0)}, _req(route_params={"branchId": raw}))
    assert res.status == 400 and _problem(400, res.content_type, res.body)["errors"][0]["path"] == "branchId"
    ok = dispatch(lambda r: {"id": r.int_param("delta")}, _req(route_params={"delta": raw}))
    assert ok.status == 200 and json.loads(ok.body) == {"id": int(raw)}


@pytest.mark.parametrize(
    "raw,expected",
    [("1", 1), ("19428", 19428), ("007", 7), (str(INT64_MAX), INT64_MAX), (str(INT64_MIN), INT64_MIN)],
)
def test_plain_digits_still_parse(raw: str, expected: int) -> None:
    res = dispatch(lambda r: {"id": r.int_param("n")}, _req(route_params={"n": raw}))
    assert res.status == 200 and json.loads(res.body) == {"id": expected}


@pytest.mark.parametrize("raw", [str(INT64_MAX + 1), str(INT64_MIN - 1), "9" * 19, "1" * 20])
def test_int_param_never_exceeds_int64(raw: str) -> None:
    res = dispatch(lambda r: {"id": r.int_param("n")}, _req(route_params={"n": raw}))
    problem = _problem(400, res.content_type, res.body)
    assert problem["errors"][0]["path"] == "n"


def test_out_of_range_message_names_the_bounds() -> None:
    res = dispatch(lambda r: {"id": r.int_param("n", minimum=1)}, _req(route_params={"n": "0"}))
    assert _problem(400, res.content_type, res.body)["errors"][0]["message"] == f"must be between 1 and {INT64_MAX}"
    res = dispatch(lambda r: {"id": r.int_param("n", maximum=5)}, _req(route_params={"n": "6"}))
    assert _problem(400, res.content_type, res.body)["errors"][0]["message"] == f"must be between {INT64_MIN} and 5"


# --- through the registered functions -------------------------------------------------------------
@pytest.mark.parametrize(
    "path,name",
    [
        ("/api/nif/clubs/1%0A/members", "clubId"),
        ("/api/nif/clubs/%201/members/full", "clubId"),
        ("/api/nif/clubs/1/members?pageSize=10%0A", "pageSize"),
        ("/api/nif/clubs/1/members?branchId=-0", "branchId"),
        ("/api/nif/persons/5%0A", "personId"),
        ("/api/nif/clubs/19428%0A/token", "clubId"),
        ("/api/nif/clubs/%2B19428/organization", "clubId"),
    ],
)
def test_routes_refuse_integers_with_whitespace_or_signs(app_host, storage, path: str, name: str) -> None:
    res = app_host.request("GET", path, key="master")
    problem = _problem(400, res.headers.get("Content-Type"), res.get_body())
    assert res.status_code == 400, (path, problem)
    assert [e["path"] for e in problem["errors"]] == [name]


@pytest.mark.parametrize(
    "value",
    [2**63, 2**63 + 12345, 10**30, -(2**63) - 1, 2**31, 0, -1, True, "19428", "19428\n", 19428.0],
    ids=repr,
)
def test_club_registry_refuses_unstorable_or_foreign_org_ids(app_host, storage, value: Any) -> None:
    res = app_host.request(
        "PUT", "/api/clubs/x1", key="master", json_body={"country": "NO", "nifOrganisationId": value}
    )
    problem = _problem(422, res.headers.get("Content-Type"), res.get_body())
    assert res.status_code == 422
    assert [e["path"] for e in problem["errors"]] == ["nifOrganisationId"]
    assert app_host.request("GET", "/api/clubs/x1", key="master").status_code == 404  # nothing stored


def test_club_registry_takes_the_largest_nif_id(app_host, storage) -> None:
    body = {"country": "NO", "nifOrganisationId": 2**31 - 1}
    assert app_host.request("PUT", "/api/clubs/x1", key="master", json_body=body).status_code == 201
    res = app_host.request("GET", "/api/clubs/x1", key="master")
    assert res.status_code == 200 and json.loads(res.get_body())["nifOrganisationId"] == 2**31 - 1


def test_a_club_stored_before_the_bound_stays_readable(storage) -> None:
    from shared import clubs

    storage.table(clubs.TABLE).upsert(
        {
            "PartitionKey": clubs.PARTITION,
            "RowKey": "old1",
            "country": "NO",
            "enabled": True,
            "nif_organisation_id": 2**40,
        }
    )
    club = clubs.get_club("old1")
    assert club is not None and club.nif_organisation_id == 2**40


# --- the contract: every body integer is bounded ------------------------------------------------
def _body_integers(doc: dict) -> list[tuple[str, dict]]:
    """``(where, schema)`` of every integer schema reachable from a request body of ``doc``."""
    components = doc["components"]["schemas"]
    found: list[tuple[str, dict]] = []

    def walk(node: Any, where: str, seen: frozenset[str]) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in seen:
                    walk(components[name], name, seen | {name})
            if node.get("type") == "integer" or "integer" in (node.get("type") or []):
                found.append((where, node))
            for key, value in node.items():
                if key != "$ref":
                    walk(value, f"{where}.{key}", seen)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]", seen)

    for path, item in doc["paths"].items():
        for method, op in item.items():
            for content in (op.get("requestBody") or {}).get("content", {}).values():
                walk(content["schema"], f"{method.upper()} {path}", frozenset())
    return found


def test_every_request_body_integer_is_bounded_within_int64() -> None:
    """A new integer field without bounds is caught here, before a caller finds the 500."""
    integers = _body_integers(build_document(all_operations()))
    assert len(integers) >= 5, integers  # the walk reached the models (ClubIn, MembershipRequest, intake)
    unbounded = [
        f"{where}: {schema}"
        for where, schema in integers
        if not (
            isinstance(schema.get("minimum", schema.get("exclusiveMinimum")), int)
            and isinstance(schema.get("maximum", schema.get("exclusiveMaximum")), int)
            and INT64_MIN <= schema.get("minimum", schema.get("exclusiveMinimum"))
            and schema.get("maximum", schema.get("exclusiveMaximum")) <= INT64_MAX
        )
    ]
    assert not unbounded, "request-body integers without bounds within Edm.Int64:\n" + "\n".join(unbounded)


# --- strict JSON on every body route ---------------------------------------------------------------
def _body_routes() -> list[tuple[str, str]]:
    doc = build_document(all_operations())
    return sorted(
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if op.get("requestBody")
    )


@pytest.mark.parametrize(
    "raw",
    [b'{"country": "NO", "country": "SE"}', b'[{"externalId": "a", "externalId": "b"}]', b"[" + b"9" * 5000 + b"]"],
    ids=["duplicate key", "duplicate key in a list", "5000 digits"],
)
def test_every_body_route_refuses_duplicate_keys_and_huge_numbers(app_host, storage, raw: bytes) -> None:
    import uuid

    from shared.clubs import ClubIn, put_club
    from tests.idrott_support import ORGNR

    se_club = {"country": "SE", "rfForeningsnummer": "1", "organisationNumber": ORGNR, "rfGuid": str(uuid.uuid4())}
    put_club("x1", ClubIn.model_validate({**se_club, "enabled": False}))  # intake routes read the body of a known club
    routes = _body_routes()
    assert ("PUT", "/api/clubs/{clubId}") in routes
    for method, path in routes:
        url = path.replace("{clubId}", "19428" if path.startswith("/api/nif/") else "x1")
        res = app_host.request(method, url, body=raw, key="master", headers={"Content-Type": "application/json"})
        problem = _problem(400, res.headers.get("Content-Type"), res.get_body())
        assert res.status_code == 400, (method, url, problem)


def test_nif_ids_beyond_int64_are_refused_not_stored() -> None:
    """An id NIF answers with is stored (membership requests); one outside Edm.Int64 is a
    validation error of NIF's answer (502 to the caller), never a TypeError in the Table SDK."""
    import pydantic

    from shared.nif.models import NifId

    adapter = pydantic.TypeAdapter(NifId)
    assert adapter.validate_python(2**63 - 1) == 2**63 - 1
    for bad in (2**63, -(2**63) - 1, 2.0**70, 10**30):
        with pytest.raises(pydantic.ValidationError):
            adapter.validate_python(bad)
