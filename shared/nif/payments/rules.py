"""Payment rules, checked locally with the code NIF would answer. Pure.

No I/O, no clock, no Azure SDK, no httpx: the caller passes ``today`` (NIF's calendar date,
:func:`shared.nif.rules.local_today`) and what the mirror knows (payment types, the membership).
NIF publishes no codes for POST payment detail; we use the membership family's codes, as the
reference suggests ([I]), so a vendor handles both endpoints alike:

====  ========================================================================================
code  rule (POST payment detail)
====  ========================================================================================
1002  ``personId`` missing or not a positive id (NIF: "Invalid Person Id")
1036  ``periodFrom`` missing ("Start date is required")
1007  ``periodFrom`` outside the current year in ``LOCAL_TIMEZONE``
1006  the mirror knows the person's memberships in this club and ``orgId`` is neither the club
      nor one of those branches/groups
3001  the mirror knows the club membership and ``periodFrom`` is before its start ("Membership
      not found for specific period from date")
1039  everything else: a required field missing (``externalId``, ``orgId``, ``paidToOrgId``,
      ``paymentTypeId``, ``amount``, ``isPaid``, ``paidDate``, ``periodTo``,
      ``paymentCategory``); ``paymentTypeId`` not 0–4 (or removed / added by ``Tp_PaymentType``
      rows); ``amount`` < 0, more than two decimals or ≥ 10^9; ``periodTo`` not after
      ``periodFrom``; ``externalId`` 1–25 printable characters without ``/ \\ # ? %`` or
      surrounding spaces; ``paymentCategory`` ≤ 127; ``comment`` ≤ 200
====  ========================================================================================

GET payment details (NIF's own codes, page 608403459): 1022 PersonId required, 1023 From Date
required, 1024 To Date required, 1025 From date year earlier than the current year, 1026 To date
before From date (an unreadable date is 1039).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from shared.nif.models import INT32_MAX
from shared.nif.payments.models import NifPaymentDetail, PaymentDetail, PaymentRequest
from shared.nif.rules import NIF_MESSAGES, Violation

__all__ = [
    "MESSAGES",
    "PAYMENT_TYPES",
    "PRECEDENCE",
    "DetailsPage",
    "MembershipFacts",
    "PaymentTypeFacts",
    "content_hash",
    "lookup_window",
    "normalise_details",
    "primary_code",
    "retry_delay",
    "validate_details_query",
    "validate_payment",
]

#: NIF's payment types (reference, page 561938438).
PAYMENT_TYPES: dict[int, str] = {
    0: "Membership fee",
    1: "License",
    2: "Training fee",
    3: "Registration fee",
    4: "Other",
}

MESSAGES: dict[int, str] = {
    **NIF_MESSAGES,
    1022: "PersonId is required.",
    1023: "From Date is required.",
    1024: "To Date is required.",
    1025: "From date year cannot be earlier than the current year.",
    1026: "To date must not be before From date.",
}

#: Order in which codes win when a request breaks several rules.
PRECEDENCE: tuple[int, ...] = (1002, 1022, 1023, 1024, 1036, 1007, 1025, 1026, 1006, 3001, 1039)

MAX_AMOUNT = Decimal(10) ** 9
EXTERNAL_ID_MAX = 25
_LENGTHS = {"paymentCategory": 127, "comment": 200}
_FORBIDDEN_IN_ID = re.compile(r"[/\\#?%]")
_REQUIRED_1039 = (
    "orgId",
    "paidToOrgId",
    "paymentTypeId",
    "amount",
    "isPaid",
    "paidDate",
    "periodTo",
    "paymentCategory",
)


@dataclass(frozen=True)
class PaymentTypeFacts:
    """What ``Tp_PaymentType`` rows say: ids NIF sent as current, ids it deleted or deactivated."""

    active: frozenset[int] = frozenset()
    removed: frozenset[int] = frozenset()

    def allowed(self) -> frozenset[int]:
        return (frozenset(PAYMENT_TYPES) | self.active) - self.removed


@dataclass(frozen=True)
class MembershipFacts:
    """The person's membership in this club as the mirror knows it (only when it knows one)."""

    start: date | None
    org_ids: frozenset[int] = field(default_factory=frozenset)  # the club, the person's branches/groups


def primary_code(violations: Iterable[Violation]) -> int | None:
    """The code that wins (:data:`PRECEDENCE`), None for no violations."""
    ordered = _sorted(list(violations))
    return ordered[0].code if ordered else None


