"""Membership requests accepted by NIF, kept for the 24 h two-phase verification window.

Table ``MembershipRequests`` (prefixed by the adapter): ``PartitionKey`` = NIF's traceId in lower
case, ``RowKey`` = ``"request"``. The record holds what is needed to follow the request up —
club, ids, dates, branches/groups, status, and where the verification was sent (masked) — but no
names, birth dates, addresses or full contact data, and never a token.

Status: ``pending_verification`` (NIF answered membershipId 0/null) → ``confirmed`` (the queue
consumer saw the person/membership messages with this traceId, :func:`confirm_request`);
``completed`` when NIF created the membership at once. :func:`get_request` reports ``expired``
for a pending request older than 24 h.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.nif.models import MembershipRequest, NifMembershipResponse, membership_status

if TYPE_CHECKING:
    from shared.tables_contract import StorageTable

log = logging.getLogger(__name__)

TABLE = "MembershipRequests"
ROW_KEY = "request"
VERIFICATION_WINDOW = timedelta(hours=24)


def mask_email(email: str | None) -> str | None:
    """``helge.carter@nic.com`` → ``h***r@nic.com``."""
    if not email:
        return None
    local, at, domain = email.strip().rpartition("@")
    if not at:
        return "***"
    if len(local) <= 2:
        return f"{local[:1]}***@{domain}"
    return f"{local[0]}***{local[-1]}@{domain}"


def mask_phone(phone: str | None) -> str | None:
    """``85569745`` → ``******45`` (digits but the last two hidden)."""
    if not phone:
        return None
    digits = sum(ch.isdigit() for ch in phone)
    out, seen = [], 0
    for ch in phone.strip():
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > digits - 2 else "*")
        else:
            out.append(ch)
    return "".join(out)


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _table() -> StorageTable:
    from shared.tables import get_table_store

    return get_table_store().table(TABLE)


def build_record(
    club_id: int, request: MembershipRequest, response: NifMembershipResponse, now: datetime
) -> dict[str, Any] | None:
    """The entity to store (pure); None when NIF gave no traceId (already validated person)."""
    if not response.traceId:
        return None
    return {
        "PartitionKey": response.traceId.lower(),
        "RowKey": ROW_KEY,
        "traceId": response.traceId,
        "clubId": club_id,
        "status": membership_status(response.membershipId),
        "personId": response.personId or None,
        "membershipId": response.membershipId or None,
        "isClubLevel": request.isClubLevel,
        "startDate": response.startDate or (request.startDate.isoformat() if request.startDate else None),
        "sports": [s.model_dump(mode="json", exclude_none=True) for s in request.sports],
        "groups": [g.model_dump(mode="json", exclude_none=True) for g in request.groups],
        "sentToEmail": mask_email(response.sentToEmail),
        "sentToPhone": mask_phone(response.sentToPhone),
        "createdAt": now,
        "expiresAt": now + VERIFICATION_WINDOW,
    }


def record_request(
    club_id: int, request: MembershipRequest, response: NifMembershipResponse, *, now: datetime | None = None
) -> dict[str, Any] | None:
    """Store an accepted request (idempotent: a second record for the same traceId is ignored)."""
    entity = build_record(club_id, request, response, _now(now))
    if entity is None:
        log.info("membership request for club %s has no traceId (validated person); not recorded", club_id)
        return None
    from shared.auth import attribution

    entity.update(attribution())  # who asked: actorKind, and a token's actorSubject / actorClientId
    if not _table().insert(entity):
        log.info("membership request %s already recorded", response.traceId)
    return entity


def to_public(entity: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The stored row as the API shows it, with ``expired`` computed (pure)."""
    now = _now(now)
    created: datetime = entity["createdAt"]
    expires = entity.get("expiresAt") or created + VERIFICATION_WINDOW
    status = entity.get("status", "pending_verification")
    expired = status == "pending_verification" and now >= expires
    return {
        "traceId": entity.get("traceId") or entity["PartitionKey"],
        "clubId": entity.get("clubId"),
        "status": "expired" if expired else status,
        "expired": expired,
        "createdAt": created.isoformat(),
        "expiresAt": expires.isoformat(),
        "personId": entity.get("personId"),
        "membershipId": entity.get("membershipId"),
        "isClubLevel": entity.get("isClubLevel"),
        "startDate": entity.get("startDate"),
        "sports": entity.get("sports") or [],
        "groups": entity.get("groups") or [],
        "sentToEmail": entity.get("sentToEmail"),
        "sentToPhone": entity.get("sentToPhone"),
        "confirmedAt": entity["confirmedAt"].isoformat() if entity.get("confirmedAt") else None,
        "confirmedBy": entity.get("confirmedBy"),
    }


def get_request(trace_id: str, *, now: datetime | None = None) -> dict[str, Any] | None:
    """The recorded request (API shape, ``expired`` computed after 24 h), or None."""
    if not trace_id or not trace_id.strip():
        return None
    entity = _table().get(trace_id.strip().lower(), ROW_KEY)
    return to_public(entity, now) if entity else None


def confirm_request(
    trace_id: str, *, person_id: int | None, membership_id: int | None, source: str, now: datetime | None = None
) -> bool:
    """Mark the request confirmed (called by the queue consumer). False if no such request.

    Idempotent, ETag-guarded: a concurrent writer makes it re-read and try again.
    """
    from shared.tables import Conflict

    table = _table()
    key = trace_id.strip().lower()
    for _ in range(5):
        entity = table.get(key, ROW_KEY)
        if entity is None:
            return False
        if entity.get("status") == "confirmed" and (
            membership_id is None or entity.get("membershipId") == membership_id
        ):
            return True
        update = {
            "PartitionKey": key,
            "RowKey": ROW_KEY,
            "status": "confirmed",
            "personId": person_id or entity.get("personId"),
            "membershipId": membership_id or entity.get("membershipId"),
            "confirmedAt": entity.get("confirmedAt") or _now(now),
            "confirmedBy": source,
        }
        try:
            table.update(update, etag=entity["_etag"])
            return True
        except Conflict:
            continue
    raise Conflict(f"confirm_request {trace_id}: too many concurrent updates")
