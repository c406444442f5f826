"""The durable payment outbox in Table Storage.

Invariant: **a payment's row and its retry-index row exist before NIF is called**, written in
one transaction, and every later state change is conditional, so one writer wins each step.

Tables (prefixed by the adapter; docs/payments.md):

- ``NifPayments``, one partition per club (``club-<clubId>``):

  - the payment row, ``RowKey = p:<externalId>``: status, content hash, the request (to send it
    again), attempts, last error, NIF's ids;
  - its retry-index row, ``RowKey = d:<externalId>``, ``DueAt``: present while the payment is
    open (``pending`` or ``queued``).

  The claim (:func:`claim`) is one transaction that **creates** the payment row and upserts the
  index row: of any number of concurrent POSTs of one externalId, exactly one creates it and
  calls NIF; the others fail the create and read what it recorded. A payment's end
  (:func:`finish`) updates the row and deletes the index row in one transaction.
- ``NifPaymentClubs`` (partition ``clubs``, one row per club that ever had a payment): how the
  timer finds the partitions to look at without scanning the table. A club is registered before
  its first claim (once per process).

The payment row keeps the request, but logs never do: only ids are logged.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared import lifecycle

if TYPE_CHECKING:
    from shared.tables_contract import StorageTable

TABLE = "NifPayments"
CLUBS_TABLE = "NifPaymentClubs"
CLUBS_PARTITION = "clubs"
PAYMENT, DUE = "p:", "d:"

_registered: set[int] = set()
_registered_lock = threading.Lock()


@lifecycle.on_reset
def _forget_clubs() -> None:
    with _registered_lock:
        _registered.clear()


def _store() -> Any:
    from shared.tables import get_table_store

    return get_table_store()


def table() -> StorageTable:
    return _store().table(TABLE)


def partition(club_id: int) -> str:
    return f"club-{club_id}"


def payment_key(external_id: str) -> str:
    return PAYMENT + external_id


def due_row(club_id: int, external_id: str, due_at: datetime) -> dict[str, Any]:
    return {
        "PartitionKey": partition(club_id),
        "RowKey": DUE + external_id,
        "ClubId": club_id,
        "ExternalId": external_id,
        "DueAt": due_at,
    }


def new_row(
    club_id: int, external_id: str, *, content_hash: str, request: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """The ``pending`` row written by the claim (ids promoted to columns for listing), with who
    posted it (:func:`shared.auth.attribution`)."""
    from shared.auth import attribution

    return {
        "PartitionKey": partition(club_id),
        "RowKey": payment_key(external_id),
        "status": "pending",
        "hash": content_hash,
        "request": request,
        "clubId": club_id,
        "externalId": external_id,
        "personId": request.get("personId"),
        "orgId": request.get("orgId"),
        "paymentTypeId": request.get("paymentTypeId"),
        "attempts": 0,
        "createdAt": now,
        "updatedAt": now,
        **attribution(),
    }


def register_club(club_id: int) -> None:
    """Make the club's partition known to the timer (an upsert, once per process and club)."""
    if club_id in _registered:
        return
    _store().table(CLUBS_TABLE).upsert(
        {"PartitionKey": CLUBS_PARTITION, "RowKey": f"{club_id:010d}", "ClubId": club_id}, replace=True
    )
    with _registered_lock:
        _registered.add(club_id)


def clubs() -> list[int]:
    return [int(r["ClubId"]) for r in _store().table(CLUBS_TABLE).query(partition_key=CLUBS_PARTITION)]


def claim(row: dict[str, Any], due_at: datetime) -> bool:
    """One transaction: create the payment row, upsert its index row. False when it existed."""
    from shared.tables import Conflict
    from shared.tables_contract import Op

    club_id, external_id = int(row["clubId"]), str(row["externalId"])
    try:
        table().submit([Op("create", row), Op("upsert", due_row(club_id, external_id, due_at), {"replace": True})])
    except Conflict:
        return False
    return True


