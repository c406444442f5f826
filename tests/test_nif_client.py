"""NIF client: tokens (cache, single flight, refresh on 401, static mode), retries, errors, caches."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from devtools.nif_sandbox import NifSandbox
from shared.config import Settings
from shared.nif.client import NifClient
from shared.nif.errors import NifContractError, NifRejected, NifTimeout, NifUnavailable, parse_nif_error
from shared.nif.tokens import jwt_expiry, plan_refresh
from tests.support import run_in_threads

KEY = "test-subscription-key-123"


def settings(base_url: str = "http://nif.test", **kw: Any) -> Settings:
    return Settings(NIF_API_BASE_URL=base_url, NIF_SUBSCRIPTION_KEY=KEY, **kw)


@pytest.fixture
def sandbox(sensitive):
    sensitive.add(KEY)
    with NifSandbox(subscription_key=KEY, clubs=range(500001, 500006)) as sb:
        yield sb


@pytest.fixture
def client(sandbox):
    c = NifClient(settings(sandbox.base_url), sleep=lambda s: None)
    yield c
    c.close()


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> NifClient:
    return NifClient(settings(**kw), transport=httpx.MockTransport(handler), sleep=lambda s: None)


def token_response(exp: int = 4_000_000_000) -> httpx.Response:
    import base64

    body = base64.urlsafe_b64encode(json.dumps({"exp": exp, "ClubId": "1"}).encode()).rstrip(b"=").decode()
    return httpx.Response(200, json={"token": f"eyJhbGciOiJIUzI1NiJ9.{body}.c2ln"})


# --- pure helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,code",
    [
        (b'{"code": 1007, "message": "Start date cannot be past/future year date."}', 1007),
        (b'{"errorCode": "1010", "errorMessage": "x"}', 1010),
        (b'{"error": {"code": 1018, "message": "Invalid club Id."}}', 1018),
        (b'{"errors": [{"nifCode": 1036}]}', 1036),
        (b"1042", 1042),
        (b'"3001: Membership not found"', 3001),
        (b"Error 1013 - Branch level membership information missing.", 1013),
        (b'{"statusCode": 401, "message": "Access denied"}', None),
        (b"", None),
    ],
)
def test_parse_nif_error_accepts_several_shapes(body: bytes, code: int | None) -> None:
    assert parse_nif_error(body)[0] == code


def test_jwt_expiry_read_without_verification(sandbox) -> None:
    token = sandbox.issue_token(19428)
    exp = jwt_expiry(token)
    assert exp is not None and 3590 < exp - sandbox._clock().timestamp() <= 3600
    assert jwt_expiry("not-a-jwt") is None and jwt_expiry("a.b.c") is None


def test_plan_refresh_uses_margin_and_never_loops() -> None:
    assert plan_refresh(1000, 1000 + 3600, 300) == 1000 + 3300
    assert plan_refresh(1000, None, 300) == 1000 + 3300  # unreadable exp: the seed's 1 hour
    assert plan_refresh(1000, 1000 + 60, 300) == 1000 + 30  # short-lived: half its life


def test_timeouts_and_limits_come_from_settings() -> None:
    c = NifClient(settings(NIF_CONNECT_TIMEOUT_SECONDS=1.5, NIF_READ_TIMEOUT_SECONDS=7, NIF_MAX_CONNECTIONS=9))
    t = c._http.timeout
    assert (t.connect, t.read, t.write, t.pool) == (1.5, 7, 7, 1.5)
    assert c._http._transport._pool._max_connections == 9
    c.close()


# --- tokens ----------------------------------------------------------------------------------------


def test_token_cached_until_exp_minus_margin(sandbox) -> None:
    now = [1_000_000.0]
    sandbox._clock = lambda: __import__("datetime").datetime.fromtimestamp(now[0], __import__("datetime").timezone.utc)
    c = NifClient(settings(sandbox.base_url, NIF_TOKEN_REFRESH_MARGIN_SECONDS=300), clock=lambda: now[0])
    info = c.token_info(19428)
    assert info.mode == "api" and info.clubId == 19428 and info.expiresAt.startswith("1970-01-12")
    assert "token" not in info.model_dump_json().lower().replace("tokeninfo", "")
    now[0] += 3299
    c.token_info(19428)
    assert sandbox.token_fetches[19428] == 1
    now[0] += 2
    c.token_info(19428)
    assert sandbox.token_fetches[19428] == 2
    c.close()


def test_concurrent_calls_fetch_one_token_per_club(client, sandbox) -> None:
    clubs = list(range(500001, 500006))
    with ThreadPoolExecutor(50) as pool:
        list(pool.map(lambda i: client.get_org_structure(clubs[i % 5]) and client.token(clubs[i % 5]), range(200)))
    assert {c: sandbox.token_fetches[c] for c in clubs} == {c: 1 for c in clubs}


def test_401_refreshes_once_and_retries_once(client, sandbox) -> None:
    client.get_org_structure(19428)
    client._cache.clear()
    sandbox.revoke_tokens(19428)
    assert client.get_org_structure(19428).clubId == 19428
    assert sandbox.token_fetches[19428] == 2


def test_401_twice_is_unavailable_not_a_loop() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return token_response() if "/auth/token/" in request.url.path else httpx.Response(401, json={"statusCode": 401})

    c = mock_client(handler)
    with pytest.raises(NifUnavailable):
        c.get_org_structure(7)
    assert calls == ["/api/v1/auth/token/7", "/api/v1/organization/structure"] * 2


def test_forced_refresh_fetches_a_new_token(client, sandbox) -> None:
    client.token_info(19428)
    client.refresh_token(19428)
    assert sandbox.token_fetches[19428] == 2


def test_unknown_club_is_rejected_with_1018(client) -> None:
    with pytest.raises(NifRejected) as exc:
        client.token_info(4242)
    assert exc.value.nif_code == 1018


def test_wrong_subscription_key_is_unavailable(sandbox) -> None:
    c = NifClient(Settings(NIF_API_BASE_URL=sandbox.base_url, NIF_SUBSCRIPTION_KEY="wrong-key-000"))
    with pytest.raises(NifUnavailable) as exc:
        c.token_info(19428)
    assert exc.value.status == 401
    c.close()


def test_static_mode_reads_the_secret_store(sandbox) -> None:
    class Store:
        def __init__(self) -> None:
            self.names: list[str] = []

        def get(self, name: str) -> str:
            self.names.append(name)
            return sandbox.issue_token(19428)

    store = Store()
    c = NifClient(settings(sandbox.base_url, NIF_TOKEN_MODE="static"), secret_store=store)
    assert c.token_info(19428).mode == "static"
    assert c.get_org_structure(19428).clubId == 19428
    assert store.names == ["nif-token-19428"] and sandbox.token_fetches[19428] == 0
    c.close()


def test_static_mode_missing_secret_is_missing_setting(env) -> None:
    from shared.config import MissingSetting

    env.set(NIF_TOKEN_19428=None)
    c = mock_client(lambda r: httpx.Response(500), NIF_TOKEN_MODE="static")
    with pytest.raises(MissingSetting):
        c.token_info(19428)


# --- retries ---------------------------------------------------------------------------------------


def test_get_retried_on_5xx_then_succeeds(client, sandbox) -> None:
    sandbox.inject("/organization/structure", status=503, times=2)
    assert client.get_org_structure(19428).clubId == 19428
    assert sandbox.calls["GET /api/v1/organization/structure"] == 1  # the two faults short-circuit


def test_get_gives_up_after_three_attempts(client, sandbox) -> None:
    sandbox.inject("/organization/structure", status=502, times=5)
    with pytest.raises(NifUnavailable):
        client.get_org_structure(19428)


def test_post_never_retried_on_5xx() -> None:
    posts = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posts.append(1)
            return httpx.Response(502, text="Bad gateway")
        return token_response()

    with pytest.raises(NifUnavailable):
        mock_client(handler).add_membership(7, {"person": {"personId": 1}})
    assert len(posts) == 1


def test_post_read_timeout_is_not_retried_and_is_a_timeout() -> None:
    posts = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posts.append(1)
            raise httpx.ReadTimeout("slow", request=request)
        return token_response()

    with pytest.raises(NifTimeout):
        mock_client(handler).add_membership(7, {})
    assert len(posts) == 1


def test_post_retried_once_when_connection_never_established() -> None:
    posts = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posts.append(1)
            if len(posts) == 1:
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(200, json={"personId": 1, "membershipId": 5, "traceId": "T-1"})
        return token_response()

    assert mock_client(handler).add_membership(7, {}).membershipId == 5
    assert len(posts) == 2


def test_real_read_timeout_against_sandbox(sandbox) -> None:
    c = NifClient(settings(sandbox.base_url, NIF_READ_TIMEOUT_SECONDS=0.2), sleep=lambda s: None)
    c.token_info(19428)
    sandbox.inject("/membership", delay=0.6, status=500)
    with pytest.raises(NifTimeout):
        c.add_membership(19428, {"person": {"personId": 8756934}})
    c.close()


def test_connection_refused_is_unavailable() -> None:
    from devtools.nif_sandbox import NifSandbox as _S

    sb = _S().start()
    url = sb.base_url
    sb.stop()
    c = NifClient(settings(url), sleep=lambda s: None)
    with pytest.raises(NifUnavailable):
        c.token_info(19428)


# --- responses ---------------------------------------------------------------------------------------


def test_business_code_in_a_200_body_is_a_rejection() -> None:
    c = mock_client(lambda r: token_response() if r.method == "GET" else httpx.Response(200, json={"code": 1034}))
    with pytest.raises(NifRejected) as exc:
        c.add_membership(7, {})
    assert exc.value.nif_code == 1034


def test_non_json_200_is_a_contract_error() -> None:
    c = mock_client(lambda r: token_response() if "token" in r.url.path else httpx.Response(200, text="<html>"))
    with pytest.raises(NifContractError):
        c.get_org_structure(7)


def test_invalid_shape_is_a_contract_error() -> None:
    c = mock_client(lambda r: token_response() if "token" in r.url.path else httpx.Response(200, json=[1, 2]))
    with pytest.raises(NifContractError):
        c.get_org_structure(7)


def test_headers_sent_on_club_calls() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return token_response() if "token" in request.url.path else httpx.Response(200, json={"clubId": 7})

    mock_client(handler, NIF_DEVELOPER_USER_ID="donald-duck-idrettsforbundet-no").get_org_structure(7)
    token_req, call = seen
    assert token_req.headers["Ocp-Apim-Subscription-Key"] == KEY
    assert token_req.url.params["developerUserId"] == "donald-duck-idrettsforbundet-no"
    assert call.headers["ClubId"] == "7" and call.headers["Authorization"].startswith("eyJ")
    assert call.headers["Ocp-Apim-Subscription-Key"] == KEY


def test_reference_data_cached(client, sandbox) -> None:
    for _ in range(3):
        client.get_sports(19428)
        client.get_countries(500001)
        client.get_org_structure(19428)
    client.get_org_structure(1111111)
    assert sandbox.calls["GET /api/v1/sports"] == 1
    assert sandbox.calls["GET /api/v1/countries"] == 1
    assert sandbox.calls["GET /api/v1/organization/structure"] == 2  # per club


def test_cache_expires(sandbox) -> None:
    now = [0.0]
    c = NifClient(settings(sandbox.base_url), clock=lambda: now[0] + sandbox._clock().timestamp())
    c.get_org_structure(19428)
    now[0] += 3601
    c.get_org_structure(19428)
    c.get_sports(19428)
    now[0] += 23 * 3600
    c.get_sports(19428)
    assert sandbox.calls["GET /api/v1/organization/structure"] == 2
    assert sandbox.calls["GET /api/v1/sports"] == 1
    c.close()


def test_client_is_thread_safe_for_mixed_calls(client) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            client.get_countries(19428) if i % 2 else client.token(19428)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    run_in_threads(work, 20)
    assert errors == []
