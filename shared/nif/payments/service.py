"""Reporting a payment, and retrying the ones NIF has not confirmed (the timer's drain).

States (docs/payments.md)::

    (claim) ─► pending ──NIF 2xx────────────────► reported   (paymentId, updatedPersonId)
                  │ ────NIF 4xx (its refusal)───► rejected   (nifCode, our sentence)
                  │ ────timeout/5xx/429/transport► queued ──(timer: look up, then post)──► …
                  └─(process died; grace passed)─► resolved by the timer as a queued payment
    queued/pending older than NIF_PAYMENTS_MAX_AGE_HOURS ─► failed (alert log event, listed)

**Never sent twice**: a payment whose earlier call may have reached NIF (``pending``, or queued
after a timeout, a 5xx or a transport error) is first looked up with GET payment details
(``externalReference`` = our ``externalId``); it is posted again only when NIF has no record of
it. Before each retry the row is leased by an ETag-conditional update that also marks the
outcome unknown, so a worker that dies mid-call leaves a payment that the next run looks up.

Logs carry ids only (club, externalId, personId, paymentId, codes): never amounts, dates,
categories or comments.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared import lifecycle
from shared.nif.errors import NifContractError, NifError, NifRejected, NifTimeout
from shared.nif.payments import outbox
from shared.nif.payments.models import NifPaymentResponse, PaymentRequest
from shared.nif.payments.rules import MESSAGES, content_hash, lookup_window, primary_code, retry_delay
from shared.nif.rules import local_today
from shared.problems import Problem

log = logging.getLogger("shared.nif.payments")

#: Injectable clock (tests move it): an aware UTC datetime.
clock: Callable[[], datetime] = lambda: datetime.now(UTC)
#: Injectable jitter source for the backoff (0.8–1.2).
jitter: Callable[[], float] = lambda: random.uniform(0.8, 1.2)

MAX_PER_RUN = 5000
#: More due payments than this in one club: read its open payments with one query.
BULK_THRESHOLD = 10
TERMINAL = frozenset({"reported", "rejected", "failed"})
#: HTTP answers that say NIF did not process the request (nothing to look up before a retry).
_NOT_APPLIED_STATUSES = frozenset({401, 403, 404, 429})


@dataclass(frozen=True)
class Policy:
    grace: timedelta
    max_age: timedelta
    base: float
    cap: float
    lease: timedelta
    concurrency: int
    tz: str

    @classmethod
    def from_settings(cls) -> Policy:
        from shared.config import get_settings

        s = get_settings()
        return cls(
            grace=timedelta(seconds=s.NIF_PAYMENTS_PENDING_GRACE_SECONDS),
            max_age=timedelta(hours=s.NIF_PAYMENTS_MAX_AGE_HOURS),
            base=float(s.NIF_PAYMENTS_RETRY_BASE_SECONDS),
            cap=float(s.NIF_PAYMENTS_RETRY_MAX_SECONDS),
            lease=timedelta(seconds=2 * (s.NIF_CONNECT_TIMEOUT_SECONDS + s.NIF_READ_TIMEOUT_SECONDS) + 30),
            concurrency=s.NIF_PAYMENTS_RETRY_CONCURRENCY,
            tz=s.LOCAL_TIMEZONE,
        )


def _ctx(row: dict[str, Any]) -> str:
    return f"club {row.get('clubId')} externalId {row.get('externalId')!r}"


_executor: list[ThreadPoolExecutor] = []
_executor_lock = threading.Lock()


def io_pool() -> ThreadPoolExecutor:
    """Process-wide threads for storage calls that run side by side within one request."""
    with _executor_lock:
        if not _executor:
            _executor.append(ThreadPoolExecutor(max_workers=32, thread_name_prefix="payments-io"))
        return _executor[0]


@lifecycle.on_reset
def _reset_pool() -> None:
    with _executor_lock:
        if _executor:
            _executor.pop().shutdown(wait=False)


# --- reporting (the POST) -------------------------------------------------------------------------


def report(
    club_id: int, req: PaymentRequest, policy: Policy, check: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Record, then report ``req`` once; returns the payment row as it ends (any state).

    The claim (row + index row, one transaction) and ``check`` (the mirror's rules; raises a 422
    problem) run side by side; a claimed payment that fails the check is withdrawn before
    anything is sent (and one left behind by a crash is checked again by the timer). Raises a
    409 :class:`~shared.problems.Problem` when the externalId is recorded with other content.
    """
    assert req.externalId is not None  # rules require it
    now = clock()
    digest = content_hash(req)
    outbox.register_club(club_id)
    row = outbox.new_row(club_id, req.externalId, content_hash=digest, request=req.to_nif_json(), now=now)
    claimed = io_pool().submit(outbox.claim, row, now + policy.grace)
    failed: BaseException | None = None
    try:
        if check is not None:
            check()
    except Exception as exc:  # noqa: BLE001 - re-raised below, once the claim is settled (a replay wins)
        failed = exc
    if not claimed.result():
        return _replay(club_id, req.externalId, digest)
    if failed is not None:
        _withdraw(row)
        raise failed
    return _post(row, "*", policy, 0)


