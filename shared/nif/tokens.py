"""NIF club tokens as data: reading a JWT's claims, judging its expiry, planning the refresh.

Pure (no I/O, no HTTP): :class:`shared.nif.client.NifClient` fetches the tokens and caches them
as :class:`CachedToken`.

- **Claims** are read WITHOUT verifying the signature (the key is NIF's): only ``exp`` is used.
- **Expiry**: an ``exp`` that is not a finite number, or lies more than a day in the past or more
  than a year ahead, is ignored (the token is cached for ``FALLBACK_TOKEN_LIFETIME``).
- **Refresh**: at ``exp`` minus ``NIF_TOKEN_REFRESH_MARGIN_SECONDS``, but never sooner than 30 s
  (or half the token's remaining life, if that is shorter) after the fetch (:func:`plan_refresh`).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from shared.nif.models import TokenInfo

FALLBACK_TOKEN_LIFETIME = 3600  # the seed's sample token lives 1 h; used when exp is unreadable
EXP_PAST_TOLERANCE = 24 * 3600  # an exp further in the past than this is not a clock skew: ignored
EXP_MAX_AHEAD = 366 * 24 * 3600  # an exp further ahead than this is absurd: ignored


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The JWT payload, decoded WITHOUT verifying the signature; None if not a readable JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, RecursionError):  # not base64/JSON, a > 4300-digit integer, deep nesting
        return None
    return claims if isinstance(claims, dict) else None


def jwt_expiry(token: str) -> float | None:
    """``exp`` as finite epoch seconds, or None (missing, not a number, infinite or too big)."""
    claims = jwt_claims(token) or {}
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    try:
        value = float(exp)
    except OverflowError:  # an int beyond float range
        return None
    return value if math.isfinite(value) else None


def plausible_expiry(exp: float | None, now: float) -> float | None:
    """``exp`` if it could be a real token's expiry seen at ``now``, else None (then the token
    lives ``FALLBACK_TOKEN_LIFETIME``): at most a day in the past (clock skew), at most a year ahead."""
    if exp is None or not math.isfinite(exp):
        return None
    if exp < now - EXP_PAST_TOLERANCE or exp > now + EXP_MAX_AHEAD:
        return None
    return exp


def iso_utc(epoch: float | None) -> str | None:
    """ISO 8601 UTC, or None when ``epoch`` is None or not representable (never raises: it is
    used inside log calls)."""
    if epoch is None:
        return None
    try:
        return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError, TypeError):
        return None


@dataclass(frozen=True)
class CachedToken:
    token: str
    fetched_at: float
    expires_at: float | None  # JWT exp
    refresh_at: float

    def info(self, club_id: int, mode: Literal["api", "static"]) -> TokenInfo:
        return TokenInfo(
            clubId=club_id, expiresAt=iso_utc(self.expires_at), fetchedAt=iso_utc(self.fetched_at) or "", mode=mode
        )


def plan_refresh(fetched_at: float, expires_at: float | None, margin: float) -> float:
    """When to refresh a token: exp − margin, but never sooner than half its remaining life."""
    exp = expires_at if expires_at is not None else fetched_at + FALLBACK_TOKEN_LIFETIME
    remaining = max(0.0, exp - fetched_at)
    return max(exp - margin, fetched_at + min(30.0, remaining / 2))
