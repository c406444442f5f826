"""NIF REST client: one ``httpx.Client`` per process, club tokens, retries, caches.

- **Transport**: explicit connect/read/write/pool timeouts and connection limits from Settings.
- **Retries**: idempotent GETs are retried (transport errors, timeouts, 429, 5xx) with
  exponential backoff and jitter. A POST is retried only when the connection could not be
  established (the request never left); a read timeout on a POST raises :class:`NifTimeout`
  because NIF may have applied it.
- **Tokens** (``NIF_TOKEN_MODE``): ``api`` fetches with GET Token, ``static`` reads the secret
  named by ``NIF_STATIC_TOKEN_SECRET``. Cached per club until the JWT ``exp`` (read without
  verifying the signature: the key is NIF's) minus ``NIF_TOKEN_REFRESH_MARGIN_SECONDS``;
  single-flight per club (one fetch however many threads ask); on a 401 the token is refreshed
  once and the call retried once.
- **Caches**: sports and countries 24 h (process-wide), org structure 1 h per club.
- Tokens and the subscription key are never logged nor put in exception messages.
- **Error text**: a :class:`NifRejected` message is what a caller may see: our sentence for a
  known NIF code, else NIF's own message when it is short and structured
  (:func:`public_nif_message`), else our sentence with the HTTP status. NIF's raw body is never
  passed on.
- **Token expiry**: an ``exp`` that is not a finite number, or lies more than a day in the past or
  more than a year ahead, is ignored (the token is cached for ``FALLBACK_TOKEN_LIFETIME``).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, overload

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from shared import lifecycle
from shared.config import MissingSetting, Settings, get_settings
from shared.logs import redact, register_secret
from shared.nif import lenient_json
from shared.nif.errors import NifContractError, NifError, NifRejected, NifTimeout, NifUnavailable
from shared.nif.models import Country, NifMembershipResponse, OrgStructure, Sport, TokenInfo, TokenResponse

log = logging.getLogger("shared.nif.client")

REFERENCE_TTL_SECONDS = 24 * 3600
ORG_TTL_SECONDS = 3600
FALLBACK_TOKEN_LIFETIME = 3600  # the seed's sample token lives 1 h; used when exp is unreadable
EXP_PAST_TOLERANCE = 24 * 3600  # an exp further in the past than this is not a clock skew: ignored
EXP_MAX_AHEAD = 366 * 24 * 3600  # an exp further ahead than this is absurd: ignored
PUBLIC_MESSAGE_MAX = 200  # NIF's own message is shown to callers only up to this length
GET_ATTEMPTS = 3
BACKOFF_BASE_SECONDS = 0.2
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


# --- pure helpers -------------------------------------------------------------------------------


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


_CODE_KEYS = ("nifCode", "code", "errorCode", "errorcode", "statusCode", "Code", "ErrorCode")
_MESSAGE_KEYS = ("message", "Message", "errorMessage", "detail", "title", "responseMessage", "error")
_CODE_IN_TEXT = re.compile(r"\b([13]\d{3})\b")


def parse_nif_error(content: bytes | str) -> tuple[int | None, str | None]:
    """(NIF code, message) from an error body of any plausible shape.

    NIF doesn't document its error body. Accepted: ``{"code": 1007, "message": ...}`` (the
    sandbox), ``errorCode``/``nifCode``/``statusCode`` spellings, ``{"error": {...}}``,
    ``{"errors": [{...}]}``, a bare number, or text containing a 1xxx/3xxx code.
    """
    code, message, _structured = _parse_error(content)
    return code, message


def _parse_error(content: bytes | str) -> tuple[int | None, str | None, bool]:
    """(code, message, whether the message came from a JSON error object's message field)."""
    text = content.decode("utf-8", "replace") if isinstance(content, (bytes, bytearray)) else content
    try:
        data: Any = lenient_json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        data = None
    code, message = _find_code(data)
    structured = message is not None
    if code is None and (data is None or isinstance(data, str)):
        match = _CODE_IN_TEXT.search(text)
        code = int(match.group(1)) if match else None
        message = message or (text.strip()[:300] or None)
    return code, message, structured


def public_nif_message(message: str | None) -> str | None:
    """NIF's own message as a caller may see it, or None.

    The rule: only a message taken from a JSON error body's message field (the caller checks
    that), at most ``PUBLIC_MESSAGE_MAX`` characters, printable on one line, no markup (``<``,
    ``>``), and nothing in it that the redactor would touch (a registered secret such as the
    subscription key, a JWT, ``key=value`` secrets, a personnummer). Anything else is dropped
    whole rather than shown half-redacted.
    """
    if not message:
        return None
    text = message.strip()
    if not text or len(text) > PUBLIC_MESSAGE_MAX or "<" in text or ">" in text:
        return None
    if not text.isprintable():
        return None
    return text if redact(text) == text else None


def rejection_message(status: int, code: int | None, nif_message: str | None) -> str:
    """What a caller may read about a NIF rejection: our sentence for a code we know, NIF's
    message when :func:`public_nif_message` allows it, else our sentence with the status/code."""
    from shared.nif.rules import NIF_MESSAGES

    if code is not None and code in NIF_MESSAGES:
        return NIF_MESSAGES[code]
    shown = public_nif_message(nif_message)
    if shown:
        return shown
    if code is not None:
        return f"NIF rejected the request with code {code}."
    return f"NIF rejected the request (HTTP {status})."


def _as_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 1000 else None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) == 4:
        return int(value.strip())
    return None


