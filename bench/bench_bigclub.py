"""The big club's first full export: ``python -m bench.bench_bigclub [persons] [activities]``.

One process, one run: Azurite (in-memory, loopback), the local asyncssh SFTP server
(``devtools.sftp_server``) and a club of 10 000 persons and 2 000 activities (5 participants
each, teams of 20, all in the current LOK period), stored in the row layout intake writes.

1. **Time**: the first full export end to end through ``export_club`` (lock, ledger, Table reads,
   spooled selection, XML split under 10 MB, XSD check of every file, SFTP upload to
   ``.part`` + rename, state and record write-back) against a bare pipeline on the same rows in
   the same run: query the same rows with azure-data-tables, write the same elements with lxml
   into one file (the element builders of ``shared.idrott.xmlrecords`` fed with the records
   pydantic validates from the stored JSON, as ours are), upload it with paramiko, and record one
   state row per exported record in batched transactions of 100. Two clubs are exported (a first
   export happens once per club), the bare pipeline runs twice; best of each.
   Target: bare / ours >= 0.7.
2. **Bookkeeping**: storage write operations and write requests (a transaction counts once) per
   exported record during our run, counted by wrapping the adapter's ``Table``.
3. **Memory**: growth of the peak RSS during the export of a 10 000- vs a 1 000-person club
   (activities = persons / 5), each in a fresh subprocess that first exports a tiny club (imports,
   XSD, connections), then resets its peak (``/proc/self/clear_refs``) and exports. Three of each
   (the clubs' export state reset in between, so each is a first full export again), the median
   of each compared: a single peak of ~2 MiB moves by ~0.1 MiB from run to run.
   Target: ratio <= 1.3.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Self

PASSWORD = "bench-sftp-password-1"
SECRET = "sftp-password-bench"
TEAM = 20
MEMORY_RUNS = 3


# ---- the club -----------------------------------------------------------------------------------
def _pnr(i: int) -> str:
    from shared.idrott.personnummer import luhn_check_digit

    d = date(1960, 1, 1) + timedelta(days=i // 400)
    serial = (i % 400) * 2 + 1  # odd: male; unique per day
    nine = f"{d:%y%m%d}{serial:03d}"
    return f"{d:%Y%m%d}-{serial:03d}{luhn_check_digit(nine)}"


def person_json(i: int) -> dict:
    return {
        "externalId": f"person-{i:06d}",
        "personnummer": _pnr(i),
        "firstName": "Anna-Karin",
        "lastName": f"Söderström{i}",
        "gender": "male",
        "sports": [{"sportId": 10 + i % 3}],
        "contact": {"email": f"p{i}@example.se", "mobilePhone": "+46701234567", "city": "Umeå"},
    }


def activity_json(i: int, n_persons: int, today: date) -> dict:
    from shared.idrott.delta import lok_period

    first, last = lok_period(today)
    teams = max(1, n_persons // TEAM)
    team = (i % teams) * TEAM
    start = datetime(first.year, first.month, first.day, 17, tzinfo=UTC) + timedelta(
        days=i % max(1, (last - first).days)
    )
    parts = [{"personId": f"person-{team + (i + k) % TEAM:06d}", "leader": k == 0} for k in range(5)]
    return {
        "activityId": f"act-{i:06d}",
        "typeId": 1,
        "name": "Träning P12",
        "startTime": start.isoformat(),
        "endTime": (start + timedelta(minutes=90)).isoformat(),
        "sportId": 10,
        "venueName": "Sporthallen",
        "participants": parts,
    }


def seed(club_id: str, n_persons: int, n_activities: int) -> None:
    """Store the club as intake does before its first full load (records, no markers)."""
    from shared.idrott.models import Activity, Person
    from shared.idrott.rows import A, P
    from shared.idrott.store import ClubRecords

    rec = ClubRecords(club_id)
    today = datetime.now(UTC).date()
    ops: list = []
    for i in range(n_persons):
        p = Person.model_validate(person_json(i))
        ops += rec.record_write(P, p.external_id, p.stored_data(), marked=False, active=True)
    for i in range(n_activities):
        a = Activity.model_validate(activity_json(i, n_persons, today))
        data = a.model_dump(mode="json", by_alias=True, exclude_none=True)
        ops += rec.record_write(
            A, a.activity_id, data, marked=False, deleted=False, start_time=a.start_time.astimezone(UTC)
        )
    rec.t.submit(ops)


def register(club_id: str, srv: Any) -> Any:
    from shared.clubs import ClubIn, put_club

    body = {
        "name": "IK Bench",
        "country": "SE",
        "enabled": True,
        "rfForeningsnummer": "12345",
        "organisationNumber": "802000-0009",
        "rfGuid": "5a0b7e2c-1234-4abc-8def-0123456789ab",
        "sftpHost": "127.0.0.1",
        "sftpPort": srv.port,
        "sftpUsername": srv.username,
        "sftpHostKey": srv.host_key_line,
        "sftpPasswordSecret": SECRET,
    }
    club, _ = put_club(club_id, ClubIn.model_validate(body))
    return club


# ---- counting storage requests --------------------------------------------------------------------
class StorageCounter:
    """Counts what the adapter's ``Table`` sends while installed (class-level wrappers)."""

    WRITES = ("insert", "create", "upsert", "update", "delete")

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> Self:
        from shared import tables

        cls = tables.Table
        counts = self.counts

        def wrap(name: str) -> None:
            real = getattr(cls, name)
            self._saved[name] = real

            def counted(table: Any, *a: Any, **kw: Any) -> Any:
                counts[name] += 1
                if name in self.WRITES:
                    counts["write_requests"] += 1
                    counts["write_ops"] += 1
                return real(table, *a, **kw)

            setattr(cls, name, counted)

        for name in (*self.WRITES, "get", "query"):
            wrap(name)
        real_send = cls._send_changeset
        self._saved["_send_changeset"] = real_send

        def send(table: Any, chunk: list) -> None:
            counts["transactions"] += 1
            counts["write_requests"] += 1
            counts["write_ops"] += len(chunk)
            return real_send(table, chunk)

        cls._send_changeset = send  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        from shared import tables

        for name, real in self._saved.items():
            setattr(tables.Table, name, real)


