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
- **Error answers** become the exceptions of :mod:`shared.nif.errors` (which also decides what a
  caller may read of them); token expiry and refresh planning are :mod:`shared.nif.tokens`.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from shared import lifecycle
from shared.config import MissingSetting, Settings, get_settings
from shared.logs import register_secret
from shared.nif import lenient_json
from shared.nif.errors import (
    NifContractError,
    NifRejected,
    NifTimeout,
    NifUnavailable,
    error_from_response,
    find_code,
    rejection_message,
)
from shared.nif.models import Country, NifMembershipResponse, OrgStructure, Sport, TokenInfo, TokenResponse
from shared.nif.tokens import CachedToken, iso_utc, jwt_expiry, plan_refresh, plausible_expiry

log = logging.getLogger("shared.nif.client")

REFERENCE_TTL_SECONDS = 24 * 3600
ORG_TTL_SECONDS = 3600
GET_ATTEMPTS = 3
BACKOFF_BASE_SECONDS = 0.2
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")

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
        log.info("NIF token obtained for club %s (mode %s, expires %s)", club_id, self.mode, iso_utc(exp))
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
        raise error_from_response(resp)

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
            code, message = find_code(data)
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