def _withdraw(row: dict[str, Any]) -> None:
    from shared.tables import StorageError

    try:
        outbox.unclaim(row)
    except StorageError:
        log.warning("payment %s: could not withdraw the claim; the timer checks it again", _ctx(row))


def _replay(club_id: int, external_id: str, digest: str) -> dict[str, Any]:
    """The recorded state (an open payment's index row was written with it, in one transaction)."""
    row = outbox.get(club_id, external_id)
    if row is None:  # withdrawn (it failed the mirror's rules) between the claim and this read
        raise _conflict("The payment's record changed while it was read; send it again.")
    if row.get("hash") != digest:
        raise _conflict("This externalId is already recorded with different content.")
    log.info("payment %s replayed: recorded state %s, NIF not called", _ctx(row), row.get("status"))
    return row


def _conflict(detail: str) -> Problem:
    return Problem(409, "Conflict", detail, type_slug="payment-conflict")


def _post(row: dict[str, Any], etag: str, policy: Policy, attempts: int) -> dict[str, Any]:
    """POST the row's request to NIF (call number ``attempts + 1``) and record the outcome."""
    from shared.nif.payments.nif import post_payment

    attempts += 1
    try:
        answer = post_payment(int(row["clubId"]), row["request"])
    except NifError as exc:
        return _failed_call(row, etag, exc, attempts, policy)
    return _reported(row, etag, attempts, answer=answer)


def _end(row: dict[str, Any], etag: str, changes: dict[str, Any]) -> dict[str, Any] | None:
    """Record a final state (row + index row, one transaction); None if another writer moved the
    row first (its state stands)."""
    from shared.tables import Conflict

    try:
        return outbox.finish(row, {**changes, "leaseUntil": None, "nextAttemptAt": None, "updatedAt": clock()}, etag)
    except Conflict:
        return None


def _current(row: dict[str, Any]) -> dict[str, Any]:
    current = outbox.get(int(row["clubId"]), str(row["externalId"]))
    log.info("payment %s: another writer recorded %s first", _ctx(row), current and current.get("status"))
    return current or row


def _reported(
    row: dict[str, Any], etag: str, attempts: int, *, answer: NifPaymentResponse | None = None
) -> dict[str, Any]:
    person_id = row.get("personId")
    updated = answer.updatedPersonId if answer is not None else None
    merged = bool(updated and person_id and updated != person_id)
    new = _end(
        row,
        etag,
        {
            "status": "reported",
            "attempts": attempts,
            "paymentId": answer.paymentId if answer is not None else None,
            "updatedPersonId": updated,
            "personMerged": merged or None,
            "resolvedBy": "post" if answer is not None else "lookup",
            "reportedAt": clock(),
            "outcomeUnknown": None,
            **_no_error(),
        },
    )
    if new is None:
        return _current(row)
    how = "posted" if answer is not None else "found by look-up"
    log.info("payment %s reported to NIF (paymentId %s, %s, call %d)", _ctx(row), new.get("paymentId"), how, attempts)
    if merged and person_id and updated:
        record_merge(int(person_id), int(updated), _ctx(row))
    return new


def _no_error() -> dict[str, Any]:
    return {"lastErrorCode": None, "lastNifCode": None, "lastErrorMessage": None, "lastErrorAt": None}


def _error(code: str, message: str, nif_code: int | None = None) -> dict[str, Any]:
    return {"lastErrorCode": code, "lastNifCode": nif_code, "lastErrorMessage": message, "lastErrorAt": clock()}


def _rejected(row: dict[str, Any], etag: str, attempts: int, code: str, message: str, nif_code: int | None) -> Any:
    new = _end(
        row,
        etag,
        {"status": "rejected", "attempts": attempts, "outcomeUnknown": None, **_error(code, message, nif_code)},
    )
    if new is None:
        return _current(row)
    log.warning("payment %s rejected (%s, code %s)", _ctx(row), code, nif_code)
    return new


