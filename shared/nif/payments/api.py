"""HTTP handlers of the payment routes (bound in ``functions/nif_payments.py``).

Every malformed input is a 4xx problem before anything is written or sent: malformed JSON 400,
a wrong type or a broken rule 422 with NIF's code in ``nifCode`` and every field in ``errors``.
Then the outbox decides the answer: ``reported`` 200, ``pending``/``queued`` 202 with the status
URL in ``Location``, ``rejected`` 422 (NIF's code, our sentence), ``failed`` 502; the same
externalId with other content 409.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from shared.http import ApiRequest, json_response
from shared.nif.models import INT32_MAX
from shared.nif.payments import rules
from shared.nif.payments.models import STATUSES, PaymentError, PaymentRecord, PaymentRequest
from shared.nif.rules import Violation, local_today
from shared.problems import FieldError, Problem, bad_request, field_errors_from_pydantic, not_found, validation_problem

log = logging.getLogger("shared.nif.payments.api")

MAX_PAGE = 500


def _club_id(req: ApiRequest) -> int:
    return req.int_param("clubId", minimum=1, maximum=INT32_MAX)


def _today() -> Any:
    from shared.config import get_settings
    from shared.nif.payments import service

    return local_today(service.clock(), get_settings().LOCAL_TIMEZONE)


def _problem(violations: list[Violation]) -> Problem:
    code = rules.primary_code(violations)
    assert code is not None  # only called with violations
    return validation_problem(
        [FieldError(v.path, v.message, v.code) for v in violations],
        rules.MESSAGES.get(code, "The request is not valid."),
        nif_code=code,
        slug="nif-validation",
    )


def parse_payment(req: ApiRequest) -> PaymentRequest:
    """The body as a :class:`PaymentRequest`; 400 for bad JSON, 422 (1002 / 1039) for wrong types."""
    from pydantic import ValidationError

    data = req.json_body()
    if not isinstance(data, dict):
        raise validation_problem(
            [FieldError("$", "must be a JSON object", 1039)], rules.MESSAGES[1039], nif_code=1039, slug="nif-validation"
        )
    try:
        return PaymentRequest.model_validate(data)
    except ValidationError as exc:
        errors = field_errors_from_pydantic(exc)
        raise _problem([Violation(1002 if e.path == "personId" else 1039, e.path, e.message) for e in errors]) from None


def check_payment(club_id: int, body: PaymentRequest) -> None:
    """422 with NIF's code when the payment breaks a rule (no I/O but the cached payment types)."""
    from shared.nif.payments import facts

    violations = rules.validate_payment(body, today=_today(), types=facts.payment_type_facts())
    if violations:
        raise _problem(violations)


def check_with_mirror(club_id: int, body: PaymentRequest) -> None:
    """The rules that need the mirror (membership start 3001, org 1006), when it knows the membership."""
    from shared.nif.payments import facts

    membership = facts.membership_facts(club_id, body.personId) if body.personId else None
    if membership is not None:
        violations = rules.validate_payment(
            body, today=_today(), types=facts.payment_type_facts(), membership=membership
        )
        if violations:
            raise _problem(violations)


def status_url(club_id: int, external_id: str) -> str:
    return f"/api/nif/clubs/{club_id}/payments/{quote(external_id, safe='')}"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def to_record(row: dict[str, Any], *, nif_status: bool = False) -> PaymentRecord:
    """The outbox row as the API shows it: ids and states, never amounts, dates or comments."""
    club_id, external_id = int(row["clubId"]), str(row["externalId"])
    error = None
    if row.get("lastErrorCode"):
        error = PaymentError(
            code=row["lastErrorCode"],
            nifCode=row.get("lastNifCode"),
            message=row.get("lastErrorMessage") or "",
            at=_iso(row.get("lastErrorAt")),
        )
    status = None
    if nif_status:
        from shared.nif.payments.facts import nif_status as lookup

        status = lookup(row.get("paymentId"))
    return PaymentRecord(
        externalId=external_id,
        clubId=club_id,
        status=row["status"],
        statusUrl=status_url(club_id, external_id),
        attempts=int(row.get("attempts") or 0),
        lastError=error,
        paymentId=row.get("paymentId"),
        personId=row.get("personId"),
        updatedPersonId=row.get("updatedPersonId"),
        personMerged=bool(row.get("personMerged")),
        orgId=row.get("orgId"),
        paymentTypeId=row.get("paymentTypeId"),
        resolvedBy=row.get("resolvedBy"),
        createdAt=row["createdAt"].isoformat(),
        updatedAt=_iso(row.get("updatedAt")),
        reportedAt=_iso(row.get("reportedAt")),
        nextAttemptAt=_iso(row.get("nextAttemptAt")) if row.get("status") == "queued" else None,
        nifStatus=status,
    )


