"""The NIF sandbox's payment endpoints (local only; mounted by :class:`devtools.nif_sandbox.NifSandbox`).

- ``POST /api/v1/membership/Addpaymentdetail``: NIF's rules (the wrapper's own pure rules, as the
  sandbox does for memberships: 1002 unknown person, 1007 period outside the current year, 1006
  an org that is not the club's, 1039 the rest), then the payment is **recorded** and answered
  with ``message``, ``updatedPersonId``, ``paymentTypeId``, ``paymentId``, ``paymentCategory``.
  Like NIF ([I] in the reference) it does not de-duplicate by ``externalId``: a second POST is a
  second payment, which is what the wrapper must never cause. A ``Tp_PaymentStatus`` message
  (ObjectId = paymentId) is appended to the queue outbox.
- ``GET /read/api/Payment/paymentdetails?PersonId=&FromDate=&ToDate=[&PageNumber=]``: checks
  1022–1026, answers what was recorded for the person (a merged person's payments under the
  survivor), paged (``page_size``), in the current shape or, with ``shape = "legacy"``, the
  older ``{paymentDetails[], updatedPersonId}``.

Controls (Python, and HTTP for ``make run``):

- ``merge_person(old, new)``: NIF merged ``old`` into ``new``; payments for ``old`` answer
  ``updatedPersonId = new``;
- ``emit_payment_types()``: ``Tp_PaymentType`` messages for NIF's five types;
- faults through the sandbox's ``inject(path, status=, delay=, times=, method=, after=)``:
  ``after=True`` records first and then waits ``delay`` (a time-out **after** recording);
- ``POST /_sandbox/faults`` with that JSON; ``GET /_sandbox/payments``; ``POST
  /_sandbox/payment-types``; ``POST /_sandbox/persons/{old}/merge/{new}``.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from shared.nif.payments.models import PaymentRequest
from shared.nif.payments.rules import PAYMENT_TYPES, MembershipFacts, validate_details_query, validate_payment
from shared.nif.rules import NIF_MESSAGES

if TYPE_CHECKING:
    from devtools.nif_sandbox import NifSandbox

POST_ROUTE = ["membership", "addpaymentdetail"]
DEMO_CLUB = 19428
DEMO_PERSON = 8756935  # a validated person the sandbox knows


def example_payment(external_id: str, person_id: int = DEMO_PERSON, **changes: Any) -> dict[str, Any]:
    """A valid payment body for the demo club, dated this year (the README's walkthrough, tests,
    bench); ``changes`` override fields, a ``None`` leaves one out."""
    year = datetime.now(UTC).year
    body: dict[str, Any] = {
        "externalId": external_id,
        "personId": person_id,
        "orgId": DEMO_CLUB,
        "paidToOrgId": DEMO_CLUB,
        "paymentTypeId": 0,
        "amount": 350.0,
        "isPaid": True,
        "paidDate": f"{year}-01-15",
        "periodFrom": f"{year}-01-01",
        "periodTo": f"{year}-12-31",
        "paymentCategory": "Invoice",
        **changes,
    }
    return {k: v for k, v in body.items() if v is not None}


GET_PARTS = ["read", "api", "payment", "paymentdetails"]


def _error(code: int, message: str | None = None, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "message": message or NIF_MESSAGES.get(code, "Error")}
    if errors:
        out["errors"] = errors
    return out


class PaymentBook:
    """Payments the sandbox has recorded (guarded by the sandbox's lock)."""

    def __init__(self, sandbox: NifSandbox) -> None:
        self.sb = sandbox
        self.recorded: list[dict[str, Any]] = []
        self.merged: dict[int, int] = {}
        self.page_size = 100
        self.shape = "current"

    # --- controls -------------------------------------------------------------------------------

    def merge_person(self, old: int, new: int) -> None:
        with self.sb._lock:
            self.merged[old] = new
            if old in self.sb.persons and new not in self.sb.persons:
                import dataclasses

                self.sb.persons[new] = dataclasses.replace(self.sb.persons[old], personId=new)

    def survivor(self, person_id: int) -> int:
        seen = {person_id}
        while person_id in self.merged and self.merged[person_id] not in seen:
            person_id = self.merged[person_id]
            seen.add(person_id)
        return person_id

    def emit_payment_types(self) -> None:
        with self.sb._lock:
            for type_id, name in PAYMENT_TYPES.items():
                self.sb._emit("Tp_PaymentType", type_id + 1, 1, {"paymentTypeId": type_id, "name": name})

    def posts_for(self, external_id: str) -> int:
        with self.sb._lock:
            return sum(1 for p in self.recorded if p["externalId"] == external_id)

    # --- NIF endpoints --------------------------------------------------------------------------

    def post(self, club: int, body: bytes) -> tuple[int, Any]:
        from pydantic import ValidationError

        try:
            data = json.loads(body)
            req = PaymentRequest.model_validate(data)
        except (ValueError, ValidationError):
            return 400, _error(1039)
        org = self.sb.orgs[club]
        org_ids = {club}
        for group in org["groups"]:
            org_ids.add(int(group["groupId"]))
            org_ids.update(int(b["branchId"]) for b in group.get("branches") or [])
        violations = [
            v
            for v in validate_payment(req, today=self.sb.today(), membership=MembershipFacts(None, frozenset(org_ids)))
            if not (v.path == "externalId" and req.externalId is None)  # optional on one of NIF's pages
        ]
        if violations:
            first = violations[0]
            return 400, _error(
                first.code, errors=[{"path": v.path, "code": v.code, "message": v.message} for v in violations]
            )
        with self.sb._lock:
            assert req.personId is not None  # rule 1002
            survivor = self.survivor(req.personId)
            if survivor not in self.sb.persons:
                return 400, _error(1002)
            payment_id = next(self.sb._ids)
            record = {
                "paymentId": payment_id,
                "clubId": club,
                "personId": survivor,
                "orgId": req.orgId,
                "paidToOrgId": req.paidToOrgId,
                "paymentTypeId": req.paymentTypeId,
                "amount": f"{req.amount:.2f}" if req.amount is not None else None,
                "isPaid": req.isPaid,
                "paidDate": req.paidDate.isoformat() if req.paidDate else None,
                "periodFrom": req.periodFrom.isoformat() if req.periodFrom else None,
                "periodTo": req.periodTo.isoformat() if req.periodTo else None,
                "paymentCategory": req.paymentCategory,
                "externalId": req.externalId,
                "comment": req.comment,
                "recordedAt": datetime.now(UTC).isoformat(),
            }
            self.recorded.append(record)
            self.sb._emit(
                "Tp_PaymentStatus",
                payment_id,
                1,
                {
                    "paymentId": payment_id,
                    "paymentStatusId": 2 if req.isPaid else 1,
                    "name": "Paid" if req.isPaid else "Unpaid",
                    "personId": survivor,
                    "orgId": req.orgId,
                },
            )
        return 200, {
            "message": f"Payment details added for membership of {req.personId} with {req.orgId} for period "
            f"{record['periodFrom']} - {record['periodTo']}",
            "updatedPersonId": survivor,
            "paymentTypeId": req.paymentTypeId,
            "paymentId": payment_id,
            "paymentCategory": req.paymentCategory,
        }

    def get(self, club: int, query: dict[str, str]) -> tuple[int, Any]:
        q = {k.lower(): v for k, v in query.items()}
        violations, parsed = validate_details_query(
            q.get("personid"), q.get("fromdate"), q.get("todate"), today=self.sb.today()
        )
        if violations or parsed is None:
            first = violations[0]
            return 400, _error(first.code, {1039: NIF_MESSAGES[1039]}.get(first.code, first.message))
        try:
            number = max(1, int(q.get("pagenumber") or 1))
        except ValueError:
            return 400, _error(1039)
        with self.sb._lock:
            survivor = self.survivor(parsed.person_id)
            rows = [
                p
                for p in self.recorded
                if p["clubId"] == club
                and p["personId"] == survivor
                and date.fromisoformat(p["periodFrom"]) <= parsed.to_date
                and date.fromisoformat(p["periodTo"]) >= parsed.from_date
            ]
        items = [
            {
                "personId": p["personId"],
                "paidToOrgId": p["paidToOrgId"],
                "paymentTypeId": p["paymentTypeId"],
                "paidDate": p["paidDate"],
                "periodFrom": p["periodFrom"],
                "periodTo": p["periodTo"],
                "paymentCategory": p["paymentCategory"],
                "fee": float(p["amount"]) if p["amount"] is not None else None,
                "comment": p["comment"],
                "externalReference": p["externalId"],
            }
            for p in rows
        ]
        if self.shape == "legacy":
            return 200, {"paymentDetails": items, "updatedPersonId": survivor}
        start = (number - 1) * self.page_size
        return 200, {
            "totalRecords": len(items),
            "pageSize": self.page_size,
            "currentPage": number,
            "data": items[start : start + self.page_size],
        }

    # --- sandbox-only HTTP controls -------------------------------------------------------------

    def sandbox_route(self, method: str, parts: list[str], body: bytes) -> tuple[int, Any] | None:
        """``parts`` after ``_sandbox``; None when the route is not a payment control."""
        if method == "GET" and parts == ["payments"]:
            with self.sb._lock:
                return 200, list(self.recorded)
        if method == "POST" and parts == ["payment-types"]:
            self.emit_payment_types()
            return 200, {"emitted": len(PAYMENT_TYPES)}
        if method == "POST" and len(parts) == 4 and parts[0] == "persons" and parts[2] == "merge":
            if not (parts[1].isdigit() and parts[3].isdigit()):
                return 400, {"message": "person ids must be integers"}
            self.merge_person(int(parts[1]), int(parts[3]))
            return 200, {"merged": int(parts[1]), "into": int(parts[3])}
        if method == "POST" and parts == ["faults"]:
            try:
                spec = json.loads(body or b"{}")
                self.sb.inject(
                    str(spec["path"]),
                    status=int(spec["status"]) if spec.get("status") is not None else None,
                    delay=float(spec.get("delay") or 0),
                    times=int(spec.get("times") or 1),
                    method=spec.get("method"),
                    after=bool(spec.get("after")),
                )
            except (ValueError, KeyError, TypeError):
                return 400, {"message": 'send {"path", "status"?, "delay"?, "times"?, "method"?, "after"?}'}
            return 200, {"injected": spec}
        if method == "DELETE" and parts == ["faults"]:
            with self.sb._lock:
                self.sb._faults.clear()
            return 200, {"cleared": True}
        return None
