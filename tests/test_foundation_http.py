"""shared.http / shared.problems: every failure becomes RFC 9457 problem JSON, never an escaped exception."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field

from shared.config import MissingSetting
from shared.http import ApiRequest, dispatch, json_response
from shared.problems import FieldError, Problem, json_path


class Item(BaseModel):
    name: str = Field(max_length=5)
    count: int


def _req(body: bytes = b"", **kw) -> ApiRequest:
    return ApiRequest(method="POST", url="http://h/api/x?y=1", body=body, **kw)


def _problem(res) -> dict:
    assert res.headers["Content-Type"] == "application/problem+json"
    body = json.loads(res.body)
    assert body["status"] == res.status and body["title"] and body["type"]
    return body


def test_problem_shape_with_nif_code_and_field_paths() -> None:
    p = Problem(
        422,
        "Unprocessable Content",
        "bad",
        type_slug="nif-validation",
        nif_code=1010,
        errors=[FieldError("person.email", "required", 1010)],
    )
    res = dispatch(lambda r: (_ for _ in ()).throw(p), _req())
    body = _problem(res)
    assert res.status == 422 and body["nifCode"] == 1010
    assert body["errors"] == [{"path": "person.email", "message": "required", "code": 1010}]
    assert body["instance"] == "http://h/api/x"


@pytest.mark.parametrize(
    "raw,status",
    [
        (b"", 400),
        (b"{", 400),
        (b"\xff\xfe", 400),
        (b"[" * 100000, 400),
        (b'{"name": "ok"}', 422),
        (b'{"name": "toolong", "count": "x"}', 422),
        (b'"just a string"', 422),
        (b"null", 422),
    ],
)
def test_malformed_bodies_are_client_errors(raw: bytes, status: int) -> None:
    res = dispatch(lambda r: r.json_body(Item), _req(raw))
    body = _problem(res)
    assert res.status == status
    if status == 422:
        assert body["errors"] and all("path" in e and "message" in e for e in body["errors"])


def test_validation_error_paths_do_not_echo_input() -> None:
    res = dispatch(lambda r: r.json_body(Item), _req(b'{"name": "19811218-9876", "count": 1}'))
    assert res.status == 422
    assert b"19811218" not in res.body
    assert _problem(res)["errors"][0]["path"] == "name"


def test_wrong_content_type_is_415() -> None:
    res = dispatch(lambda r: r.json_body(Item), _req(b"{}", headers={"content-type": "text/plain"}))
    assert res.status == 415


def test_oversized_body_is_413() -> None:
    res = dispatch(lambda r: r.json_body(), _req(b" " * (8 * 1024 * 1024 + 1)))
    assert res.status == 413


@pytest.mark.parametrize("value", ["abc", "1.5", "", "99999999999999999999999", " 1 2", "²", "١٢٣", "-"])
def test_int_params_reject_non_integers(value: str) -> None:
    res = dispatch(lambda r: {"id": r.int_param("clubId")}, _req(route_params={"clubId": value}))
    assert res.status == 400


def test_int_param_bounds() -> None:
    res = dispatch(lambda r: {"id": r.int_param("clubId", minimum=1)}, _req(route_params={"clubId": "0"}))
    assert res.status == 400
    ok = dispatch(lambda r: {"id": r.int_param("clubId", minimum=1)}, _req(route_params={"clubId": "19430"}))
    assert ok.status == 200 and json.loads(ok.body) == {"id": 19430}


def test_missing_setting_is_503_naming_it() -> None:
    def handler(r):
        raise MissingSetting("NIF_API_BASE_URL")

    res = dispatch(handler, _req())
    assert res.status == 503 and "NIF_API_BASE_URL" in _problem(res)["detail"]


def test_unexpected_error_is_a_problem_without_internals() -> None:
    def handler(r):
        raise RuntimeError("secret internal detail")

    res = dispatch(handler, _req(invocation_id="inv-1"))
    body = _problem(res)
    assert res.status == 500 and "secret internal detail" not in res.body.decode()
    assert body["invocationId"] == "inv-1"


def test_models_and_dicts_become_json() -> None:
    res = dispatch(lambda r: Item(name="a", count=1), _req())
    assert res.status == 200 and json.loads(res.body) == {"name": "a", "count": 1}
    assert json_response([Item(name="b", count=2)]).body == b'[{"name": "b", "count": 2}]'


def test_json_path() -> None:
    assert json_path(("person", "email")) == "person.email"
    assert json_path((3, "startTime")) == "[3].startTime"
    assert json_path(("sports", 0, "branchId")) == "sports[0].branchId"
    assert json_path(()) == "$"