def _find_code(data: Any, depth: int = 0) -> tuple[int | None, str | None]:
    if depth > 3:
        return None, None
    if isinstance(data, int):
        return _as_code(data), None
    if isinstance(data, list):
        for item in data:
            code, message = _find_code(item, depth + 1)
            if code is not None:
                return code, message
        return None, None
    if not isinstance(data, dict):
        return None, None
    message = next((str(data[k]) for k in _MESSAGE_KEYS if isinstance(data.get(k), (str, int))), None)
    for key in _CODE_KEYS:
        code = _as_code(data.get(key))
        if code is not None:
            return code, message
    for key in ("error", "errors", "Error", "Errors"):
        if key in data:
            code, inner = _find_code(data[key], depth + 1)
            if code is not None:
                return code, inner or message
    return None, message


def _iso(epoch: float | None) -> str | None:
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
            clubId=club_id, expiresAt=_iso(self.expires_at), fetchedAt=_iso(self.fetched_at) or "", mode=mode
        )


def plan_refresh(fetched_at: float, expires_at: float | None, margin: float) -> float:
    """When to refresh a token: exp − margin, but never sooner than half its remaining life."""
    exp = expires_at if expires_at is not None else fetched_at + FALLBACK_TOKEN_LIFETIME
    remaining = max(0.0, exp - fetched_at)
    return max(exp - margin, fetched_at + min(30.0, remaining / 2))


# --- the client ---------------------------------------------------------------------------------


