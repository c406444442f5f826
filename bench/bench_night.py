"""Nightly capacity benchmark: ``python -m bench.bench_night [clubs] [sequential_sample]``.

A vendor's whole customer base in one night: ``clubs`` (default 1 000) Swedish clubs of 50–500
persons each (a fixed pseudo-random draw), every club with changes that night (2 % of its persons,
at least one). The SFTP server is the local asyncssh one with **1 s added to every
authentication** (RF's server is reached over the internet), one server for all clubs as RF's is.

What runs, in the same process and the same run:

- **fan-out**: the timer's :func:`shared.idrott.fanout.fan_out` enqueues one work item per club on
  Azurite's real queue service; then C workers (C = 4, 16, 64: Flex instances simulated as parallel
  worker threads on this machine, each taking one message at a time from the queue, as one
  instance with ``batchSize`` 1 would) call :func:`shared.idrott.worker.handle_work_item` and
  delete the message. Each C is its own night (the same clubs, new changes).
- **sequential** (the design before the fan-out: one invocation exporting club after club): a
  sample of ``sequential_sample`` clubs (default 25) exported one after another, **extrapolated**
  to all clubs (running it for 1 000 clubs would take ~20 minutes; the per-club time is what it
  measures).

Storage is the in-memory store (``devtools.memtables``, the same contract as Azure's, checked by
tests/test_storage_contract.py) behind a counter: Azurite is one single-threaded node process that
slows as tables grow, which Table Storage (partitioned per club) does not; the counter gives the
storage operations and transactions per club that the cost estimate uses. The queue is Azurite's.

Reported: the night's wall time per C against the target (within 1.5× of N × latency ÷ C), p50/p95
per club, storage operations per club, CPU seconds per club (what bounds the wall time on a
machine with fewer cores than workers), peak memory per worker (tracemalloc peak of one export of
the largest club).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

LATENCY = 1.0
CONCURRENCY = (4, 16, 64)
SFTP_USER, SFTP_PASSWORD, SFTP_SECRET = "rfvendor", "bench-sftp-password", "sftp-password-bench"
NIGHT0 = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


class CountingStore:
    """Wraps a Storage and counts each table operation (``submit`` = one transaction per 100 ops
    of one partition, as the adapter sends them)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def table(self, name: str, *, chunked: bool = False) -> Any:
        return _CountingTable(self, self.inner.table(name, chunked=chunked))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def count(self, op: str, n: int = 1) -> None:
        with self._lock:
            self.counts[op] += n


class _CountingTable:
    def __init__(self, owner: CountingStore, inner: Any) -> None:
        self._owner, self._inner = owner, inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            if name == "submit":
                from shared.tables_contract import as_op, plan_batches

                ops = [as_op(o) for o in args[0]]
                self._owner.count("transactions", len(plan_batches(ops)))
                self._owner.count("transaction_ops", len(ops))
            elif name in ("query", "query_page"):
                self._owner.count("queries")
            else:
                self._owner.count("single_ops")
            return attr(*args, **kwargs)

        return counted


