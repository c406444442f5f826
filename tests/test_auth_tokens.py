"""Bearer tokens: forged and broken ones are 401 without echoing them; JWKS caching and key rotation.

Tokens are minted by the local OIDC issuer (``devtools.oidc_issuer``), whose discovery and JWKS
the app reads over real HTTP. Route-level checks go through the local host with the app in tokens
mode (``tests/test_auth_matrix.py::tokens_host`` explains the set-up; repeated here in small).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from devtools.host import LocalHost
from devtools.oidc_issuer import OidcIssuer
from shared.auth.tokens import Jwks, validate
from shared.config import Settings
from shared.problems import Problem

CLUB = "19428"
URL = f"/api/nif/clubs/{CLUB}/members"


@pytest.fixture(scope="module")
def issuer():
    iss = OidcIssuer().start()
    yield iss
    iss.stop()


@pytest.fixture
def host(app_host, storage, env, issuer, monkeypatch):
    import functions._glue as glue

    env.set(AUTH_MODE="tokens", AUTH_ISSUER=issuer.issuer, AUTH_AUDIENCE=issuer.audience)
    monkeypatch.setattr(glue, "AUTH_MODE", "tokens")
    local = LocalHost(driver=app_host.driver)
    for route in local.routes:
        route.auth_level = "anonymous"
    return local


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_with_public_key(issuer: OidcIssuer) -> str:
    """The classic key-confusion forgery: HMAC keyed with the issuer's public key (PEM)."""
    pem = issuer.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": issuer.kid}).encode())
    body = _b64(json.dumps(issuer.claims(clubs=[CLUB])).encode())
    sig = _b64(hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def _alg_none(issuer: OidcIssuer) -> str:
    return jwt.encode(issuer.claims(clubs=[CLUB]), None, algorithm="none", headers={"kid": issuer.kid})


def _tampered_payload(issuer: OidcIssuer) -> str:
    head, _, sig = issuer.issue(clubs=["1"]).split(".")
    body = _b64(json.dumps(issuer.claims(clubs=[CLUB])).encode())
    return f"{head}.{body}.{sig}"


def _tampered_signature(issuer: OidcIssuer) -> str:
    head, body, sig = issuer.issue(clubs=[CLUB]).split(".")
    flipped = ("A" if sig[10] != "A" else "B").join((sig[:10], sig[11:]))
    return f"{head}.{body}.{flipped}"


FORGERIES = {
    "alg none": _alg_none,
    "HS256 signed with the public key": _hs256_with_public_key,
    "wrong issuer": lambda i: i.issue(clubs=[CLUB], extra={"iss": "http://127.0.0.1:1/other"}),
    "wrong audience": lambda i: i.issue(clubs=[CLUB], extra={"aud": "api://someone-else"}),
    "expired": lambda i: i.issue(clubs=[CLUB], expires_in=-600),
    "nbf in the future": lambda i: i.issue(clubs=[CLUB], extra={"nbf": int(time.time()) + 600}),
    "unknown kid": lambda i: i.issue(clubs=[CLUB], headers={"kid": "not-published"}),
    "tampered payload": _tampered_payload,
    "tampered signature": _tampered_signature,
    "missing clubs claim": lambda i: i.issue(clubs=None),
    "missing sub": lambda i: i.issue(clubs=[CLUB], extra={"sub": None}),
    "not a JWT": lambda i: "eyJhbGciOiJSUzI1NiJ9.not-a-token",
}


@pytest.mark.parametrize("name", list(FORGERIES))
def test_forged_or_broken_token_is_401(host, issuer, name: str) -> None:
    token = FORGERIES[name](issuer)
    res = host.request("GET", URL, headers={"Authorization": f"Bearer {token}"}, key=None)
    assert res.status_code == 401, name
    text = res.get_body().decode()
    problem = json.loads(text)
    assert problem["type"].endswith("/unauthorized") and problem["status"] == 401
    for part in token.split("."):  # no piece of the token is echoed
        assert len(part) < 8 or part not in text


def test_a_good_token_passes_and_skew_is_tolerated(host, issuer) -> None:
    token = issuer.issue(clubs=[CLUB], extra={"nbf": int(time.time()) + 20})  # within the 60 s leeway
    assert host.request("GET", URL, headers={"Authorization": f"Bearer {token}"}, key=None).status_code == 200


def test_other_schemes_are_401(host) -> None:
    res = host.request("GET", URL, headers={"Authorization": "Basic dXNlcjpwYXNz"}, key=None)
    assert res.status_code == 401


def test_symmetric_algorithms_cannot_be_configured(env) -> None:
    env.set(AUTH_ALGORITHMS="RS256,HS256")
    with pytest.raises(ValueError, match="asymmetric"):
        Settings()


# --- JWKS cache and rotation -------------------------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _settings(issuer: OidcIssuer, **more) -> Settings:
    return Settings(AUTH_ISSUER=issuer.issuer, AUTH_AUDIENCE=issuer.audience, **more)


def _ok(token: str, settings: Settings, jwks: Jwks) -> bool:
    try:
        validate(token, settings, jwks)
    except Problem as problem:
        assert problem.status == 401
        return False
    return True


def test_unknown_kid_refresh_is_rate_limited(issuer) -> None:
    settings = _settings(issuer, AUTH_JWKS_MIN_REFRESH_SECONDS=30)
    clock = _Clock()
    jwks = Jwks(settings, clock=clock)
    assert _ok(issuer.issue(clubs=[CLUB]), settings, jwks)
    assert jwks.fetches == 1
    bogus = issuer.issue(clubs=[CLUB], headers={"kid": "made-up"})
    for _ in range(20):
        assert not _ok(bogus, settings, jwks)
    assert jwks.fetches == 1  # within the interval: no refetch
    clock.now += 31
    assert not _ok(bogus, settings, jwks)
    assert jwks.fetches == 2  # one refetch per interval


def test_key_rotation(issuer) -> None:
    """New tokens work after one JWKS refresh; old ones as long as their key is published."""
    settings = _settings(issuer, AUTH_JWKS_MIN_REFRESH_SECONDS=30, AUTH_JWKS_MAX_AGE_SECONDS=600)
    clock = _Clock()
    jwks = Jwks(settings, clock=clock)
    old_kid = issuer.kid
    old = issuer.issue(clubs=[CLUB])
    assert _ok(old, settings, jwks) and jwks.fetches == 1
    issuer.rotate()
    new = issuer.issue(clubs=[CLUB])
    clock.now += 31
    assert _ok(new, settings, jwks) and jwks.fetches == 2  # the unknown kid refreshed the set once
    assert _ok(old, settings, jwks) and jwks.fetches == 2  # the old key is still published
    issuer.retire(old_kid)
    clock.now += 600  # the set's max age: refetched, without the retired key
    assert not _ok(old, settings, jwks)
    assert _ok(new, settings, jwks)


def test_rotation_through_the_app(host, issuer, env) -> None:
    env.set(AUTH_JWKS_MIN_REFRESH_SECONDS=1)
    before = issuer.issue(clubs=[CLUB])
    assert host.request("GET", URL, headers={"Authorization": f"Bearer {before}"}, key=None).status_code == 200
    issuer.rotate()
    time.sleep(1.1)  # past the refresh interval
    after = issuer.issue(clubs=[CLUB])
    assert host.request("GET", URL, headers={"Authorization": f"Bearer {after}"}, key=None).status_code == 200
    assert host.request("GET", URL, headers={"Authorization": f"Bearer {before}"}, key=None).status_code == 200


def test_unreachable_issuer_is_503_not_401(host, env) -> None:
    env.set(AUTH_ISSUER="http://127.0.0.1:9", AUTH_HTTP_TIMEOUT_SECONDS=1)
    issuer = OidcIssuer()  # never started: sign only
    issuer.server = type("S", (), {"server_port": 9})()  # type: ignore[assignment]
    token = issuer.issue(clubs=[CLUB])
    res = host.request("GET", URL, headers={"Authorization": f"Bearer {token}"}, key=None)
    assert res.status_code == 503 and json.loads(res.get_body())["type"].endswith("/auth-unavailable")


def test_token_endpoint_over_http(issuer) -> None:
    import httpx

    res = httpx.post(issuer.issuer + "/token", data={"sub": "staff-1", "clubs": f"{CLUB},77", "roles": ""}, timeout=5)
    token = res.json()["access_token"]
    claims = validate(token, _settings(issuer), Jwks(_settings(issuer)))
    assert claims["clubs"] == [CLUB, "77"] and claims["sub"] == "staff-1"