def answer(row: dict[str, Any]) -> Any:
    """The outbox row's state as the HTTP answer of a POST (first time or replay)."""
    record = to_record(row)
    status = record.status
    if status == "reported":
        return record
    if status in ("pending", "queued"):
        return json_response(record, 202, {"Location": record.statusUrl})
    payment = record.model_dump(mode="json")
    if status == "rejected":
        error = record.lastError
        return Problem(
            422,
            "Rejected by NIF",
            error.message if error else "NIF rejected the payment.",
            type_slug="payment-rejected",
            nif_code=error.nifCode if error else None,
            extra={"payment": payment},
        )
    return Problem(
        502,
        "Bad Gateway",
        "NIF did not confirm the payment within the maximum age; it is listed as failed (see the runbook).",
        type_slug="payment-failed",
        extra={"payment": payment},
    )


# --- handlers -----------------------------------------------------------------------------------


def post_payment(req: ApiRequest) -> Any:
    """POST /api/nif/clubs/{clubId}/payments"""
    from shared.logs import log_context
    from shared.nif.payments import service

    club_id = _club_id(req)
    body = parse_payment(req)
    check_payment(club_id, body)
    with log_context(club_id=str(club_id)):
        row = service.report(
            club_id, body, service.Policy.from_settings(), check=lambda: check_with_mirror(club_id, body)
        )
    result = answer(row)
    if isinstance(result, Problem):
        raise result
    return result


def _external_id(req: ApiRequest) -> str:
    external_id = req.route_param("externalId")
    problem = rules.external_id_problem(external_id)
    if problem:
        raise bad_request("externalId is not a payment reference.", errors=[FieldError("externalId", problem)])
    return external_id


def get_payment(req: ApiRequest) -> PaymentRecord:
    """GET /api/nif/clubs/{clubId}/payments/{externalId}"""
    from shared.nif.payments import outbox

    club_id = _club_id(req)
    row = outbox.get(club_id, _external_id(req))
    if row is None:
        raise not_found("No payment with this externalId for this club.")
    return to_record(row, nif_status=True)


def list_payments(req: ApiRequest) -> dict[str, Any]:
    """GET /api/nif/clubs/{clubId}/payments?status=&pageSize=&continuationToken="""
    from shared.nif.payments import outbox

    club_id = _club_id(req)
    status = (req.params.get("status") or "").strip().lower() or None
    if status is not None and status not in STATUSES:
        raise bad_request("Unknown status filter.", errors=[FieldError("status", f"one of {', '.join(STATUSES)}")])
    page_size = req.int_param("pageSize", where="query", default=100, minimum=1, maximum=MAX_PAGE)
    token = req.params.get("continuationToken") or None
    try:
        rows, next_token = outbox.page(club_id, status, page_size, token)
    except ValueError:
        raise bad_request("Invalid continuation token.", errors=[FieldError("continuationToken", "invalid")]) from None
    return {
        "clubId": club_id,
        "items": [to_record(r).model_dump(mode="json") for r in rows],
        "continuationToken": next_token,
    }


def get_person_payments(req: ApiRequest) -> Any:
    """GET /api/nif/clubs/{clubId}/persons/{personId}/payments?fromDate=&toDate="""
    from shared.nif.api import _nif
    from shared.nif.payments.models import PersonPayments
    from shared.nif.payments.nif import get_payment_details
    from shared.nif.payments.service import record_merge

    club_id = _club_id(req)
    violations, query = rules.validate_details_query(
        req.route_params.get("personId"), req.params.get("fromDate"), req.params.get("toDate"), today=_today()
    )
    if violations or query is None:
        raise _problem(violations)
    with _nif():
        page = get_payment_details(club_id, query.person_id, query.from_date, query.to_date)
    updated = page.updated_person_id
    merged = bool(updated and updated != query.person_id)
    if merged and updated:
        record_merge(query.person_id, updated, f"details of club {club_id}")
    return PersonPayments(
        personId=query.person_id,
        updatedPersonId=updated,
        personMerged=merged,
        fromDate=query.from_date,
        toDate=query.to_date,
        totalRecords=page.total if page.total is not None else len(page.payments),
        payments=page.payments,
    )


def get_payment_types(req: ApiRequest) -> Any:
    """GET /api/nif/payment-types: Tp_PaymentType rows from the queue, else NIF's documented list."""
    from shared.nif.payments import facts
    from shared.nif.payments.models import PaymentTypes

    types = facts.payment_types()
    if types:
        return PaymentTypes(source="queue", types=types)
    return PaymentTypes(source="reference", types=facts.reference_types())


def retry_now(req: ApiRequest) -> dict[str, Any]:
    """POST /api/nif/payments/retry[?force=true] (admin): run the retry drain once, now; ``force``
    treats every open payment as due (after an outage is over), backoff ignored."""
    from shared.nif.payments import service

    force = (req.params.get("force") or "").strip().lower()
    if force not in ("", "true", "false"):
        raise bad_request("force must be true or false.", errors=[FieldError("force", "true or false")])
    return {"outcomes": service.drain(force=force == "true").summary()}


def run_timer(timer: Any) -> None:
    """The retry timer: one drain; a run that cannot read the index raises (the host logs it)."""
    from shared.nif.payments import service

    result = service.drain()
    if getattr(timer, "past_due", False):
        log.info("payment retry timer was past due; ran once: %s", result.summary())