def _sorted(out: list[Violation]) -> list[Violation]:
    rank = {code: i for i, code in enumerate(PRECEDENCE)}
    return sorted(out, key=lambda v: (rank.get(v.code, len(rank)), v.path))


def external_id_problem(value: str | None) -> str | None:
    """Why ``value`` cannot be an externalId, or None (also used for the route parameter)."""
    if value is None:
        return "required: your payment reference, our idempotency key"
    if not 1 <= len(value) <= EXTERNAL_ID_MAX:
        return f"length must be 1–{EXTERNAL_ID_MAX} characters"
    if value != value.strip() or not value.isprintable() or _FORBIDDEN_IN_ID.search(value):
        return "printable characters only, without / \\ # ? % or surrounding spaces"
    return None


def validate_payment(
    req: PaymentRequest,
    *,
    today: date,
    types: PaymentTypeFacts | None = None,
    membership: MembershipFacts | None = None,
) -> list[Violation]:
    """All rule violations of ``req``, ordered by :data:`PRECEDENCE` then path."""
    out: list[Violation] = []
    if not req.personId or req.personId <= 0:
        out.append(Violation(1002, "personId", "required: a positive NIF PersonId"))
    problem = external_id_problem(req.externalId)
    if problem:
        out.append(Violation(1039, "externalId", problem))
    for name in _REQUIRED_1039:
        if getattr(req, name) is None:
            out.append(Violation(1039, name, "required"))
    for name in ("orgId", "paidToOrgId"):
        if getattr(req, name) == 0:
            out.append(Violation(1039, name, "must be a NIF organisation id"))
    if req.paymentTypeId is not None and req.paymentTypeId not in (types or PaymentTypeFacts()).allowed():
        out.append(Violation(1039, "paymentTypeId", _type_message(types)))
    if req.amount is not None:
        if req.amount < 0:
            out.append(Violation(1039, "amount", "must not be negative"))
        elif req.amount >= MAX_AMOUNT:
            out.append(Violation(1039, "amount", "must be below 1 000 000 000"))
        elif req.amount != req.amount.quantize(Decimal("0.01")):
            out.append(Violation(1039, "amount", "at most two decimals (NIF: 000.00)"))
    out += _period_rules(req, today, membership)
    for name, limit in _LENGTHS.items():
        value = getattr(req, name)
        if value is not None and len(value) > limit:
            out.append(Violation(1039, name, f"at most {limit} characters"))
    if membership is not None and membership.org_ids and req.orgId and req.orgId not in membership.org_ids:
        out.append(Violation(1006, "orgId", "neither the club nor a branch or group of this person's memberships"))
    return _sorted(out)


def _type_message(types: PaymentTypeFacts | None) -> str:
    allowed = sorted((types or PaymentTypeFacts()).allowed())
    return "must be one of " + ", ".join(f"{i} ({PAYMENT_TYPES.get(i, 'from NIF')})" for i in allowed)


def _period_rules(req: PaymentRequest, today: date, membership: MembershipFacts | None) -> list[Violation]:
    out: list[Violation] = []
    start, end = req.periodFrom, req.periodTo
    if start is None:
        out.append(Violation(1036, "periodFrom", "required"))
    else:
        if start.year != today.year:
            out.append(Violation(1007, "periodFrom", f"must be in {today.year}"))
        if membership is not None and membership.start is not None and start < membership.start:
            out.append(Violation(3001, "periodFrom", f"before the membership's start ({membership.start.isoformat()})"))
    if start is not None and end is not None and end <= start:
        out.append(Violation(1039, "periodTo", "must be after periodFrom"))
    return out


# --- GET payment details ----------------------------------------------------------------------


@dataclass(frozen=True)
class DetailsQuery:
    person_id: int
    from_date: date
    to_date: date


