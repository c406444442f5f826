"""Authenticate the caller, enforce the route's policy, and keep the caller for the invocation.

``functions/_glue.py`` wraps every HTTP handler with :func:`guard`. Inside the wrapper (and so
inside ``shared.http.dispatch``, which maps its problems):

1. the caller is established (:func:`authenticate`): in ``keys`` mode the host has already checked
   the key against the route's level, so the level tells who called; in ``tokens`` mode the app
   checks a bearer token (``shared.auth.tokens``) or one of the keys it holds itself;
2. the route's policy (``shared.auth.policy.POLICIES``) is checked, the person route's against the
   NIF mirror;
3. the caller's subject and client id go on the log context and in :func:`current_caller` for
   the handler (:func:`attribution` for records that say who did something).
"""

from __future__ import annotations

import contextvars
import hmac
from typing import TYPE_CHECKING, Any

from shared.auth.policy import ANONYMOUS, FUNCTION_KEY, MASTER_KEY, POLICIES, Caller, Policy, check, person_not_found
from shared.auth.tokens import unauthorized

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.http import ApiRequest, Handler

KEY_VAULT_REFERENCE_PREFIX = "@Microsoft.KeyVault("
_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


def current_caller() -> Caller | None:
    """The caller of the HTTP invocation running in this context (None outside one)."""
    return _caller.get()


def attribution() -> dict[str, str]:
    """Fields naming who did this, for a stored record (empty outside an HTTP invocation)."""
    caller = current_caller()
    return caller.attribution() if caller else {}


def _values(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [v for v in raw.replace(",", " ").split() if v]
    if isinstance(raw, int) and not isinstance(raw, bool):
        return [str(raw)]
    if isinstance(raw, list):
        return [str(v).strip() for v in raw if isinstance(v, (str, int)) and not isinstance(v, bool)]
    return []


def caller_from_claims(claims: dict[str, Any], settings: Settings) -> Caller:
    """The caller a verified token describes (its roles and clubs); 401 without a clubs claim,
    unless a role grants every club."""
    roles = set(_values(claims.get(settings.AUTH_ROLES_CLAIM)))
    admin = settings.AUTH_ROLE_ADMIN in roles
    every_club = admin or settings.AUTH_ROLE_ALL_CLUBS in roles
    clubs: frozenset[str] | None = None
    if not every_club:
        if settings.AUTH_CLUBS_CLAIM not in claims:
            raise unauthorized("The token has no clubs claim.")
        prefix = settings.AUTH_CLUBS_PREFIX
        clubs = frozenset(
            v.removeprefix(prefix) for v in _values(claims[settings.AUTH_CLUBS_CLAIM]) if v.startswith(prefix)
        )
    client_id = claims.get("azp") or claims.get("appid") or claims.get("client_id")
    return Caller(
        "token",
        subject=str(claims["sub"]),
        client_id=str(client_id) if client_id else None,
        clubs=clubs,
        read_only=settings.AUTH_ROLE_READONLY in roles,
        admin=admin,
    )


def _key_matches(presented: str, configured: Any) -> bool:
    if configured is None:
        return False
    value = configured.get_secret_value()
    # an unresolved Key Vault reference stays in the setting as its own text: never a key
    if len(value) < 16 or value.startswith(KEY_VAULT_REFERENCE_PREFIX):
        return False
    return hmac.compare_digest(presented.encode(), value.encode())


def authenticate(req: ApiRequest, policy: Policy, mode: str) -> Caller:
    """Who is calling. ``mode`` is the one the host indexed the app with (``functions._glue``)."""
    if mode == "keys":  # the host let the request through only with a key valid for the level
        if policy is Policy.PUBLIC:
            return ANONYMOUS
        return MASTER_KEY if policy is Policy.ADMIN else FUNCTION_KEY
    from shared.config import get_settings

    settings = get_settings()
    authorization = (req.header("authorization") or "").strip()
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("Use the Bearer scheme.", error="invalid_request")
        from shared.auth.tokens import validate

        return caller_from_claims(validate(token.strip(), settings), settings)
    key = req.header("x-functions-key") or req.params.get("code")
    if key:
        if _key_matches(key, settings.AUTH_MASTER_KEY):
            return MASTER_KEY
        if _key_matches(key, settings.AUTH_FUNCTION_KEY):
            return FUNCTION_KEY
        raise unauthorized("The key is not valid.", error="invalid_request")
    return ANONYMOUS


def person_clubs(person_id: int) -> set[str]:
    """Clubs where the person (after following merges to the survivor) holds a current
    (active or cancelled, not ended) membership, from the NIF mirror."""
    from shared.nif.mirror import _Reader, _store  # the mirror's own merge-aware reader

    reader = _Reader(_store())
    survivor = reader.survivor(person_id)
    clubs = set()
    for link in reader.person_links(survivor):
        if link.get("Kind") != "m":
            continue
        row = reader.row("TpMembership", int(link["ObjectId"]))
        if row is None or row.get("PersonId") != survivor or row.get("ClubId") is None:
            continue
        if reader.membership_status("TpMembership", row) in ("active", "cancelled"):
            clubs.add(str(row["ClubId"]))
    return clubs


def check_person(req: ApiRequest, caller: Caller) -> None:
    if caller.clubs is None:
        return
    person_id = req.int_param("personId", minimum=1)
    if not person_clubs(person_id) & caller.clubs:
        raise person_not_found(str(person_id))


def guard(handler: Handler, function_name: str | None, mode: str) -> Handler:
    """``handler`` behind the policy of ``function_name``; a function without a policy answers 500."""
    from shared.logs import log_context

    def guarded(req: ApiRequest) -> Any:
        policy = POLICIES.get(function_name or "")
        if policy is None:
            raise RuntimeError(f"no authorization policy declared for HTTP function {function_name!r}")
        caller = authenticate(req, policy, mode)
        check(policy, caller, dict(req.route_params))
        if policy is Policy.PERSON_READ:
            check_person(req, caller)
        token = _caller.set(caller)
        try:
            with log_context(caller_subject=caller.subject or caller.kind, caller_client_id=caller.client_id):
                return handler(req)
        finally:
            _caller.reset(token)

    return guarded
