"""The two NIF payment calls, on the process-wide NIF client (its token, retries and errors).

- ``POST api/v{version}/membership/Addpaymentdetail``: not retried once it may have reached NIF
  (the client retries a POST only when the connection was never made).
- ``GET read/api/Payment/paymentdetails``: note the path has no version segment and is not under
  ``api/v{version}``, so it is built from ``NIF_API_BASE_URL``. Idempotent: the client retries it.
  Every page is followed; the page parameter is not documented (``PageNumber`` is our reading,
  [I]), so the loop also stops when NIF answers the same page again.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError

from shared.nif.errors import NifContractError, NifRejected, find_code, rejection_message
from shared.nif.payments.models import NifPaymentResponse, PaymentDetail
from shared.nif.payments.rules import DetailsPage, normalise_details

POST_PATH = "membership/Addpaymentdetail"
GET_PATH = "read/api/Payment/paymentdetails"
MAX_PAGES = 100


def _client() -> Any:
    from shared.nif.client import get_nif_client

    return get_nif_client()


def post_payment(club_id: int, body: dict[str, Any]) -> NifPaymentResponse:
    """POST payment detail; raises the client's ``NifError`` family."""
    client = _client()
    resp = client._call("POST", POST_PATH, club_id, json_body=body)
    data = client._json(resp)
    if isinstance(data, dict) and not any(str(k).strip().lower() in ("paymentid", "updatedpersonid") for k in data):
        code, message = find_code(data)
        if code is not None:  # an error code inside a 200
            raise NifRejected(
                rejection_message(resp.status_code, code, message), status=resp.status_code, nif_code=code
            )
    try:
        return NifPaymentResponse.model_validate(data)
    except ValidationError:
        raise NifContractError("NIF payment response failed validation", status=resp.status_code) from None


def get_payment_details(club_id: int, person_id: int, from_date: date, to_date: date) -> DetailsPage:
    """GET payment details, every page followed; one :class:`DetailsPage` with all payments."""
    from shared.config import get_settings

    client = _client()
    base = get_settings().NIF_API_BASE_URL or ""
    collected: list[PaymentDetail] = []
    seen_pages: set[int] = set()
    updated: int | None = None
    total: int | None = None
    for number in range(1, MAX_PAGES + 1):
        query = {"PersonId": person_id, "FromDate": from_date.isoformat(), "ToDate": to_date.isoformat()}
        if number > 1:
            query["PageNumber"] = number
        resp = client._call("GET", f"{base.rstrip('/')}/{GET_PATH}?{urlencode(query)}", club_id)
        try:
            page = normalise_details(client._json(resp))
        except (ValueError, ValidationError):
            raise NifContractError("NIF payment details response failed validation", status=resp.status_code) from None
        updated = updated or page.updated_person_id
        total = page.total if page.total is not None else total
        current = page.page or number
        if current in seen_pages:
            break  # NIF ignored the page parameter: this page was read already
        seen_pages.add(current)
        collected.extend(page.payments)
        if not page.payments or page.total is None or len(collected) >= page.total:
            break
    return DetailsPage(collected, total if total is not None else len(collected), None, None, updated)
