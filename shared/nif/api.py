"""HTTP handlers of the NIF REST wrapper (bound in ``functions/nif_api.py``).

Every client error is a problem (RFC 9457): malformed JSON → 400, a body that breaks NIF's rules
→ 422 with NIF's code in ``nifCode`` and per-field ``errors`` (each with its own code), NIF's own
rejections → 4xx with ``nifCode``, NIF failures → 502, NIF timeouts → 504.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from shared.http import ApiRequest
from shared.nif import rules
from shared.nif.errors import NifContractError, NifError, NifRejected, NifTimeout
from shared.nif.models import INT32_MAX, MembershipRequest, MembershipRequestRecord, MembershipResult
from shared.problems import FieldError, Problem, bad_request, field_errors_from_pydantic, not_found, validation_problem

log = logging.getLogger("shared.nif.api")

#: Injectable clock (tests freeze it): an aware UTC datetime.
clock: Callable[[], datetime] = lambda: datetime.now(UTC)

_TRACE_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")

#: NIF codes → our HTTP status (default for any other code: 422).
_CODE_STATUS = {1018: 404, 1034: 404, 3001: 409}


# --- helpers ----------------------------------------------------------------------------------


def _client() -> Any:
    from shared.nif.client import get_nif_client

    return get_nif_client()


def _club_id(req: ApiRequest, where: str = "route") -> int:
    return req.int_param("clubId", where=where, minimum=1, maximum=INT32_MAX)


def problem_from_nif(exc: NifError, *, posted: bool = False) -> Problem:
    """Map a client exception to the problem the caller sees (no I/O).

    The ``detail`` of a rejection is our own sentence for a NIF code we know (``nifCode`` carries
    the code); otherwise NIF's message only when it passes ``public_nif_message`` (short, from a
    JSON error body, nothing a redactor would touch), else our sentence with the status. Every
    detail goes through the redactor as well, whoever built the exception.
    """
    from shared.logs import redact
    from shared.nif.errors import rejection_message

    if isinstance(exc, NifRejected):
        code = exc.nif_code
        if code is None and exc.status == 404:
            return Problem(
                502,
                "Bad Gateway",
                "NIF does not know this endpoint (check NIF_API_BASE_URL).",
                type_slug="nif-unavailable",
            )
        status = _CODE_STATUS.get(code, 422) if code is not None else 422
        detail = redact(rejection_message(exc.status or 400, code, exc.message))
        return Problem(status, "Rejected by NIF", detail, type_slug="nif-rejected", nif_code=code)
    if isinstance(exc, NifTimeout):
        detail = "NIF did not answer in time."
        if posted:
            detail += " The request may still have been applied by NIF; check before sending it again."
        return Problem(504, "Gateway Timeout", detail, type_slug="nif-timeout")
    if isinstance(exc, NifContractError):
        return Problem(502, "Bad Gateway", "NIF answered with an unexpected response.", type_slug="nif-contract")
    return Problem(502, "Bad Gateway", "NIF is unavailable or refused our credentials.", type_slug="nif-unavailable")


@contextmanager
def _nif(posted: bool = False) -> Iterator[None]:
    try:
        yield
    except NifError as exc:
        code = getattr(exc, "nif_code", None)
        log.warning("NIF call failed: %s (HTTP %s, code %s): %s", type(exc).__name__, exc.status, code, exc.message)
        raise problem_from_nif(exc, posted=posted) from None


def parse_membership(req: ApiRequest) -> MembershipRequest:
    """The body as a :class:`MembershipRequest`; 400 for bad JSON, 422 (1039/1002) for wrong types."""
    from pydantic import ValidationError

    data = req.json_body()
    try:
        return MembershipRequest.model_validate(data)
    except ValidationError as exc:
        errors = field_errors_from_pydantic(exc)
        code = 1002 if any(e.path == "person.personId" for e in errors) else 1039
        errors = [FieldError(e.path, e.message, 1002 if e.path == "person.personId" else 1039) for e in errors]
        raise validation_problem(errors, rules.NIF_MESSAGES[code], nif_code=code, slug="nif-validation") from None


def check_membership(body: MembershipRequest, today: Any) -> None:
    """422 with NIF's code when the request breaks a rule NIF would reject it for."""
    violations = rules.validate_membership(body, today=today)
    if violations:
        code = rules.primary_code(violations)
        assert code is not None  # None only for no violations
        raise validation_problem(
            [FieldError(v.path, v.message, v.code) for v in violations],
            rules.NIF_MESSAGES.get(code, "The request is not valid."),
            nif_code=code,
            slug="nif-validation",
        )


# --- handlers -----------------------------------------------------------------------------------


def get_sports(req: ApiRequest) -> Any:
    """GET /api/nif/sports?clubId=… (NIF needs a club's token even for reference data)."""
    club_id = _club_id(req, "query")
    with _nif():
        return _client().get_sports(club_id)


def get_countries(req: ApiRequest) -> Any:
    """GET /api/nif/countries?clubId=…"""
    club_id = _club_id(req, "query")
    with _nif():
        return _client().get_countries(club_id)


def get_org_structure(req: ApiRequest) -> Any:
    """GET /api/nif/clubs/{clubId}/organization"""
    club_id = _club_id(req)
    with _nif():
        return _client().get_org_structure(club_id)


def get_token(req: ApiRequest) -> Any:
    """GET /api/nif/clubs/{clubId}/token: the cached token's status (fetched if none), never the token."""
    club_id = _club_id(req)
    with _nif():
        return _client().token_info(club_id)


def refresh_token(req: ApiRequest) -> Any:
    """POST /api/nif/clubs/{clubId}/token: fetch a fresh token now."""
    club_id = _club_id(req)
    with _nif():
        return _client().refresh_token(club_id)


def add_membership(req: ApiRequest) -> Any:
    """POST /api/nif/clubs/{clubId}/memberships: validate like NIF, forward, record, answer."""
    from shared.config import get_settings
    from shared.logs import log_context, set_trace_id

    club_id = _club_id(req)
    body = parse_membership(req)
    check_membership(body, rules.local_today(clock(), get_settings().LOCAL_TIMEZONE))
    with log_context(club_id=str(club_id)):
        with _nif(posted=True):
            nif = _client().add_membership(club_id, body.to_nif_json())
        result = MembershipResult.from_nif(nif)
        if nif.traceId:
            set_trace_id(nif.traceId)
        try:
            from shared.nif.membership_requests import record_request

            record_request(club_id, body, nif, now=clock())
        except Exception:
            log.exception("could not record membership request %s of club %s", nif.traceId, club_id)
        log.info("membership add for club %s: %s", club_id, result.status)
        return result


def get_membership_request(req: ApiRequest) -> Any:
    """GET /api/nif/clubs/{clubId}/membership-requests/{traceId}"""
    from shared.nif.membership_requests import get_request

    club_id = _club_id(req)
    trace_id = req.route_param("traceId").strip()
    if not _TRACE_ID.match(trace_id):
        raise bad_request("traceId must be NIF's GUID.", errors=[FieldError("traceId", "not a traceId")])
    record = get_request(trace_id, now=clock())
    if record is None or record.get("clubId") != club_id:
        raise not_found("No membership request with this traceId for this club.")
    return MembershipRequestRecord.model_validate(record)