class NifClient:
    """Thread-safe; create through :func:`get_nif_client` (one per process)."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        secret_store: Any = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if settings.NIF_SUBSCRIPTION_KEY is None:
            raise MissingSetting("NIF_SUBSCRIPTION_KEY")
        self._settings = settings
        self._key = settings.NIF_SUBSCRIPTION_KEY.get_secret_value()
        register_secret(self._key)
        self.mode = settings.NIF_TOKEN_MODE
        self._secret_store = secret_store
        self._clock = clock
        self._sleep = sleep
        connect = settings.NIF_CONNECT_TIMEOUT_SECONDS
        read = settings.NIF_READ_TIMEOUT_SECONDS
        self._http = httpx.Client(
            base_url=settings.nif_api_root() + "/",
            timeout=httpx.Timeout(connect=connect, read=read, write=read, pool=connect),
            limits=httpx.Limits(
                max_connections=settings.NIF_MAX_CONNECTIONS,
                max_keepalive_connections=settings.NIF_MAX_CONNECTIONS,
                keepalive_expiry=30.0,
            ),
            transport=transport,
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )
        self._tokens: dict[int, CachedToken] = {}
        self._club_locks: dict[int, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}
        self._cache_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    # --- tokens ---------------------------------------------------------------------------------

    def _club_lock(self, club_id: int) -> threading.Lock:
        with self._locks_guard:
            lock = self._club_locks.get(club_id)
            if lock is None:
                lock = self._club_locks[club_id] = threading.Lock()
            return lock

    def token(self, club_id: int, *, stale: str | None = None) -> CachedToken:
        """A usable token for the club; ``stale``: a token NIF just refused (forces a new one)."""
        entry = self._tokens.get(club_id)
        if entry is not None and entry.token != stale and self._clock() < entry.refresh_at:
            return entry
        with self._club_lock(club_id):  # single flight per club
            entry = self._tokens.get(club_id)
            if entry is not None and entry.token != stale and self._clock() < entry.refresh_at:
                return entry
            entry = self._obtain_token(club_id)
            self._tokens[club_id] = entry
            return entry

    def token_info(self, club_id: int) -> TokenInfo:
        return self.token(club_id).info(club_id, self.mode)

    def refresh_token(self, club_id: int) -> TokenInfo:
        current = self._tokens.get(club_id)
        stale = current.token if current else None
        return self.token(club_id, stale=stale).info(club_id, self.mode)

    def _obtain_token(self, club_id: int) -> CachedToken:
        token = self._static_token(club_id) if self.mode == "static" else self._fetch_token(club_id)
        if not _JWT_SHAPE.match(token):
            register_secret(token)  # JWTs are redacted by shape; anything else by value
        now = self._clock()
        exp = plausible_expiry(jwt_expiry(token), now)
        margin = float(self._settings.NIF_TOKEN_REFRESH_MARGIN_SECONDS)
        log.info("NIF token obtained for club %s (mode %s, expires %s)", club_id, self.mode, _iso(exp))
        return CachedToken(token, now, exp, plan_refresh(now, exp, margin))

    def _static_token(self, club_id: int) -> str:
        from shared.secrets import SecretNotFound, get_secret_store

        name = self._settings.NIF_STATIC_TOKEN_SECRET.format(club_id=club_id)
        store = self._secret_store or get_secret_store()
        try:
            return "".join(store.get(name).split())
        except SecretNotFound:
            raise MissingSetting(name) from None

    def _fetch_token(self, club_id: int) -> str:
        params = {}
        if self._settings.NIF_DEVELOPER_USER_ID:
            params["developerUserId"] = self._settings.NIF_DEVELOPER_USER_ID
        resp = self._send(
            "GET",
            f"auth/token/{club_id}",
            headers={"Ocp-Apim-Subscription-Key": self._key},
            params=params,
            idempotent=True,
        )
        data = self._json(resp)
        try:
            return TokenResponse.model_validate(data).token
        except ValidationError:
            raise NifContractError("GET Token answered without a token", status=resp.status_code) from None

    # --- transport --------------------------------------------------------------------------------

    def _headers(self, club_id: int, token: str) -> dict[str, str]:
        return {"Ocp-Apim-Subscription-Key": self._key, "Authorization": token, "ClubId": str(club_id)}

    def _send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        idempotent: bool,
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        attempts = GET_ATTEMPTS if idempotent else 2
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            started = time.perf_counter()
            try:
                resp = self._http.request(method, path, headers=headers, json=json_body, params=params)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Never left this process: safe to retry, even a POST.
                if not last:
                    self._backoff(attempt, path, type(exc).__name__)
                    continue
                if isinstance(exc, httpx.TimeoutException):
                    raise NifTimeout(f"NIF did not accept a connection in time ({method} {path})") from None
                raise NifUnavailable(f"NIF unreachable ({method} {path}): {type(exc).__name__}") from None
            except httpx.TimeoutException as exc:
                if idempotent and not last:
                    self._backoff(attempt, path, type(exc).__name__)
                    continue
                raise NifTimeout(f"NIF did not answer in time ({method} {path})") from None
            except httpx.TransportError as exc:
                if idempotent and not last:
                    self._backoff(attempt, path, type(exc).__name__)
                    continue
                raise NifUnavailable(f"NIF transport error ({method} {path}): {type(exc).__name__}") from None
            log.info(
                "NIF %s %s -> %s in %.0f ms", method, path, resp.status_code, (time.perf_counter() - started) * 1000
            )
            if idempotent and resp.status_code in RETRY_STATUSES and not last:
                self._backoff(attempt, path, str(resp.status_code), resp.headers.get("Retry-After"))
                continue
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int, path: str, why: str, retry_after: str | None = None) -> None:
        delay = BACKOFF_BASE_SECONDS * (2 ** (attempt - 1)) + random.uniform(0, BACKOFF_BASE_SECONDS / 2)
        if retry_after and retry_after.strip().isascii() and retry_after.strip().isdigit():
            delay = max(delay, min(float(retry_after), 5.0))
        log.warning("NIF GET %s failed (%s); retry %d in %.2f s", path, why, attempt, delay)
        self._sleep(delay)

    def _call(self, method: str, path: str, club_id: int, *, json_body: Any = None) -> httpx.Response:
        """A club call with the token; refresh once on 401 and retry once (a 401 was not applied)."""
        idempotent = method == "GET"
        entry = self.token(club_id)
        resp = self._send(
            method, path, headers=self._headers(club_id, entry.token), idempotent=idempotent, json_body=json_body
        )
        if resp.status_code == 401:
            log.info("NIF refused the token of club %s; refreshing once", club_id)
            entry = self.token(club_id, stale=entry.token)
            resp = self._send(
                method, path, headers=self._headers(club_id, entry.token), idempotent=idempotent, json_body=json_body
            )
            if resp.status_code == 401:
                raise NifUnavailable("NIF refused the club token after a refresh", status=401)
        return resp

    def _json(self, resp: httpx.Response) -> Any:
        if 200 <= resp.status_code < 300:
            try:
                return lenient_json.loads(resp.content)
            except ValueError:
                raise NifContractError("NIF answered with a body that is not JSON", status=resp.status_code) from None
        raise _error_from(resp)

    @overload
    def _validated(self, resp: httpx.Response, adapter: TypeAdapter[T], what: str) -> T: ...
    @overload
    def _validated(self, resp: httpx.Response, adapter: type[M], what: str) -> M: ...

    def _validated(self, resp: httpx.Response, adapter: TypeAdapter[Any] | type[BaseModel], what: str) -> Any:
        data = self._json(resp)
        try:
            if isinstance(adapter, TypeAdapter):
                return adapter.validate_python(data)
            return adapter.model_validate(data)
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:5])
            raise NifContractError(
                f"NIF {what} response failed validation ({fields})", status=resp.status_code
            ) from None

    def _cached(self, key: str, ttl: float, load: Callable[[], T]) -> T:
        now = self._clock()
        with self._cache_lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load()
        with self._cache_lock:
            self._cache[key] = (self._clock() + ttl, value)
        return value

    # --- endpoints ----------------------------------------------------------------------------------

    def get_sports(self, club_id: int) -> list[Sport]:
        """GET Sports (any club's token works; the result is shared), cached 24 h."""

        def load() -> list[Sport]:
            resp = self._call("GET", "sports", club_id)
            data = self._json(resp)
            if isinstance(data, dict):
                data = data.get("sports") if isinstance(data.get("sports"), list) and "sportId" not in data else [data]
            try:
                return _SPORTS.validate_python(data)
            except ValidationError:
                raise NifContractError("NIF sports response failed validation", status=resp.status_code) from None

        return self._cached("sports", REFERENCE_TTL_SECONDS, load)

    def get_countries(self, club_id: int) -> list[Country]:
        """GET Countries, cached 24 h."""

        def load() -> list[Country]:
            resp = self._call("GET", "countries", club_id)
            data = self._json(resp)
            if isinstance(data, dict):
                data = [data]
            try:
                return _COUNTRIES.validate_python(data)
            except ValidationError:
                raise NifContractError("NIF countries response failed validation", status=resp.status_code) from None

        return self._cached("countries", REFERENCE_TTL_SECONDS, load)

    def get_org_structure(self, club_id: int) -> OrgStructure:
        """GET Organization Structure for the club, cached 1 h per club."""
        return self._cached(
            f"org:{club_id}",
            ORG_TTL_SECONDS,
            lambda: self._validated(
                self._call("GET", "organization/structure", club_id), OrgStructure, "org structure"
            ),
        )

    def add_membership(self, club_id: int, body: dict[str, Any]) -> NifMembershipResponse:
        """POST Membership. Not retried once it may have reached NIF."""
        resp = self._call("POST", "membership", club_id, json_body=body)
        data = self._json(resp)
        if isinstance(data, dict) and not any(k in data for k in ("personId", "traceId", "membershipId")):
            code, message = _find_code(data)
            if code is not None:  # an error code inside a 200
                raise NifRejected(
                    rejection_message(resp.status_code, code, message), status=resp.status_code, nif_code=code
                )
        try:
            return NifMembershipResponse.model_validate(data)
        except ValidationError:
            raise NifContractError("NIF membership response failed validation", status=resp.status_code) from None


_SPORTS = TypeAdapter(list[Sport])
_COUNTRIES = TypeAdapter(list[Country])


def _error_from(resp: httpx.Response) -> NifError:
    status = resp.status_code
    if status >= 500:
        return NifUnavailable(f"NIF answered HTTP {status}", status=status)
    code, message, structured = _parse_error(resp.content)
    if status in (401, 403):
        return NifUnavailable(f"NIF refused our credentials (HTTP {status})", status=status)
    if code is None and status not in (400, 404, 409, 422):
        return NifUnavailable(f"NIF answered HTTP {status}", status=status)
    return NifRejected(rejection_message(status, code, message if structured else None), status=status, nif_code=code)


# --- process-wide instance ------------------------------------------------------------------------

_client: NifClient | None = None
_client_lock = threading.Lock()


def get_nif_client() -> NifClient:
    """The process-wide client, built on first use from the Settings."""
    global _client
    client = _client
    if client is None:
        with _client_lock:
            if _client is None:
                _client = NifClient(get_settings())
            client = _client
    return client


@lifecycle.on_reset
def reset_nif_client() -> None:
    global _client
    with _client_lock:
        if _client is not None:
            _client.close()
        _client = None