# ---- the bare pipeline ------------------------------------------------------------------------------
def bare_pipeline(conn: str, table_name: str, club: Any, srv: Any, directory: Path) -> tuple[float, int]:
    """Query, write the same elements (one file), upload with paramiko, one state row per record."""
    import paramiko
    from azure.data.tables import TableClient, TableServiceClient
    from lxml import etree

    from shared.idrott.delta import lok_period
    from shared.idrott.files import club_export_info
    from shared.idrott.models import Activity, Person
    from shared.idrott.xmlrecords import ActivityRecord, PersonRecord, RunHeader, activity_element, person_element

    client = TableClient.from_connection_string(conn, table_name)
    state = TableServiceClient.from_connection_string(conn).create_table("bare" + uuid.uuid4().hex[:10])
    header = RunHeader.for_club(
        club_export_info(club), created_at=datetime.now(UTC).replace(microsecond=0), batch_id="b"
    )
    first, last = lok_period(datetime.now(UTC).date())
    stored = {"stored": True}
    t0 = time.perf_counter()
    sent: list[tuple[str, str]] = []
    path = directory / "bare.xml"
    with open(path, "wb") as f, etree.xmlfile(f, encoding="utf-8") as xf:
        xf.write_declaration()
        with xf.element("Import", Version="1"):
            with xf.element("Persons"):
                for e in client.query_entities(
                    "PartitionKey eq @pk and RowKey ge 'P' and RowKey lt 'Q'", parameters={"pk": club.club_id}
                ):
                    p = Person.model_validate(json.loads(e["data__json"]), context=stored)
                    xf.write(person_element(PersonRecord.from_model(p), header, etree))
                    sent.append((e["RowKey"], e["hash"]))
            with xf.element("Activities"):
                for e in client.query_entities(
                    "PartitionKey eq @pk and RowKey ge 'A' and RowKey lt 'B' and start_time ge @lo and start_time lt @hi",
                    parameters={
                        "pk": club.club_id,
                        "lo": datetime(first.year, first.month, first.day, tzinfo=UTC) - timedelta(days=1),
                        "hi": datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=2),
                    },
                ):
                    a = Activity.model_validate(json.loads(e["data__json"]), context=stored)
                    xf.write(activity_element(ActivityRecord.from_model(a), header, etree))
                    sent.append((e["RowKey"], e["hash"]))
    ssh = paramiko.SSHClient()
    ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # bench baseline on loopback
    ssh.connect("127.0.0.1", srv.port, srv.username, PASSWORD, allow_agent=False, look_for_keys=False)
    with ssh.open_sftp() as sftp:
        sftp.put(str(path), f"bare-{uuid.uuid4().hex[:8]}.xml")
    ssh.close()
    for i in range(0, len(sent), 100):
        state.submit_transaction(
            [
                ("upsert", {"PartitionKey": club.club_id, "RowKey": rk, "exported_hash": h})
                for rk, h in sent[i : i + 100]
            ]
        )
    return time.perf_counter() - t0, len(sent)