def _parse_date(text: str | None) -> date | None | str:
    """None (absent), a date, or ``"bad"``."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return "bad"
    try:
        return date.fromisoformat(text)
    except ValueError:
        return "bad"


def validate_details_query(
    person_id: str | None, from_date: str | None, to_date: str | None, *, today: date
) -> tuple[list[Violation], DetailsQuery | None]:
    """NIF's checks of GET payment details (1022–1026), before any call."""
    out: list[Violation] = []
    pid: int | None = None
    text = (person_id or "").strip()
    if not text:
        out.append(Violation(1022, "personId", "required"))
    elif not re.fullmatch(r"[0-9]{1,10}", text) or not 0 < int(text) <= INT32_MAX:
        out.append(Violation(1022, "personId", "must be a positive NIF PersonId"))
    else:
        pid = int(text)
    start, end = _parse_date(from_date), _parse_date(to_date)
    for value, name, code in ((start, "fromDate", 1023), (end, "toDate", 1024)):
        if value is None:
            out.append(Violation(code, name, "required (yyyy-mm-dd)"))
        elif value == "bad":
            out.append(Violation(1039, name, "must be a date (yyyy-mm-dd)"))
    if isinstance(start, date) and start.year < today.year:
        out.append(Violation(1025, "fromDate", f"must not be before {today.year}"))
    if isinstance(start, date) and isinstance(end, date) and end < start:
        out.append(Violation(1026, "toDate", "must not be before fromDate"))
    if out or pid is None or not isinstance(start, date) or not isinstance(end, date):
        return _sorted(out), None
    return [], DetailsQuery(pid, start, end)


def lookup_window(period_to: date, today: date) -> tuple[date, date] | None:
    """FromDate/ToDate for finding a payment we may have sent: whole years, from 1 January of this
    year (1025: NIF refuses earlier) to 31 December of the period's last year, so the query
    carries no date of the payment itself. None when the period ended before this year: NIF's
    look-up cannot reach it, and a payment that cannot be looked up is never posted blind."""
    if period_to.year < today.year:
        return None
    return date(today.year, 1, 1), date(period_to.year, 12, 31)


@dataclass
class DetailsPage:
    payments: list[PaymentDetail]
    total: int | None
    page: int | None
    page_size: int | None
    updated_person_id: int | None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) < 10:
        return int(value.strip())
    return None


def _ci(data: Mapping[str, Any], name: str) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in data.items()}
    return lowered.get(name.lower())


def normalise_details(data: Any) -> DetailsPage:
    """Either response shape → one page: ``{totalRecords, pageSize, currentPage, data[]}`` or the
    older ``{paymentDetails[], updatedPersonId}`` (also a bare list). Raises ``ValueError`` for
    anything else (the caller's contract error)."""
    if isinstance(data, list):
        items, meta = data, {}
    elif isinstance(data, dict):
        items = _ci(data, "data")
        if items is None:
            items = _ci(data, "paymentDetails")
        if items is None:
            items = []
        meta = data
    else:
        raise ValueError("payment details: neither an object nor a list")  # noqa: TRY004 - the caller's contract error
    if not isinstance(items, list):
        raise ValueError("payment details: data is not a list")  # noqa: TRY004 - the caller's contract error
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("payment details: an item is not an object")  # noqa: TRY004 - the caller's contract error
        nif = NifPaymentDetail.model_validate(item)
        out.append(
            PaymentDetail(
                paymentId=nif.paymentId,
                personId=nif.personId,
                paidToOrgId=nif.paidToOrgId,
                orgId=nif.orgId,
                paymentTypeId=nif.paymentTypeId,
                paidDate=nif.paidDate,
                periodFrom=nif.periodFrom,
                periodTo=nif.periodTo,
                paymentCategory=nif.paymentCategory,
                amount=nif.fee if nif.fee is not None else nif.amount,
                comment=nif.comment,
                externalReference=nif.externalReference if nif.externalReference is not None else nif.externalId,
            )
        )
    return DetailsPage(
        out,
        _int(_ci(meta, "totalRecords")),
        _int(_ci(meta, "currentPage")),
        _int(_ci(meta, "pageSize")),
        _int(_ci(meta, "updatedPersonId")) or None,
    )


# --- outbox helpers -------------------------------------------------------------------------------


def content_hash(req: PaymentRequest) -> str:
    """SHA-256 of the request's canonical content: equal for the same payment however the JSON
    was written (key order, spelling case, ``350`` vs ``"350.00"``)."""
    text = json.dumps(req.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def retry_delay(attempts: int, *, base: float, cap: float, jitter: float) -> float:
    """Seconds before the next try after ``attempts`` tries: ``base · 2^(attempts-1)`` capped at
    ``cap``, times ``jitter`` (the caller draws it from 0.8–1.2 so a recovered NIF is not hit by
    every queued payment in the same second)."""
    exponent = min(max(attempts - 1, 0), 30)
    return min(cap, base * 2**exponent) * jitter
