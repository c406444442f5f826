"""What the queue's mirror knows that a payment is checked against (reads only).

- payment types: ``Tp_PaymentType`` projection rows (cached for a minute per process);
- the person's membership in the club: ``NifLinks`` + ``TpMembership`` / ``TpActiveMembership``
  rows, after following the person-merge map, exactly as the mirror read API does;
- a payment's NIF status: the ``Tp_PaymentStatus`` row whose ObjectId is the paymentId ([I]:
  the entity's schema is not public).

Body field names are unknown ([I]); they are read tolerantly (:mod:`shared.nif.queue.entities`).
"""

from __future__ import annotations

import threading
import time
from datetime import date
from typing import Any

from shared import lifecycle
from shared.nif.payments.models import NifPaymentStatus, PaymentType
from shared.nif.payments.rules import PAYMENT_TYPES, MembershipFacts, PaymentTypeFacts
from shared.nif.queue import entities as E
from shared.nif.queue.links import survivor_of
from shared.nif.queue.rows import entity_to_state, is_ended, row_data

TYPES_TTL_SECONDS = 60.0
_TYPE_ID = ("paymentTypeId", "typeId", "id")
_TYPE_NAME = ("name", "paymentTypeName", "paymentType", "description", "typeName")
_ACTIVE = ("isActive", "active")
_STATUS_ID = ("paymentStatusId", "statusId", "status", "id")
_STATUS_NAME = ("name", "paymentStatusName", "statusName", "description")

_cache: dict[str, tuple[float, Any]] = {}
_lock = threading.Lock()


def _store() -> Any:
    from shared.tables import get_table_store

    return get_table_store()


def _id0(value: Any) -> int | None:
    """An id where 0 is a real value (payment type 0 is the membership fee)."""
    if value == 0 and not isinstance(value, bool):
        return 0
    return E.as_id(value)


def payment_types() -> list[PaymentType]:
    """``Tp_PaymentType`` rows as types (deleted or inactive ones flagged), by id."""
    out: dict[int, PaymentType] = {}
    table = _store().table(E.PROJECTION_TABLES["Tp_PaymentType"])
    for row in table.query():
        data = row_data(row)
        type_id = _id0(E.field(data, *_TYPE_ID))
        if type_id is None:
            type_id = int(row.get("ObjectId") or 0)
        active = E.field(data, *_ACTIVE)
        gone = is_ended(entity_to_state(row, "Tp_PaymentType")) or (active is not None and not E.as_bool(active))
        name = E.field(data, *_TYPE_NAME)
        out[type_id] = PaymentType(paymentTypeId=type_id, name=str(name) if name is not None else None, deleted=gone)
    return [out[k] for k in sorted(out)]


def reference_types() -> list[PaymentType]:
    return [PaymentType(paymentTypeId=k, name=v) for k, v in PAYMENT_TYPES.items()]


def payment_type_facts() -> PaymentTypeFacts | None:
    """None until the queue has delivered a ``Tp_PaymentType`` row (then NIF's list is checked)."""
    now = time.monotonic()
    with _lock:
        hit = _cache.get("types")
    if hit is not None and hit[0] > now:
        return hit[1]
    types = payment_types()
    facts = (
        PaymentTypeFacts(
            active=frozenset(t.paymentTypeId for t in types if not t.deleted),
            removed=frozenset(t.paymentTypeId for t in types if t.deleted),
        )
        if types
        else None
    )
    with _lock:
        _cache["types"] = (now + TYPES_TTL_SECONDS, facts)
    return facts


@lifecycle.on_reset
def reset_cache() -> None:
    with _lock:
        _cache.clear()


def survivor(person_id: int) -> int:
    merge = _store().table(E.MERGE_TABLE)
    known: dict[int, int] = {}
    current = person_id
    for _ in range(16):
        row = merge.get("person", E.pad(current))
        if row is None:
            break
        known[current] = int(row["SurvivorId"])
        current = known[current]
        if current == person_id:
            break
    return survivor_of(known, person_id)


def _links(store: Any, person_id: int) -> list[dict[str, Any]]:
    p = E.pad(person_id)
    return list(
        store.table(E.LINKS_TABLE).query(
            "RowKey ge @lo and RowKey lt @hi",
            parameters={"lo": p + "-", "hi": p + "."},
            partition_key=f"person-{E.bucket(person_id)}",
        )
    )


def membership_facts(club_id: int, person_id: int) -> MembershipFacts | None:
    """The person's club membership as the mirror knows it, or None when it knows none."""
    from shared.nif.payments.service import io_pool

    store = _store()
    first = io_pool().submit(_links, store, person_id)  # read beside the merge map: usually not merged
    pid = survivor(person_id)
    links = first.result() if pid == person_id else _links(store, pid)
    starts: list[date] = []
    orgs = {club_id}
    found = False
    for link in links:
        kind = link.get("Kind")
        if kind not in ("m", "a"):
            continue
        entity = "TpMembership" if kind == "m" else "TpActiveMembership"
        pk, rk = E.row_keys(entity, True, int(link["ObjectId"]))
        row = store.table(E.PROJECTION_TABLES[entity]).get(pk, rk)
        if row is None or row.get("PersonId") != pid or row.get("ClubId") != club_id:
            continue
        if is_ended(entity_to_state(row, entity)):
            continue
        data = row_data(row)
        if kind == "m":
            found = True
            start = E.field(data, "startDate")
            try:
                starts.append(date.fromisoformat(str(start)[:10]))
            except ValueError:
                pass
        elif row.get("BranchId"):
            orgs.add(int(row["BranchId"]))
    if not found:
        return None
    return MembershipFacts(start=min(starts) if starts else None, org_ids=frozenset(orgs))


def nif_status(payment_id: int | None) -> NifPaymentStatus | None:
    """The ``Tp_PaymentStatus`` row of this payment, when NIF sent one."""
    if not payment_id:
        return None
    pk, rk = E.row_keys("Tp_PaymentStatus", True, payment_id)
    row = _store().table(E.PROJECTION_TABLES["Tp_PaymentStatus"]).get(pk, rk)
    if row is None:
        return None
    data = row_data(row)
    status_id = _id0(E.field(data, *_STATUS_ID))
    name = E.field(data, *_STATUS_NAME)
    return NifPaymentStatus(statusId=status_id, name=str(name) if name is not None else None)