class _RemoteSftp:
    """The local SFTP server in a process of its own (RF's server is another machine: its SSH
    crypto must not compete with the workers for this process's CPU), authentication delayed by
    :data:`LATENCY`."""

    def __init__(self, root: Path) -> None:
        import subprocess

        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devtools.sftp_server",
                "--root",
                str(root),
                "--user",
                SFTP_USER,
                "--password",
                SFTP_PASSWORD,
                "--auth-latency",
                str(LATENCY),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        info = dict(self.proc.stdout.readline().strip().split("=", 1) for _ in range(2))
        self.port, self.host_key_line = int(info["port"]), info["host_key"]
        self.root = root

    def cpu_seconds(self) -> float:
        """CPU time the server process has used (user + system)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _pnr(birth: date, serial: int, rng: random.Random) -> str:
    from shared.idrott.personnummer import luhn_check_digit

    s = serial % 1000
    nine = f"{birth:%y%m%d}{s:03d}"
    return f"{birth:%Y%m%d}-{s:03d}{luhn_check_digit(nine)}"


def _person(club: int, i: int, rng: random.Random, first: str = "Alva") -> dict[str, Any]:
    birth = date(1960 + (i * 7 + club) % 55, 1 + i % 12, 1 + (i // 12) % 28)
    pnr = _pnr(birth, i, rng)
    male = int(pnr[-2]) % 2 == 1
    return {
        "externalId": f"c{club}-p{i}",
        "personnummer": pnr,
        "firstName": first,
        "lastName": f"Andersson{i}",
        "gender": "male" if male else "female",
        "sports": [{"sportId": 7 + i % 3}],
    }


def _activities(club: int, n_persons: int) -> list[dict[str, Any]]:
    start = datetime(2026, 11, 2, 17, tzinfo=UTC)
    out = []
    for t in range(max(1, n_persons // 20)):
        members = [f"c{club}-p{i}" for i in range(t * 20, min(n_persons, t * 20 + 20))]
        out.append(
            {
                "activityId": f"c{club}-t{t}",
                "typeId": 1,
                "name": "Träning",
                "startTime": start.isoformat(),
                "endTime": (start + timedelta(minutes=90)).isoformat(),
                "sportId": 7,
                "venueName": "Stora hallen",
                "participants": [{"personId": p} for p in members],
            }
        )
    return out


def _seed(n_clubs: int, srv: Any) -> dict[str, int]:
    from bench.clubs import swedish_club
    from shared.clubs import ClubIn, put_club
    from shared.idrott.models import Activity, Person
    from shared.idrott.store import ClubRecords

    rng = random.Random(20261202)
    sizes = {}
    for c in range(n_clubs):
        club_id = f"club-{c:04d}"
        (srv.root / club_id).mkdir(parents=True, exist_ok=True)
        n = rng.randint(50, 500)
        sizes[club_id] = n
        # each club its own folder, as RF's accounts have
        body = swedish_club(
            c,
            sftp_port=srv.port,
            sftp_username=SFTP_USER,
            host_key=srv.host_key_line,
            secret=SFTP_SECRET,
            remote_dir=club_id,
        )
        put_club(club_id, ClubIn.model_validate(body))
        rec = ClubRecords(club_id)
        rec.upsert_persons([Person.model_validate(_person(c, i, rng)) for i in range(n)])
        rec.upsert_activities([Activity.model_validate(a) for a in _activities(c, n)])
        if (c + 1) % 200 == 0:
            print(f"  seeded {c + 1} clubs", flush=True)
    return sizes


def _change(sizes: dict[str, int], night: int) -> None:
    """Each club's changes of the day: 2 % of its persons get a new first name (at least one)."""
    from shared.idrott.models import Person
    from shared.idrott.store import ClubRecords

    rng = random.Random(night)
    for club_id, n in sizes.items():
        c = int(club_id.split("-")[1])
        picked = rng.sample(range(n), max(1, n // 50))
        ClubRecords(club_id).upsert_persons(
            [Person.model_validate(_person(c, i, rng, first=f"Namn{night}")) for i in picked]
        )


def _first_night(sizes: dict[str, int]) -> None:
    """Every club's full load, once, before the measured nights (sixteen threads, not measured)."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.idrott.export import export_club

    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(lambda cid: export_club(cid, trigger="timer").status, sizes))
    bad = Counter(r for r in results if r != "succeeded")
    if bad:
        raise SystemExit(f"full load failed: {bad}")


def _night(c: int, night: int, counting: CountingStore, srv: _RemoteSftp) -> dict[str, Any]:
    from shared.idrott import fanout, worker

    at = NIGHT0 + timedelta(days=night)
    os.environ["IDROTTONLINE_EXPORT_CONCURRENCY"] = str(max(c, 1))
    from shared.config import reset_settings

    reset_settings()
    before = Counter(counting.counts)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    server0 = srv.cpu_seconds()
    done = fanout.fan_out(now=lambda: at)
    t_fanout = time.perf_counter() - t0
    queue = fanout.export_queue()
    per_club: list[float] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def work() -> None:
        while True:
            batch = queue.receive(1, visibility_timeout=600)
            if not batch:
                return
            msg = batch[0]
            s = time.perf_counter()
            try:
                out = worker.handle_work_item(
                    msg.content, message_id=msg.id, dequeue_count=msg.dequeue_count, now=lambda: at
                )
            except worker.ExportRunFailed:
                out = "failed"
            queue.delete(msg)
            with lock:
                per_club.append(time.perf_counter() - s)
                outcomes[out] += 1

    threads = [threading.Thread(target=work, name=f"instance-{i}") for i in range(c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    server_cpu = srv.cpu_seconds() - server0
    ops = counting.counts - before
    n = len(done.enqueued)
    return {
        "c": c,
        "clubs": n,
        "wall": wall,
        "fanout": t_fanout,
        "target": 1.5 * n * LATENCY / c,
        "ideal": n * LATENCY / c,
        "p50": statistics.median(per_club),
        "p95": statistics.quantiles(per_club, n=20)[18],
        "outcomes": dict(outcomes),
        "cpu_per_club": cpu / n,
        "server_cpu_per_club": server_cpu / n,
        "ops": {k: v / n for k, v in ops.items()},
    }


def _sequential(sample: list[str], night: int) -> float:
    from shared.idrott.export import export_club

    at = NIGHT0 + timedelta(days=night)
    t0 = time.perf_counter()
    for club_id in sample:
        r = export_club(club_id, trigger="timer", now=lambda: at)
        assert r.status == "succeeded", r.error
    return (time.perf_counter() - t0) / len(sample)


def _worker_memory(club_id: str, sizes: dict[str, int], night: int) -> float:
    from shared.idrott.export import export_club

    _change({club_id: sizes[club_id]}, night)
    tracemalloc.start()
    export_club(club_id, trigger="manual", now=lambda: NIGHT0 + timedelta(days=night))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    n_clubs = int(argv[0]) if argv else 1000
    sample = int(argv[1]) if len(argv) > 1 else 25
    from devtools.azurite import Azurite
    from devtools.memtables import MemoryTableStore
    from shared import tables

    counting = CountingStore(MemoryTableStore())
    tables.get_table_store = lambda: counting  # type: ignore[assignment,return-value]
    with tempfile.TemporaryDirectory() as tmp, Azurite(service="queue") as az:
        os.environ.update(
            AzureWebJobsStorage=az.connection_string,
            IDROTTONLINE_EXPORT_QUEUE="bench-night",
            SFTP_PASSWORD_BENCH=SFTP_PASSWORD,
            DATA_TABLES_PREFIX="bench",
        )
        from shared.lifecycle import reset_process_state

        reset_process_state()
        tables.get_table_store = lambda: counting  # type: ignore[assignment,return-value]
        srv = _RemoteSftp(Path(tmp) / "sftp")
        try:
            t0 = time.perf_counter()
            sizes = _seed(n_clubs, srv)
            persons = sum(sizes.values())
            print(
                f"seeded {n_clubs} clubs, {persons} persons ({min(sizes.values())}-{max(sizes.values())} per club) in {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
            t0 = time.perf_counter()
            _first_night(sizes)
            print(
                f"first night (full load, 64 threads, not measured): {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
            rows = []
            for night, c in enumerate(CONCURRENCY, start=1):
                _change(sizes, night)
                row = _night(c, night, counting, srv)
                rows.append(row)
                print(
                    f"C={c:>3}: {row['clubs']} clubs in {row['wall']:.1f} s (fan-out {row['fanout']:.1f} s); "
                    f"N x latency / C = {row['ideal']:.1f} s, target <= {row['target']:.1f} s: "
                    f"{'MET' if row['wall'] <= row['target'] else 'NOT MET'} (ratio {row['wall'] / row['ideal']:.2f}); "
                    f"per club p50 {row['p50']:.2f} s, p95 {row['p95']:.2f} s; CPU {row['cpu_per_club'] * 1000:.0f} ms/club "
                    f"(SFTP server process: {row['server_cpu_per_club'] * 1000:.0f} ms/club); "
                    f"outcomes {row['outcomes']}",
                    flush=True,
                )
                print(
                    "        storage per club: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(row["ops"].items())),
                    flush=True,
                )
            night = len(CONCURRENCY) + 1
            _change(sizes, night)
            picked = sorted(sizes)[:sample]
            per = _sequential(picked, night)
            seq = per * n_clubs
            print(
                f"sequential (one invocation, club after club): {per:.2f} s per club on a sample of {sample}, "
                f"extrapolated to {n_clubs} clubs: {seq:.0f} s; fan-out speed-up C=4/16/64: "
                + "/".join(f"{seq / r['wall']:.1f}x" for r in rows),
                flush=True,
            )
            biggest = max(sizes, key=lambda k: sizes[k])
            mem = _worker_memory(biggest, sizes, night + 1)
            print(
                f"memory per worker: {mem:.1f} MiB tracemalloc peak exporting the largest club ({sizes[biggest]} persons, delta night)"
            )
        finally:
            srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
