"""Payment models (pure): the vendor's request, NIF's answers, and ours.

The request is NIF's ``Addpaymentdetail`` body (camelCase; keys matched case-insensitively as for
membership add) with ``externalId`` required: it is our idempotency key and NIF's traceable
reference. Types are checked here (a wrong type is a 422 with ``nifCode`` 1039 at its path); the
rules (ranges, dates, lengths) are :mod:`shared.nif.payments.rules`.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

from shared.nif.models import IsoDate, NifId, NifModel, OptStr, RequestId, Text

PaymentStatus = Literal["pending", "reported", "rejected", "queued", "failed"]
STATUSES: tuple[str, ...] = ("pending", "reported", "rejected", "queued", "failed")
OPEN_STATUSES = frozenset({"pending", "queued"})

_AMOUNT_TEXT = re.compile(r"^-?[0-9]{1,15}(\.[0-9]{1,15})?$")


def _amount(value: Any) -> Any:
    """A JSON number or a plain decimal string → ``Decimal``; anything else fails (1039)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("must be a number")  # noqa: TRY004 - pydantic turns ValueError into a 422
    if isinstance(value, int):
        if abs(value) >= 10**15:
            raise ValueError("amount out of range")
        return Decimal(value)
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str):
        text = value.strip()
        if not _AMOUNT_TEXT.match(text):
            raise ValueError("must be a decimal number such as 350.00")
    else:
        raise ValueError("must be a number")  # noqa: TRY004 - pydantic turns ValueError into a 422
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError("must be a number") from None
    if not number.is_finite() or abs(number) >= 10**15:
        raise ValueError("amount out of range")
    return number


def _strict_bool(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError("must be true or false")


Amount = Annotated[Decimal | None, BeforeValidator(_amount)]
StrictBool = Annotated[bool | None, BeforeValidator(_strict_bool)]


class PaymentRequest(NifModel):
    """``POST /api/nif/clubs/{clubId}/payments``: NIF's POST payment detail fields."""

    externalId: OptStr = Field(
        None, description="Required. Your payment/invoice reference (≤ 25 characters); our idempotency key."
    )
    personId: RequestId = Field(None, description="NIF PersonId of the member.")
    orgId: RequestId = Field(None, description="The club id for a membership fee, the branch id for a training fee.")
    paidToOrgId: RequestId = Field(None, description="The organisation that received the money (the club).")
    paymentTypeId: RequestId = Field(
        None, description="0 Membership fee, 1 License, 2 Training fee, 3 Registration fee, 4 Other."
    )
    amount: Amount = Field(None, description="≥ 0, at most two decimals (NIF: `000.00`).")
    isPaid: StrictBool = Field(None, description="Required (NIF stresses it must not be neglected).")
    paidDate: IsoDate = None
    periodFrom: IsoDate = Field(None, description="In the current year; not before the membership's start.")
    periodTo: IsoDate = Field(None, description="After periodFrom.")
    paymentCategory: OptStr = Field(None, description="≤ 127 characters, e.g. Online, Invoice.")
    comment: OptStr = Field(None, description="≤ 200 characters.")
    isFamilyMember: StrictBool = None

    def to_nif_json(self) -> dict[str, Any]:
        """The body sent to NIF (absent values left out; the amount as a number)."""
        out = self.model_dump(mode="json", exclude_none=True)
        if self.amount is not None:
            out["amount"] = float(self.amount)
        return out

    def canonical(self) -> dict[str, Any]:
        """What the content hash covers: every field, the amount as text with two decimals."""
        out = self.model_dump(mode="json")
        if self.amount is not None:
            out["amount"] = f"{self.amount:.2f}"
        return out


# --- NIF's answers (tolerant) --------------------------------------------------------------------


class NifPaymentResponse(NifModel):
    """NIF's answer to POST payment detail."""

    message: Text = None
    updatedPersonId: NifId = None
    paymentTypeId: NifId = None
    paymentId: NifId = None
    paymentCategory: Text = None


class NifPaymentDetail(NifModel):
    """One payment of GET payment details (``data[]``, or ``paymentDetails[]`` in the older shape)."""

    paymentId: NifId = None
    personId: NifId = None
    paidToOrgId: NifId = None
    orgId: NifId = None
    paymentTypeId: NifId = None
    paidDate: Text = None
    periodFrom: Text = None
    periodTo: Text = None
    paymentCategory: Text = None
    fee: Text = None
    amount: Text = None
    comment: Text = None
    externalReference: Text = None
    externalId: Text = None


# --- our answers ---------------------------------------------------------------------------------


class PaymentError(BaseModel):
    code: str = Field(description="Stable code: nif-rejected, nif-unavailable, nif-timeout, nif-contract, max-age.")
    nifCode: int | None = None
    message: str = Field(description="Our own sentence (NIF's raw text is never passed on).")
    at: str | None = None


class NifPaymentStatus(BaseModel):
    statusId: int | None = None
    name: str | None = None


class PaymentRecord(BaseModel):
    """A payment in the outbox (ids and states only: no amounts, dates or comments)."""

    externalId: str
    clubId: int
    status: PaymentStatus
    statusUrl: str = Field(description="GET this for the payment's current state.")
    attempts: int = Field(description="Calls made to NIF for this payment (posts and look-ups).")
    lastError: PaymentError | None = None
    paymentId: int | None = Field(None, description="NIF's id (null when the payment was found by a look-up).")
    personId: int | None = None
    updatedPersonId: int | None = None
    personMerged: bool = Field(False, description="NIF answered another PersonId: re-key the member to it.")
    orgId: int | None = None
    paymentTypeId: int | None = None
    resolvedBy: Literal["post", "lookup"] | None = Field(
        None, description="`lookup`: NIF already had it when a retry checked (never sent twice)."
    )
    createdAt: str
    updatedAt: str | None = None
    reportedAt: str | None = None
    nextAttemptAt: str | None = None
    nifStatus: NifPaymentStatus | None = Field(None, description="From Tp_PaymentStatus, when a row matches.")


class PaymentPage(BaseModel):
    clubId: int
    items: list[PaymentRecord]
    continuationToken: str | None = None


class PaymentDetail(BaseModel):
    """A payment as NIF recorded it, normalised from either response shape."""

    paymentId: int | None = None
    personId: int | None = None
    paidToOrgId: int | None = None
    orgId: int | None = None
    paymentTypeId: int | None = None
    paidDate: str | None = None
    periodFrom: str | None = None
    periodTo: str | None = None
    paymentCategory: str | None = None
    amount: str | None = Field(None, description="NIF's `fee` (or `amount`), as decimal text.")
    comment: str | None = None
    externalReference: str | None = None


class PersonPayments(BaseModel):
    personId: int = Field(description="The PersonId asked for.")
    updatedPersonId: int | None = None
    personMerged: bool = False
    fromDate: date
    toDate: date
    totalRecords: int
    payments: list[PaymentDetail]


class PaymentType(BaseModel):
    paymentTypeId: int
    name: str | None = None
    deleted: bool = False


class PaymentTypes(BaseModel):
    source: Literal["queue", "reference"] = Field(
        description="`queue`: Tp_PaymentType rows NIF sent; `reference`: NIF's documented list (none sent yet)."
    )
    types: list[PaymentType]