def _failed_call(row: dict[str, Any], etag: str, exc: NifError, attempts: int, policy: Policy) -> dict[str, Any]:
    from shared.nif.api import problem_from_nif

    problem = problem_from_nif(exc, posted=True)
    if isinstance(exc, NifRejected) and problem.type_slug == "nif-rejected":
        return _rejected(
            row, etag, attempts, "nif-rejected", problem.detail or "NIF rejected the payment.", exc.nif_code
        )
    unknown = isinstance(exc, (NifTimeout, NifContractError)) or exc.status not in _NOT_APPLIED_STATUSES
    return _queue(row, etag, attempts, policy, problem.type_slug or "nif-unavailable", problem.detail, unknown)


def _queue(
    row: dict[str, Any],
    etag: str,
    attempts: int,
    policy: Policy,
    code: str,
    message: str | None,
    unknown: bool,
) -> dict[str, Any]:
    from shared.tables import Conflict

    now = clock()
    next_at = now + timedelta(seconds=retry_delay(attempts, base=policy.base, cap=policy.cap, jitter=jitter()))
    changes = {
        "status": "queued",
        "attempts": attempts,
        "outcomeUnknown": (unknown or bool(row.get("outcomeUnknown"))) or None,
        "leaseUntil": None,
        "nextAttemptAt": next_at,
        "updatedAt": now,
        **_error(code, message or "NIF is unavailable."),
    }
    try:
        new = outbox.requeue(row, changes, etag, next_at)
    except Conflict:
        return _current(row)
    log.warning(
        "payment %s queued (%s, call %d, outcome %s); next try at %s",
        _ctx(row),
        code,
        attempts,
        "unknown" if new.get("outcomeUnknown") else "not applied",
        next_at.isoformat(),
    )
    return new


def record_merge(old: int, new: int, where: str) -> None:
    """NIF answered another PersonId: old → new in the queue's merge map (mirror lookups follow it).

    The queue's own person-merge messages write the same row later; both are upserts."""
    from shared.nif.queue import entities
    from shared.nif.queue.links import merge_row
    from shared.tables import get_table_store

    get_table_store().table(entities.MERGE_TABLE).upsert({**merge_row("person", old, new), "Source": "payment"})
    log.warning("payment %s: person %s was merged into %s at NIF; re-key the member", where, old, new)


# --- the retry drain (the timer) -------------------------------------------------------------------


@dataclass
class DrainResult:
    outcomes: Counter[str]

    def summary(self) -> dict[str, int]:
        return dict(sorted(self.outcomes.items()))


