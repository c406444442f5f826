"""Who may call what: the caller model and the one table of route policies.

:data:`POLICIES` names a policy for every HTTP function, by function name. ``tests/test_auth_matrix.py``
generates a route × caller matrix from the functions the runtime indexes, so a route added without
an entry here fails there, and the glue (``shared.auth.guard``) refuses it at run time too.

403 or 404 (docs/security.md): a club named in the URL that the caller may not act for is a 403
``forbidden`` (the caller typed the club id; the answer says nothing about whether the club exists,
because the check runs before any lookup). A person outside the caller's clubs is a 404 with the
same body as a person the mirror does not know, so person ids cannot be probed across clubs.
Records found under a club route (payments, membership requests, export runs) are looked up within
that club by their handlers, so another club's record is a 404 there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.problems import Problem


class Policy(StrEnum):
    PUBLIC = "public"  # no credentials (health probes)
    SIGNED_IN = "signed-in"  # any authenticated caller (reference data, the OpenAPI document)
    CLUB_READ = "club-read"  # the route's {clubId} is one of the caller's clubs
    CLUB_WRITE = "club-write"  # as CLUB_READ, and the caller is not read-only
    PERSON_READ = "person-read"  # the person ({personId}, merges followed) has a membership in a caller's club
    ADMIN = "admin"  # the master key or the admin role


P = Policy
POLICIES: dict[str, Policy] = {
    # operational
    "health": P.PUBLIC,
    "health_ready": P.PUBLIC,
    "openapi_document": P.SIGNED_IN,
    # club registry (IdrottOnline SFTP targets and secrets)
    "clubs_put": P.ADMIN,
    "clubs_get": P.ADMIN,
    # IdrottOnline intake, ledger, preview (personnummer: the club's own staff only)
    "idrott_persons_put": P.CLUB_WRITE,
    "idrott_person_delete": P.CLUB_WRITE,
    "idrott_activities_put": P.CLUB_WRITE,
    "idrott_activity_delete": P.CLUB_WRITE,
    "idrott_exports_get": P.CLUB_READ,
    "idrott_exports_full_get": P.ADMIN,
    "idrott_export_post": P.ADMIN,
    "idrott_export_preview": P.CLUB_READ,
    "idrott_export_all": P.ADMIN,
    "idrott_export_night": P.ADMIN,
    "idrott_export_overdue": P.ADMIN,
    "idrott_export_poison": P.ADMIN,
    "idrott_export_poison_requeue": P.ADMIN,
    # NIF wrapper
    "nif_sports": P.SIGNED_IN,
    "nif_countries": P.SIGNED_IN,
    "nif_org_structure": P.CLUB_READ,
    "nif_token_status": P.CLUB_READ,
    "nif_token_refresh": P.CLUB_WRITE,
    "nif_membership_add": P.CLUB_WRITE,
    "nif_membership_request": P.CLUB_READ,
    # NIF mirror
    "nif_mirror_club_members": P.CLUB_READ,
    "nif_mirror_club_members_full": P.ADMIN,
    "nif_mirror_person": P.PERSON_READ,
    "nif_mirror_person_full": P.ADMIN,
    # NIF payments
    "nif_payment_post": P.CLUB_WRITE,
    "nif_payment_list": P.CLUB_READ,
    "nif_payment_get": P.CLUB_READ,
    "nif_person_payments": P.CLUB_READ,
    "nif_payment_types": P.SIGNED_IN,
    "nif_payment_retry_now": P.ADMIN,
}


@dataclass(frozen=True)
class Caller:
    """An authenticated caller. ``clubs`` None: every club. ``subject``/``client_id``: ids, never names."""

    kind: str  # "anonymous" | "function-key" | "master-key" | "token"
    subject: str | None = None
    client_id: str | None = None
    clubs: frozenset[str] | None = frozenset()
    read_only: bool = False
    admin: bool = False

    @property
    def authenticated(self) -> bool:
        return self.kind != "anonymous"

    def may_act_for(self, club_id: str) -> bool:
        return self.clubs is None or club_id.strip() in self.clubs

    def attribution(self) -> dict[str, str]:
        """Who did it, for a stored record: ``actorKind`` and, for a token, ``actorSubject``/``actorClientId``."""
        out = {"actorKind": self.kind}
        if self.subject:
            out["actorSubject"] = self.subject
        if self.client_id:
            out["actorClientId"] = self.client_id
        return out


ANONYMOUS = Caller("anonymous")
FUNCTION_KEY = Caller("function-key", clubs=None)
MASTER_KEY = Caller("master-key", clubs=None, admin=True)


def forbidden(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail, type_slug="forbidden")


def person_not_found(person_id: str) -> Problem:
    """The answer for a person outside the caller's clubs: the mirror's own not-found (no leak)."""
    from shared.problems import not_found

    return not_found(f"Person {person_id} is not in the mirror.")


def check(policy: Policy, caller: Caller, route_params: dict[str, str]) -> None:
    """Raise the 401/403/404 problem when ``caller`` may not use a route of ``policy`` (checks
    that need storage, the person's clubs, are :func:`shared.auth.guard.check_person`'s)."""
    from shared.auth.tokens import unauthorized

    if policy is Policy.PUBLIC:
        return
    if not caller.authenticated:
        raise unauthorized("Send a bearer token (Authorization: Bearer …) or a key.", error="invalid_request")
    if policy is Policy.ADMIN and not caller.admin:
        raise forbidden("This route needs the admin role or the master key.")
    if policy is Policy.CLUB_WRITE and caller.read_only:
        raise forbidden("A read-only caller cannot change anything.")
    if policy in (Policy.CLUB_READ, Policy.CLUB_WRITE):
        club = route_params.get("clubId", "")
        if not club or not caller.may_act_for(club):
            raise forbidden("The caller may not act for this club.")