def unclaim(row: dict[str, Any]) -> None:
    """Undo a claim whose payment failed the mirror's rules (nothing was sent)."""
    from shared.tables_contract import Op

    club_id, external_id = int(row["clubId"]), str(row["externalId"])
    table().submit(
        [
            Op("delete", {"PartitionKey": partition(club_id), "RowKey": payment_key(external_id)}, {"etag": "*"}),
            Op("delete", {"PartitionKey": partition(club_id), "RowKey": DUE + external_id}, {"etag": "*"}),
        ]
    )


def mark_due(club_id: int, external_id: str, due_at: datetime) -> None:
    """Upsert the payment's index row (idempotent)."""
    table().upsert(due_row(club_id, external_id, due_at), replace=True)


def clear_due(club_id: int, external_id: str) -> None:
    table().delete(partition(club_id), DUE + external_id)


def get(club_id: int, external_id: str) -> dict[str, Any] | None:
    return table().get(partition(club_id), payment_key(external_id))


def _merged(row: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in {**row, **changes}.items() if not k.startswith("_")}


def update(row: dict[str, Any], changes: dict[str, Any], etag: str) -> tuple[dict[str, Any], str]:
    """REPLACE the row with ``changes`` applied if it is unchanged since ``etag`` (``Conflict``
    otherwise; ``"*"``: if it exists). A ``None`` value clears the column. Returns the new row
    and its ETag."""
    merged = _merged(row, changes)
    return merged, table().update(merged, etag=etag, replace=True) or ""


def finish(row: dict[str, Any], changes: dict[str, Any], etag: str) -> dict[str, Any]:
    """A payment's end: update its row and delete its index row in one transaction (``Conflict``
    when the row changed since ``etag``; a missing index row is tolerated)."""
    from shared.tables import Conflict
    from shared.tables_contract import Op

    merged = _merged(row, changes)
    due = {"PartitionKey": merged["PartitionKey"], "RowKey": DUE + str(merged["externalId"])}
    try:
        table().submit([Op("update", merged, {"etag": etag, "replace": True}), Op("delete", due, {"etag": "*"})])
    except Conflict:
        # the index row may be gone (the timer cleaned it): then the update alone decides
        table().update(merged, etag=etag, replace=True)
    return merged


def requeue(row: dict[str, Any], changes: dict[str, Any], etag: str, due_at: datetime) -> dict[str, Any]:
    """Back to the queue: update the row and move its index row to ``due_at``, one transaction."""
    from shared.tables_contract import Op

    merged = _merged(row, changes)
    due = due_row(int(merged["clubId"]), str(merged["externalId"]), due_at)
    table().submit([Op("update", merged, {"etag": etag, "replace": True}), Op("upsert", due, {"replace": True})])
    return merged


def due_rows(club_id: int, now: datetime) -> list[dict[str, Any]]:
    """The club's index rows due by ``now``."""
    return list(
        table().query(
            "RowKey ge @lo and RowKey lt @hi and DueAt le @now",
            parameters={"lo": DUE, "hi": "d;", "now": now},
            partition_key=partition(club_id),
        )
    )


def open_rows(club_id: int) -> dict[str, dict[str, Any]]:
    """The club's ``pending`` and ``queued`` payment rows by externalId (one partition query)."""
    rows = table().query(
        "RowKey ge @lo and RowKey lt @hi and (status eq @p or status eq @q)",
        parameters={"lo": PAYMENT, "hi": "p;", "p": "pending", "q": "queued"},
        partition_key=partition(club_id),
    )
    return {str(r["externalId"]): r for r in rows}


def page(
    club_id: int, status: str | None, page_size: int, continuation: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a club's payments (``ValueError`` for a foreign continuation token)."""
    flt = "RowKey ge @lo and RowKey lt @hi" + (" and status eq @s" if status else "")
    params: dict[str, Any] = {"lo": PAYMENT, "hi": "p;"}
    if status:
        params["s"] = status
    return table().page(
        flt, parameters=params, partition_key=partition(club_id), page_size=page_size, continuation=continuation
    )
