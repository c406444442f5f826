"""Bearer-token validation with PyJWT: the issuer's keys from discovery, and every check PyJWT offers.

Invariant: a token is trusted only when its signature verifies with a key the configured issuer
publishes, under an asymmetric algorithm of the allow-list (``AUTH_ALGORITHMS``), with ``iss``,
``aud``, ``exp``, ``nbf`` (leeway ``AUTH_CLOCK_SKEW_SECONDS``) and ``sub`` all present and right.

Keys: :class:`Jwks` reads ``<issuer>/.well-known/openid-configuration`` (its ``issuer`` must be
the configured one) and the ``jwks_uri`` it names, with ``AUTH_HTTP_TIMEOUT_SECONDS`` on each
fetch. The key set is kept for ``AUTH_JWKS_MAX_AGE_SECONDS``; a token whose ``kid`` is not in it
refetches it once, at most every ``AUTH_JWKS_MIN_REFRESH_SECONDS`` (a flood of made-up kids costs
one fetch per interval, not one per request). A rotated-in key is therefore usable after one
refresh, and an old key for as long as the issuer still publishes it.

Every failure is a 401 problem whose detail is one of a few fixed sentences: neither the token nor
a claim value is ever echoed. An unreachable issuer is a 503 (the caller may be fine; we cannot tell).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from shared.lifecycle import process_wide
from shared.problems import Problem

if TYPE_CHECKING:
    import jwt

    from shared.config import Settings

DISCOVERY_PATH = "/.well-known/openid-configuration"


def unauthorized(detail: str, *, error: str = "invalid_token") -> Problem:
    """401 ``unauthorized`` with a ``WWW-Authenticate`` challenge (RFC 6750); ``detail`` is ours."""
    return Problem(
        401,
        "Unauthorized",
        detail,
        type_slug="unauthorized",
        headers={"WWW-Authenticate": f'Bearer error="{error}"'},
    )


def _issuer_unavailable() -> Problem:
    return Problem(
        503,
        "Service Unavailable",
        "The token issuer's keys cannot be read right now; try again later.",
        type_slug="auth-unavailable",
        headers={"Retry-After": "5"},
    )


class Jwks:
    """The issuer's signing keys, fetched on demand and refreshed on an unknown ``kid`` (rate-limited)."""

    def __init__(self, settings: Settings, *, clock: Any = time.monotonic) -> None:
        if not settings.AUTH_ISSUER:
            from shared.config import MissingSetting

            raise MissingSetting("AUTH_ISSUER")
        self.issuer = settings.AUTH_ISSUER
        self.timeout = settings.AUTH_HTTP_TIMEOUT_SECONDS
        self.max_age = settings.AUTH_JWKS_MAX_AGE_SECONDS
        self.min_refresh = settings.AUTH_JWKS_MIN_REFRESH_SECONDS
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._jwks_uri: str | None = None
        self.fetches = 0  # how many times the key set was read (tests, metrics)

    def _get_json(self, url: str) -> Any:
        import httpx

        try:
            res = httpx.get(url, timeout=self.timeout, follow_redirects=False)
            res.raise_for_status()
            return res.json()
        except (httpx.HTTPError, ValueError):
            raise _issuer_unavailable() from None

    def _refresh(self) -> None:
        import jwt

        if self._jwks_uri is None:
            meta = self._get_json(self.issuer.rstrip("/") + DISCOVERY_PATH)
            if not isinstance(meta, dict) or meta.get("issuer") != self.issuer or not meta.get("jwks_uri"):
                raise _issuer_unavailable()
            self._jwks_uri = str(meta["jwks_uri"])
        data = self._get_json(self._jwks_uri)
        try:
            keys = jwt.PyJWKSet.from_dict(data).keys
        except (jwt.PyJWKSetError, jwt.InvalidKeyError, TypeError, AttributeError):
            raise _issuer_unavailable() from None
        self._keys = {k.key_id: k for k in keys if k.key_id and k.public_key_use in (None, "sig")}
        self._fetched_at = self._clock()
        self.fetches += 1

    def key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self.max_age
            if stale or (kid not in self._keys and now - (self._fetched_at or 0) >= self.min_refresh):
                self._refresh()
            found = self._keys.get(kid)
        if found is None:
            raise unauthorized("The token is signed with a key the issuer does not publish.")
        return found


def _new_jwks() -> Jwks:
    from shared.config import get_settings

    return Jwks(get_settings())


get_jwks = process_wide(_new_jwks)


def validate(token: str, settings: Settings, jwks: Jwks | None = None) -> dict[str, Any]:
    """The verified claims of ``token``; a 401 :class:`Problem` when anything is wrong."""
    import jwt

    if not settings.AUTH_AUDIENCE:
        from shared.config import MissingSetting

        raise MissingSetting("AUTH_AUDIENCE")
    allowed = settings.AUTH_ALGORITHMS.split(",")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise unauthorized("The bearer token is malformed.") from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in allowed:
        raise unauthorized("The token's signing algorithm is not accepted.")
    if not isinstance(kid, str) or not kid:
        raise unauthorized("The token names no signing key (kid).")
    key = (jwks or get_jwks()).key(kid)  # PyJWT then refuses an ``alg`` other than the key's own
    try:
        return jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            audience=settings.AUTH_AUDIENCE,
            issuer=settings.AUTH_ISSUER,
            leeway=settings.AUTH_CLOCK_SKEW_SECONDS,
            options={"require": ["exp", "iss", "aud", "sub"], "verify_signature": True},
        )
    except jwt.ExpiredSignatureError:
        raise unauthorized("The token has expired.") from None
    except jwt.ImmatureSignatureError:
        raise unauthorized("The token is not valid yet (nbf).") from None
    except (jwt.InvalidIssuerError, jwt.InvalidAudienceError):
        raise unauthorized("The token was issued by another issuer or for another audience.") from None
    except jwt.MissingRequiredClaimError:
        raise unauthorized("The token lacks a required claim.") from None
    except jwt.PyJWTError:
        raise unauthorized("The token's signature or contents are invalid.") from None
