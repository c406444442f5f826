"""Queue consumer benchmark: ``python -m bench.bench_queue [N]``.

N (default 5 000) generated NIF queue messages go through the registered Service Bus function
into Azurite, against a bare azure-data-tables single-upsert loop (one ``upsert_entity`` per
message) on the same Azurite in the same run:

- per-message mode: one message per invocation (what ``maxMessageBatchSize: 1`` would deliver);
- batch mode: 100 messages per invocation (production: ``cardinality="many"``,
  ``maxMessageBatchSize: 100``).

Targets: per-message ≥ 0.5× the baseline, batch ≥ 2×. Baseline and batch mode alternate for a few
rounds on the same Azurite (its in-memory store grows during the run) and the median ratio is
reported. The mix is a club onboarding: per person a
TpPerson Added (full object), its contact information, a club membership (5 clubs) and a
TpPerson Modified delta. Every message is journaled first, then projected, plus links.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def generate(n: int) -> list[dict]:
    items: list[tuple[str, int, int, dict]] = []
    pid = 8_000_000
    while len(items) < n:
        pid += 1
        person = {
            "personId": pid,
            "firstName": "Kari",
            "lastName": f"Nordmann{pid}",
            "genderId": 2,
            "birthDate": "1990-01-01",
            "nationalityId": 1,
            "sportNo": f"S-{pid}",
        }
        contact = {
            "contactId": pid + 1_000_000,
            "personId": pid,
            "addressLine1": "Storgata 1",
            "postCode": "0155",
            "city": "Oslo",
            "mobilePhone": "91234567",
            "email": f"p{pid}@example.no",
            "isSecretEmail": False,
        }
        membership = {
            "membershipId": pid + 2_000_000,
            "personId": pid,
            "orgId": 19428 + pid % 5,
            "startDate": "2026-01-01",
            "membershipStatusId": 2,
        }
        items += [
            ("TpPerson", pid, 1, person),
            ("TpPersonContactInformation", pid + 1_000_000, 1, contact),
            ("TpMembership", pid + 2_000_000, 1, membership),
            ("TpPerson", pid, 2, {"lastName": "Hansen"}),
        ]
    return [{"entity": e, "oid": o, "ct": c, "body": b} for e, o, c, b in items[:n]]


def to_messages(items: list[dict]) -> list:
    from azure.functions.servicebus import ServiceBusMessage

    return [
        ServiceBusMessage(
            body=json.dumps(it["body"]).encode(),
            message_id=str(uuid.uuid4()),
            sequence_number=seq,
            enqueued_time_utc=T0 + timedelta(milliseconds=seq),
            delivery_count=1,
            content_type="application/json",
            application_properties={"ObjectId": it["oid"], "EntityName": it["entity"], "ChangeType": it["ct"]},
            user_properties={},
        )
        for seq, it in enumerate(items, start=1)
    ]


def queue_host():
    """The local host over Microsoft's runtime (which indexes function_app.py)."""
    from devtools.host import LocalHost

    return LocalHost()


def bare_loop(conn: str, items: list[dict]) -> float:
    from azure.data.tables import TableServiceClient

    svc = TableServiceClient.from_connection_string(conn)
    table = svc.create_table_if_not_exists("bare" + uuid.uuid4().hex[:8])
    t = time.perf_counter()
    for seq, it in enumerate(items, start=1):
        table.upsert_entity(
            {"PartitionKey": it["entity"], "RowKey": f"{it['oid']:012d}", "Body": json.dumps(it["body"]), "Seq": seq}
        )
    return time.perf_counter() - t


def through_function(conn: str, host, items: list[dict], batch: int) -> float:
    import os

    from shared.lifecycle import reset_process_state
    from shared.tables import get_table_store

    os.environ["DATA_TABLES_CONNECTION"] = conn
    os.environ["DATA_TABLES_PREFIX"] = "b" + uuid.uuid4().hex[:8]
    reset_process_state()
    store = get_table_store()
    from shared.nif.queue import entities as E

    for name in (E.JOURNAL_TABLE, E.LINKS_TABLE, *E.PROJECTION_TABLES.values()):
        store.table(name)  # create tables outside the timing (once per deployment in real life)
    msgs = to_messages(items)
    arg = host.functions["nif_queue"].trigger["name"]
    t = time.perf_counter()
    for i in range(0, len(msgs), batch):
        host.invoke("nif_queue", **{arg: msgs[i : i + batch]})
    elapsed = time.perf_counter() - t
    assert sum(1 for _ in store.table(E.JOURNAL_TABLE).query(select=["RowKey"])) == len(msgs)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    import logging
    import statistics

    from devtools.azurite import Azurite

    argv = sys.argv[1:] if argv is None else argv
    n = int(argv[0]) if argv else 5000
    rounds = int(argv[1]) if len(argv) > 1 else 3
    logging.disable(logging.WARNING)
    items = generate(n)
    host = queue_host()
    rate = lambda s: n / s
    with Azurite() as az:
        conn = az.connection_string
        bare_loop(conn, items[:200])  # warm-up (connections, first-call paths of the SDK)
        through_function(conn, host, items[:200], 100)
        # Interleaved rounds on the same Azurite: its in-memory store grows during the run, so
        # neither side may always run on the emptier database.
        pairs = []
        for _ in range(rounds):
            base = bare_loop(conn, items)
            batched = through_function(conn, host, items, 100)
            pairs.append((base, batched))
        base_single = bare_loop(conn, items)
        single = through_function(conn, host, items, 1)
    print(f"N={n} messages per measurement, Azurite in-memory, {rounds} interleaved rounds")
    for i, (base, batched) in enumerate(pairs, 1):
        print(
            f"  round {i}: bare upsert loop {rate(base):6.0f} msg/s, function batch 100 {rate(batched):6.0f} msg/s"
            f" -> {base / batched:4.2f}x"
        )
    batch_ratio = statistics.median(base / batched for base, batched in pairs)
    single_ratio = base_single / single
    print(
        f"function, batch 100 (production mode): median ratio {batch_ratio:4.2f}x  (target >= 2x: "
        f"{'MET' if batch_ratio >= 2 else 'NOT MET'})"
    )
    print(
        f"function, per message                : {rate(single):6.0f} msg/s vs bare {rate(base_single):6.0f} msg/s"
        f" -> {single_ratio:4.2f}x  (target >= 0.5x: {'MET' if single_ratio >= 0.5 else 'NOT MET'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