# ---- memory in a fresh process ------------------------------------------------------------------------
def _status(field: str) -> int:
    """A ``/proc/self/status`` value in KiB (``VmRSS``, ``VmHWM``)."""
    text = Path("/proc/self/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(m.group(1)) if m else 0


def rss_child(warm_club: str, club_id: str) -> None:
    logging.disable(logging.WARNING)
    from shared.idrott.export import export_club

    assert export_club(warm_club, trigger="bench").status == "succeeded"  # imports, XSD, connections
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    before = _status("VmRSS")
    r = export_club(club_id, trigger="bench")
    assert r.status == "succeeded", r.error
    print(before, _status("VmHWM"), len(r.files), r.persons + r.activities)


def rss(warm_club: str, club_id: str) -> tuple[int, int, int, int]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_bigclub", "--rss-child", warm_club, club_id],
        check=False,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise RuntimeError(f"memory child failed: {proc.stderr[-2000:]}")
    out = proc.stdout.split()
    return int(out[0]), int(out[1]), int(out[2]), int(out[3])


# ---- main -----------------------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "--rss-child":
        rss_child(argv[1], argv[2])
        return 0
    n_persons = int(argv[0]) if argv else 10_000
    n_activities = int(argv[1]) if len(argv) > 1 else n_persons // 5
    logging.disable(logging.WARNING)
    from devtools.azurite import Azurite
    from devtools.sftp_server import SftpServer
    from shared.idrott.export import export_club
    from shared.idrott.rows import TABLE
    from shared.idrott.state import STATE_ROW, state_table
    from shared.lifecycle import reset_process_state
    from shared.tables import get_table_store

    with (
        tempfile.TemporaryDirectory() as tmp,
        Azurite() as az,
        SftpServer(Path(tmp) / "sftp", username="rfbench", password=PASSWORD) as srv,
    ):
        conn = az.connection_string
        os.environ.update(
            DATA_TABLES_CONNECTION=conn,
            DATA_TABLES_PREFIX="bb" + uuid.uuid4().hex[:8],
            SFTP_PASSWORD_BENCH=PASSWORD,
        )
        reset_process_state()
        full_table = get_table_store().full_name(TABLE)
        t = time.perf_counter()
        clubs = {name: register(name, srv) for name in ("big1", "big2", "mem10k", "mem1k", "warm", "warm1", "warm2")}
        seed("big1", n_persons, n_activities)
        seed("big2", n_persons, n_activities)
        seed("mem10k", 10_000, 2_000)
        seed("mem1k", 1_000, 200)
        for warm in ("warm", "warm1", "warm2"):
            seed(warm, 20, 4)
        print(f"seeded in {time.perf_counter() - t:.1f} s", flush=True)
        # memory first, in fresh processes (the parent's size must not matter); three of each
        small_runs, large_runs = [], []
        for _ in range(MEMORY_RUNS):
            small_runs.append(rss("warm1", "mem1k"))
            large_runs.append(rss("warm2", "mem10k"))
            for club in ("warm1", "mem1k", "warm2", "mem10k"):  # the next one is a first export again
                state_table().delete(club, STATE_ROW)
        small = sorted(small_runs, key=lambda m: m[1] - m[0])[MEMORY_RUNS // 2]
        large = sorted(large_runs, key=lambda m: m[1] - m[0])[MEMORY_RUNS // 2]

        bare_pipeline(conn, full_table, clubs["warm"], srv, Path(tmp))  # warm-up (connections, imports)
        bares, ours, counts = [], [], []
        n_bare = 0
        for name in ("big1", "big2"):
            bare, n_bare = bare_pipeline(conn, full_table, clubs["big1"], srv, Path(tmp))
            bares.append(bare)
            with StorageCounter() as counter:
                t = time.perf_counter()
                r = export_club(clubs[name], trigger="bench")
                ours.append(time.perf_counter() - t)
            assert r.status == "succeeded", r.error
            counts.append((r, counter.counts.copy()))
    r, c = counts[-1]
    exported = r.persons + r.activities + r.deletes
    print(f"club: {n_persons} persons, {n_activities} activities (5 participants each); Azurite in-memory")
    for i, (b, o) in enumerate(zip(bares, ours, strict=True), 1):
        print(f"  round {i}: bare pipeline {b:6.2f} s ({n_bare} records), export_club {o:6.2f} s -> {b / o:4.2f}")
    ratio = min(bares) / min(ours)
    print(
        f"first full export, bare / ours (best of 2): {ratio:4.2f}  (target >= 0.7: {'MET' if ratio >= 0.7 else 'NOT MET'})"
    )
    print(
        f"  our run: {len(r.files)} file(s), {r.persons} persons + {r.activities} activities; "
        f"storage: {c['write_ops']} write ops in {c['write_requests']} write requests "
        f"({c['transactions']} transactions), {c['get']} point reads, {c['query']} queries"
    )
    print(
        f"  bookkeeping: {c['write_ops'] / exported:.3f} write ops and {c['write_requests'] / exported:.4f} write "
        f"requests per exported record (bare: 1 op, 0.01 requests)"
    )
    (sb, sp, sf, sn), (lb, lp, lf, ln) = small, large
    grow_s, grow_l = sp - sb, lp - lb
    print(
        f"peak RSS growth during the export (fresh subprocess, after a warm-up export; median of {MEMORY_RUNS}: "
        f"1 000 persons {', '.join(f'{(p - b) / 1024:.2f}' for b, p, _, _ in small_runs)} MiB, "
        f"10 000 persons {', '.join(f'{(p - b) / 1024:.2f}' for b, p, _, _ in large_runs)} MiB):"
    )
    print(
        f"  1 000 persons  : {grow_s / 1024:6.1f} MiB (RSS {sb / 1024:.1f} -> peak {sp / 1024:.1f}; {sf} files, {sn} records)"
    )
    print(
        f"  10 000 persons : {grow_l / 1024:6.1f} MiB (RSS {lb / 1024:.1f} -> peak {lp / 1024:.1f}; {lf} files, {ln} records)"
    )
    mem = grow_l / max(grow_s, 1)
    print(f"  ratio          : {mem:4.2f}  (target <= 1.3: {'MET' if mem <= 1.3 else 'NOT MET'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