def drain(policy: Policy | None = None, *, limit: int = MAX_PER_RUN, force: bool = False) -> DrainResult:
    """Retry every due payment once (``NIF_PAYMENTS_RETRY_CONCURRENCY`` at a time), earliest first.

    ``force`` (an operator after an outage): every open payment is due now, backoff ignored
    (leases and the grace period of a ``pending`` payment still hold)."""
    policy = policy or Policy.from_settings()
    now = clock()
    horizon = now + timedelta(seconds=policy.cap) + policy.max_age if force else now
    outcomes: Counter[str] = Counter()
    with ThreadPoolExecutor(max_workers=policy.concurrency, thread_name_prefix="payments") as pool:
        per_club = list(pool.map(lambda c: outbox.due_rows(c, horizon), outbox.clubs()))
        due = sorted((row for rows in per_club for row in rows), key=lambda r: r["DueAt"])[:limit]
        clubs = Counter(int(d["ClubId"]) for d in due)
        # many due in one club (after an outage): one partition query instead of a read per payment
        bulk = [c for c, n in clubs.items() if n > BULK_THRESHOLD]
        known = {c: rows for c, rows in zip(bulk, pool.map(outbox.open_rows, bulk), strict=True)}
        for outcome in pool.map(lambda d: _retry_one(d, policy, known.get(int(d["ClubId"])), force), due):
            outcomes[outcome] += 1
    if due:
        log.info("payment retry run: %s", ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    return DrainResult(outcomes)


def _retry_one(due: dict[str, Any], policy: Policy, known: dict[str, dict[str, Any]] | None, force: bool) -> str:
    from shared.tables import StorageError

    try:
        external_id = str(due["ExternalId"])
        row = known.get(external_id) if known is not None else outbox.get(int(due["ClubId"]), external_id)
        return _retry(int(due["ClubId"]), external_id, row, policy, force)
    except StorageError as exc:  # stays due; the next run tries again
        log.warning("payment club %s externalId %r: storage failed (%s)", due["ClubId"], due["ExternalId"], exc)
        return "error"
    except Exception:  # one payment never stops the others; it stays due
        log.exception("payment club %s externalId %r: retry failed", due.get("ClubId"), due.get("ExternalId"))
        return "error"


def _retry(club_id: int, external_id: str, row: dict[str, Any] | None, policy: Policy, force: bool = False) -> str:
    """One due payment; ``row`` as read (None: no open payment under this index row)."""
    from shared.tables import Conflict

    now = clock()
    if row is None or row.get("status") in TERMINAL:
        outbox.clear_due(club_id, external_id)
        return "cleaned"
    created: datetime = row["createdAt"]
    waits = (row.get("leaseUntil"),) if force else (row.get("leaseUntil"), row.get("nextAttemptAt"))
    later = [t for t in waits if t is not None and t > now]
    if row.get("status") == "pending" and now < created + policy.grace:
        later.append(created + policy.grace)  # its POST may still be running
    if later:
        outbox.mark_due(club_id, external_id, max(later))
        return "not-yet"
    pending = row.get("status") == "pending"
    unknown = pending or bool(row.get("outcomeUnknown"))
    attempts = int(row.get("attempts") or 0)
    try:  # lease it: one worker per payment; a crash from here on leaves the outcome unknown
        row, etag = outbox.update(row, {"leaseUntil": now + policy.lease, "outcomeUnknown": True}, row["_etag"])
    except Conflict:
        return "busy"
    if pending:  # its process may have died before the mirror's rules were checked
        refused = _recheck(row)
        if refused is not None:
            return str(_rejected(row, etag, attempts, "local-validation", *refused)["status"])
    expired = now >= created + policy.max_age
    if unknown:
        attempts += 1
        found = _look_up(row)
        if found is True:
            return str(_reported(row, etag, attempts)["status"])
        if found is not False:  # the look-up failed: never post blind
            if expired:
                return _fail(row, etag, attempts)
            return str(_queue(row, etag, attempts, policy, found[0], found[1], True)["status"])
    if expired:
        return _fail(row, etag, attempts)
    return str(_post(row, etag, policy, attempts)["status"])


def _recheck(row: dict[str, Any]) -> tuple[str, int] | None:
    """(sentence, code) when the recorded request breaks a rule the mirror can tell, else None."""
    from shared.nif.payments import facts
    from shared.nif.payments.rules import validate_payment

    req = PaymentRequest.model_validate(row["request"])
    membership = facts.membership_facts(int(row["clubId"]), req.personId) if req.personId else None
    if membership is None:
        return None
    today = local_today(clock(), Policy.from_settings().tz)
    found = [v for v in validate_payment(req, today=today, membership=membership) if v.code in (1006, 3001)]
    code = primary_code(found)
    return (MESSAGES[code], code) if code is not None else None


def _look_up(row: dict[str, Any]) -> bool | tuple[str, str]:
    """True: NIF has this payment (its ``externalReference`` is our externalId); False: it has
    not; (code, sentence): the look-up itself failed."""
    from shared.nif.api import problem_from_nif
    from shared.nif.payments.nif import get_payment_details

    request = row["request"]
    window = lookup_window(date.fromisoformat(request["periodTo"]), local_today(clock(), Policy.from_settings().tz))
    if window is None:
        log.warning("payment %s: its period ended before this year; NIF's look-up cannot see it", _ctx(row))
        return "lookup-impossible", "NIF's look-up only reaches this year's payments; check by hand (runbook)."
    try:
        page = get_payment_details(int(row["clubId"]), int(request["personId"]), *window)
    except NifError as exc:
        log.warning("payment %s: look-up at NIF failed (%s)", _ctx(row), type(exc).__name__)
        slug = problem_from_nif(exc).type_slug or "nif-unavailable"
        return slug, "Could not check at NIF whether the payment arrived."
    found = any((p.externalReference or "").strip() == row["externalId"] for p in page.payments)
    log.info("payment %s: look-up at NIF %s", _ctx(row), "found it" if found else "found nothing")
    return found


def _fail(row: dict[str, Any], etag: str, attempts: int) -> str:
    message = "Not confirmed by NIF within NIF_PAYMENTS_MAX_AGE_HOURS; see the runbook."
    new = _end(row, etag, {"status": "failed", "attempts": attempts, **_error("max-age", message)})
    if new is None:
        return str(_current(row).get("status"))
    log.error(
        "payment.failed: %s not reported within the maximum age (calls %d, outcome %s)",
        _ctx(row),
        attempts,
        "unknown" if new.get("outcomeUnknown") else "not applied",
        extra={"event": "payment.failed", "clubId": row.get("clubId"), "externalId": row.get("externalId")},
    )
    return "failed"
