"""Bulk intake of the big club: ``python -m bench.bench_intake [persons] [rounds]``.

The club of :mod:`bench.bench_bigclub` (10 000 persons, 2 000 activities) goes in through the
registered HTTP functions (``PUT …/persons`` and ``PUT …/activities``, 1 000 records per call,
function key, Microsoft's runtime behind ``devtools.host.LocalHost``: routing, key check, JSON,
per-record validation, personnummer index, storage) into Azurite, against a bare batched upsert
of the same record rows with azure-data-tables (transactions of 100) into the same Azurite, same
run. Rounds alternate, each writing into fresh tables on both sides (Azurite's in-memory store
grows, and its cost per operation grows with a table's rows), and the median ratio is reported. Target: bare / ours >= 0.5. Each round is a first intake: before the
club's first full load intake writes no dirty markers (``shared.idrott.store``).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime

from bench.bench_bigclub import activity_json, person_json

CALL = 1000


def bare_upsert(conn: str, persons: list[dict], activities: list[dict], club: str) -> float:
    """The record rows intake stores (data, hash, fields), batched upserts of 100."""
    from azure.data.tables import TableServiceClient

    from shared.idrott.delta import content_hash

    now = datetime.now(UTC)
    rows = [
        {"PartitionKey": club, "RowKey": "P|" + p["externalId"], "data": json.dumps(p), "hash": content_hash(p)}
        | {"active": True, "updated_at": now}
        for p in persons
    ] + [
        {"PartitionKey": club, "RowKey": "A|" + a["activityId"], "data": json.dumps(a), "hash": content_hash(a)}
        | {"deleted": False, "start_time": datetime.fromisoformat(a["startTime"]), "updated_at": now}
        for a in activities
    ]
    table = TableServiceClient.from_connection_string(conn).create_table("bare" + uuid.uuid4().hex[:10])
    t = time.perf_counter()
    for i in range(0, len(rows), 100):
        table.submit_transaction([("upsert", r) for r in rows[i : i + 100]])
    return time.perf_counter() - t


def through_functions(host, persons: list[dict], activities: list[dict], club: str) -> float:
    body = {
        "name": "IK Bench",
        "country": "SE",
        "enabled": False,
        "rfForeningsnummer": "12345",
        "organisationNumber": "802000-0009",
        "rfGuid": "5a0b7e2c-1234-4abc-8def-0123456789ab",
    }
    res = host.request("PUT", f"/api/clubs/{club}", json_body=body, key="master")
    assert res.status_code in (200, 201), res.get_body()[:300]
    base = f"/api/idrottonline/clubs/{club}"
    t = time.perf_counter()
    for kind, items in (("persons", persons), ("activities", activities)):
        for i in range(0, len(items), CALL):
            res = host.request("PUT", f"{base}/{kind}", json_body=items[i : i + CALL])
            assert res.status_code == 200, res.get_body()[:300]
    return time.perf_counter() - t


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 10_000
    rounds = int(argv[1]) if len(argv) > 1 else 2
    logging.disable(logging.WARNING)
    from devtools.azurite import Azurite
    from devtools.host import LocalHost
    from shared.lifecycle import reset_process_state

    today = datetime.now(UTC).date()
    persons = [person_json(i) for i in range(n)]
    activities = [activity_json(i, n, today) for i in range(n // 5)]
    records = len(persons) + len(activities)
    pairs = []
    with Azurite() as az:
        conn = az.connection_string
        os.environ.update(DATA_TABLES_CONNECTION=conn, DATA_TABLES_PREFIX="bi" + uuid.uuid4().hex[:8])
        reset_process_state()
        host = LocalHost()
        warm = [activity_json(i, 200, today) for i in range(40)]
        bare_upsert(conn, persons[:200], warm, "warm")  # warm-up: connections, first calls
        through_functions(host, persons[:200], warm, "warm")
        for r in range(rounds):
            base = bare_upsert(conn, persons, activities, f"bare{r}")
            # our tables fresh too, as the bare upsert's: Azurite's cost per operation grows with
            # the rows of the table, and the previous round's club would be ours alone to carry
            os.environ["DATA_TABLES_PREFIX"] = "bi" + uuid.uuid4().hex[:8]
            reset_process_state()
            ours = through_functions(host, persons, activities, f"club{r}")
            pairs.append((base, ours))
    print(f"intake: {len(persons)} persons + {len(activities)} activities, {CALL} per call, Azurite in-memory")
    for i, (base, ours) in enumerate(pairs, 1):
        print(
            f"  round {i}: bare batched upsert {records / base:6.0f} records/s ({base:5.2f} s), "
            f"PUT through the functions {records / ours:6.0f} records/s ({ours:5.2f} s) -> {base / ours:4.2f}"
        )
    ratio = statistics.median(base / ours for base, ours in pairs)
    print(f"median ratio bare / ours: {ratio:4.2f}  (target >= 0.5: {'MET' if ratio >= 0.5 else 'NOT MET'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
