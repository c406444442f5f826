"""OpenAPI operations of the NIF payment routes."""

from shared.nif.payments.models import PaymentPage, PaymentRecord, PaymentRequest, PaymentTypes, PersonPayments
from shared.openapi import Operation, int_schema

_TAGS = ("nif-payments",)
_NIF_ERRORS = {
    404: "Unknown club (nifCode 1018)",
    502: "NIF unavailable, failed, or refused our credentials",
    504: "NIF did not answer in time",
}

OPERATIONS = [
    Operation(
        "POST",
        "/api/nif/clubs/{clubId}/payments",
        "Report a settled payment to NIF exactly once (durable outbox; idempotent by externalId)",
        description="Validated locally first: a 422 problem carries NIF's code in `nifCode` (1002, 1036, 1007, "
        "1006, 3001, 1039) and per-field `errors`; nothing is recorded or sent. Then the payment is recorded "
        "(`pending`) before NIF is called. 200 `reported`; 202 `pending`/`queued` with `Location` (retried by "
        "the timer; a payment whose earlier call may have reached NIF is looked up first, never sent twice); "
        "422 `payment-rejected` (NIF refused it: `nifCode`, our sentence); 502 `payment-failed` (older than "
        "NIF_PAYMENTS_MAX_AGE_HOURS). The same externalId with the same content answers the recorded state "
        "without calling NIF; with other content 409 `payment-conflict`.",
        request_model=PaymentRequest,
        response_model=PaymentRecord,
        responses={
            202: "Recorded; NIF unavailable or still being called: queued for retry (see statusUrl)",
            409: "This externalId is recorded with different content",
            502: "The payment failed: NIF did not confirm it within the maximum age",
        },
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/api/nif/clubs/{clubId}/payments",
        "The club's payment outbox, paged (filter with ?status=)",
        response_model=PaymentPage,
        responses={400: "Malformed clubId, status, pageSize or continuationToken"},
        tags=_TAGS,
        query=(
            ("status", "string", "pending, reported, rejected, queued or failed"),
            ("pageSize", int_schema(1, 500, 100), "1–500 (default 100)"),
            ("continuationToken", "string", "From the previous page"),
        ),
    ),
    Operation(
        "GET",
        "/api/nif/clubs/{clubId}/payments/{externalId}",
        "One payment's state: status, attempts, last error, NIF ids, NIF status (Tp_PaymentStatus)",
        response_model=PaymentRecord,
        responses={400: "Malformed clubId or externalId", 404: "No such payment for this club"},
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/api/nif/clubs/{clubId}/persons/{personId}/payments",
        "NIF's payment details for a person (every page followed, both response shapes normalised)",
        description="Checked locally first with NIF's codes: 1022 personId, 1023 fromDate required, 1024 toDate "
        "required, 1025 fromDate before the current year, 1026 toDate before fromDate (422 with `nifCode`).",
        response_model=PersonPayments,
        responses={400: "Malformed clubId", 422: "nifCode 1022–1026 (or 1039 for an unreadable date)", **_NIF_ERRORS},
        tags=_TAGS,
        query=(
            ("fromDate", "string", "yyyy-mm-dd, required, not before 1 January this year"),
            ("toDate", "string", "yyyy-mm-dd, required, not before fromDate"),
        ),
    ),
    Operation(
        "GET",
        "/api/nif/payment-types",
        "Payment types: Tp_PaymentType rows from NIF's queue, else NIF's documented list",
        response_model=PaymentTypes,
        tags=_TAGS,
    ),
    Operation(
        "POST",
        "/api/nif/payments/retry",
        "Run the payment retry drain now (what the timer does)",
        auth="admin",
        responses={400: "force is not true or false"},
        tags=_TAGS,
        query=(("force", "boolean", "true: every open payment is due now (backoff ignored; leases still hold)"),),
    ),
]
