"""Nightly capacity benchmark: ``python -m bench.bench_night [clubs] [sequential_sample] [latency]
[concurrencies]`` (defaults 1000, 25, 1.0 s, ``4,16,64``).

A vendor's whole customer base in one night: ``clubs`` (default 1 000) Swedish clubs of 50–500
persons each (a fixed pseudo-random draw), every club with changes that night (2 % of its persons,
at least one). The SFTP server is the local asyncssh one with **1 s added to every
authentication** (RF's server is reached over the internet), one server for all clubs as RF's is.

What runs, in the same run:

- **fan-out**: the timer's :func:`shared.idrott.fanout.fan_out` enqueues one work item per club on
  Azurite's real queue service; then C workers call :func:`shared.idrott.worker.handle_work_item`
  and delete each message. C = 4, 16, 64 workers are Flex instances simulated as **processes** on
  this machine, as instances are separate processes (each with its own interpreter lock): C / 8
  processes of 8 worker threads (C = 4: one of 4), each fetching its messages in batches as
  host.json's ``batchSize`` 8 and ``newBatchThreshold`` 4 make the host do (:func:`_instance`),
  started and warm before the night begins, and polling while the timer still enqueues, as the
  host's listeners do. Each C is its own night (the same clubs, new changes).
- **sequential** (the design before the fan-out: one invocation exporting club after club): a
  sample of ``sequential_sample`` clubs (default 25) exported one after another, **extrapolated**
  to all clubs (running it for 1 000 clubs would take ~20 minutes; the per-club time is what it
  measures).

Storage is the in-memory store (``devtools.memtables``, the same contract as Azure's, checked by
tests/test_storage_contract.py) behind a counter, in a process of its own that every instance
reaches over a local socket (:mod:`bench.remote_tables`): Azurite is one single-threaded node
process that slows as tables grow, which Table Storage (partitioned per club) does not; the
counter gives the storage operations and transactions per club that the cost estimate uses. The
queue is Azurite's. All of it shares this machine's two cores: the instances, the store's
process, the SFTP server and Azurite.

Reported: the night's wall time per C against the target (within 1.5× of N × latency ÷ C), p50/p95
per club, storage operations per club, CPU seconds per club (the instances' and the timer's,
what bounds the wall time on a machine with fewer cores than workers), the machine's CPU seconds
for the night and the **CPU floor** they set (CPU seconds ÷ cores: no night on this machine can be
shorter, whatever the design), peak memory per worker
(tracemalloc peak of one delta export of the largest club, with an in-process store).
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
from types import SimpleNamespace
from typing import Any

LATENCY = 1.0
CONCURRENCY: tuple[int, ...] = (4, 16, 64)
BARE: tuple[int, ...] = (64,)  # the concurrencies that also run the bare baseline (_bare_night)
SFTP_USER, SFTP_PASSWORD, SFTP_SECRET = "rfvendor", "bench-sftp-password", "sftp-password-bench"
NIGHT0 = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
BARE_QUEUE = "bench-night-bare"
WARM_CLUBS = 9000  # club numbers from here on: each instance's warm-up club (disabled, never enqueued)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its descendants alive."""
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, cpu seconds)
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, (0, 0.0))[1]
        todo += [child for child, (parent, _) in stats.items() if parent == p]
    return total


class _RemoteSftp:
    """The local SFTP server in a process of its own (RF's server is another machine: its SSH
    crypto must not compete with the workers for this process's CPU), authentication delayed by
    :data:`LATENCY`, logging warnings only (asyncssh's info lines, several per login, cost it CPU
    on the cores the instances share)."""

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
                "--log-level",
                "WARNING",
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
        return tree_cpu(self.proc.pid)

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
    rng = random.Random(20261202)
    sizes = {}
    for c in range(n_clubs):
        club_id = f"club-{c:04d}"
        sizes[club_id] = rng.randint(50, 500)
        _seed_club(c, sizes[club_id], srv)
        if (c + 1) % 200 == 0:
            print(f"  seeded {c + 1} clubs", flush=True)
    return sizes


def _seed_club(c: int, n: int, srv: Any, *, enabled: bool = True) -> None:
    from bench.clubs import swedish_club
    from shared.clubs import ClubIn, put_club
    from shared.idrott.models import Activity, Person
    from shared.idrott.store import ClubRecords

    club_id = f"club-{c:04d}"
    (srv.root / club_id).mkdir(parents=True, exist_ok=True)
    # each club its own folder, as RF's accounts have
    body = swedish_club(
        c,
        sftp_port=srv.port,
        sftp_username=SFTP_USER,
        host_key=srv.host_key_line,
        secret=SFTP_SECRET,
        remote_dir=club_id,
    )
    body["enabled"] = enabled
    put_club(club_id, ClubIn.model_validate(body))
    rec = ClubRecords(club_id)
    rng = random.Random(c)
    rec.upsert_persons([Person.model_validate(_person(c, i, rng)) for i in range(n)])
    rec.upsert_activities([Activity.model_validate(a) for a in _activities(c, n)])


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


def _queue_options() -> Any:
    """The app's host.json ``extensions.queues`` (``batchSize``, ``newBatchThreshold``)."""
    from devtools.queue_poller import QueueOptions

    return QueueOptions.from_host_json(Path(__file__).resolve().parent.parent / "host.json")


def _instances(c: int) -> list[int]:
    """The slots of each simulated instance: ``c`` workers as instances of host.json's ``batchSize``."""
    size = _queue_options().batch_size
    return [min(size, c - i) for i in range(0, c, size)]


def _instance(queue: Any, run: Any, slots: int, fed: Any) -> None:
    """One instance's queue listener, as host.json configures the host's: it fetches a batch of
    up to ``slots`` messages and runs them at once, and fetches more for the free slots when no
    more than ``newBatchThreshold`` (at most half the slots) are still running. (The host would fetch
    a whole ``batchSize`` then, up to 12 running; the cap keeps the instances' total at ``c``,
    as the export slots would.) An empty poll backs off from 100 ms, doubling up to
    ``maxPollingInterval``, as the host's does; the listener starts while the timer is still
    enqueueing, as the host's does, and stops when ``fed`` (the enqueueing is over) is set, the
    queue is empty and nothing is running."""
    from concurrent.futures import ThreadPoolExecutor

    options = _queue_options()
    threshold = min(options.threshold, slots // 2)
    backoff = 0.1
    running = 0
    changed = threading.Condition()

    def one(msg: Any) -> None:
        nonlocal running
        try:
            run(msg)
        finally:
            with changed:
                running -= 1
                changed.notify()

    def room() -> bool:
        return running <= threshold

    with ThreadPoolExecutor(slots) as pool:
        while True:
            with changed:
                changed.wait_for(room)
                free = slots - running
            batch = queue.receive(free, visibility_timeout=600)
            if not batch:
                with changed:
                    if running == 0 and fed.is_set():
                        return
                    changed.wait(backoff)
                backoff = min(backoff * 2, options.max_polling_interval)
                continue
            backoff = 0.1
            with changed:
                running += len(batch)
            for msg in batch:
                pool.submit(one, msg)


def _use_store(address: Any) -> Any:
    """Point this process's table store at the store's process (after ``reset_process_state``)."""
    from bench.remote_tables import RemoteStore
    from shared import tables

    store = RemoteStore(address)
    tables.get_table_store = lambda: store  # type: ignore[assignment,return-value]
    return store


def _warm(club: int, srv: Any) -> None:
    """What an instance that has run an export before has done already: one real export, of a
    small club of its own (disabled, so the timer never enqueues it), so the modules the export
    imports on first use, the XSD and the SFTP and storage clients are loaded. The night then
    measures exports, not an instance's first import."""
    from shared.idrott import worker  # noqa: F401
    from shared.idrott.export import export_club

    _seed_club(club, 5, srv, enabled=False)
    result = export_club(f"club-{club:04d}", trigger="manual")
    assert result.status == "succeeded", result.error


def _serve(queue: Any, handle: Any, slots: int, ready: Any, go: Any, fed: Any, results: Any) -> None:
    """An instance's night, once it is warm: its queue listener (:func:`_instance`) runs
    ``handle(message)`` (an outcome) for each message and deletes the message after it, until the
    queue is empty; then it reports each message's time, the outcomes and its CPU seconds."""
    per_club: list[float] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def run(msg: Any) -> None:
        s = time.perf_counter()
        out = handle(msg)
        queue.delete(msg)
        with lock:
            per_club.append(time.perf_counter() - s)
            outcomes[out] += 1

    ready.wait()
    go.wait()
    cpu0 = time.process_time()
    _instance(queue, run, slots, fed)
    results.put((per_club, dict(outcomes), time.process_time() - cpu0))


def _instance_process(
    slots: int, i: int, ready: Any, go: Any, fed: Any, results: Any, address: Any, night: int, srv: Any
) -> None:
    """One simulated Flex instance, in a process of its own: warm (:func:`_warm`, with a club of
    its own, and its queue client made), then it exports a club per message (:func:`_serve`)."""
    from shared.idrott import fanout, worker
    from shared.lifecycle import reset_process_state

    reset_process_state()
    _use_store(address)
    queue = fanout.export_queue()
    _warm(WARM_CLUBS + 100 * night + i, srv)
    queue.peek(1)
    at = NIGHT0 + timedelta(days=night)

    def handle(msg: Any) -> str:
        try:
            return worker.handle_work_item(
                msg.content, message_id=msg.id, dequeue_count=msg.dequeue_count, now=lambda: at
            )
        except worker.ExportRunFailed:
            return "failed"

    _serve(queue, handle, slots, ready, go, fed, results)


BARE_FILE = 4_000  # bytes: about one delta night's file of a 300-person club (2 % changed)


def _bare_instance_process(slots: int, i: int, ready: Any, go: Any, fed: Any, results: Any, srv: Any) -> None:
    """One simulated instance of the bare baseline: the same listener and processes, but each
    message only logs in over SFTP (host key pinned, on shared.sftp's socket with Nagle off),
    uploads :data:`BARE_FILE` bytes to a ``.part`` name, renames it, and the message is deleted:
    the least an export of one club must do on the network, with no storage, no XML and no
    bookkeeping."""
    import io

    import paramiko

    from shared.queues import get_queue_store
    from shared.sftp import _open_socket, parse_host_key

    queue = get_queue_store().queue(BARE_QUEUE)
    queue.peek(1)
    key = parse_host_key(srv.host_key_line)
    payload = b"x" * BARE_FILE

    def handle(msg: Any) -> str:
        client = paramiko.SSHClient()
        client.get_host_keys().add(f"[127.0.0.1]:{srv.port}", key.get_name(), key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                "127.0.0.1",
                srv.port,
                SFTP_USER,
                SFTP_PASSWORD,
                sock=_open_socket("127.0.0.1", srv.port, 30),
                timeout=30,
                banner_timeout=30,
                auth_timeout=30,
                allow_agent=False,
                look_for_keys=False,
            )
            sftp = client.open_sftp()
            part, final = f"{msg.content}/bare.xml.part", f"{msg.content}/bare.xml"
            sftp.putfo(io.BytesIO(payload), part, file_size=len(payload), confirm=False)
            sftp.stat(part)
            sftp.posix_rename(part, final)
        finally:
            client.close()
        return "uploaded"

    _serve(queue, handle, slots, ready, go, fed, results)


def _fleet(c: int, target: Any, args: tuple, start: Any, srv: _RemoteSftp, others: dict[str, int]) -> dict[str, Any]:
    """Run a night on ``c`` workers: the instances (:func:`_instances`), each
    ``target(slots, i, ready, go, fed, results, *args)`` in a process of its own, are started and
    warm; then the instances go and ``start()`` enqueues the night's work meanwhile (timed; ``fed``
    is set when it returns), and the instances run until it has returned and the queue is empty. Returns the wall time from ``start``, its own time, each message's time, the
    outcomes, and the CPU seconds of this process and the instances (``cpu``), of the SFTP server
    and of each of ``others``."""
    import multiprocessing

    mp = multiprocessing.get_context("spawn")
    slots = _instances(c)
    ready, go, fed, results = mp.Barrier(len(slots) + 1), mp.Event(), mp.Event(), mp.Queue()
    procs = [
        mp.Process(target=target, args=(n, i, ready, go, fed, results, *args), name=f"instance-{i}")
        for i, n in enumerate(slots)
    ]
    for p in procs:
        p.start()
    ready.wait()  # every instance started and warm
    t0 = time.perf_counter()
    cpu0, server0 = time.process_time(), srv.cpu_seconds()
    others0 = {name: tree_cpu(pid) for name, pid in others.items()}
    go.set()  # the instances poll from the start, as the host's listeners do while the timer runs
    started = start()
    t_start = time.perf_counter() - t0
    fed.set()
    per_club: list[float] = []
    outcomes: Counter[str] = Counter()
    cpu = time.process_time() - cpu0
    for _ in procs:
        times, outs, used = results.get()
        per_club += times
        outcomes.update(outs)
        cpu += used
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    return {
        "instances": len(slots),
        "started": started,
        "wall": wall,
        "start_seconds": t_start,
        "per_club": per_club,
        "outcomes": outcomes,
        "cpu": cpu,
        "server_cpu": srv.cpu_seconds() - server0,
        "other_cpu": {name: tree_cpu(pid) - others0[name] for name, pid in others.items()},
    }


def _bare_night(c: int, clubs: list[str], srv: _RemoteSftp, others: dict[str, int]) -> dict[str, float]:
    """The bare baseline at concurrency ``c``: the clubs' folder names enqueued (eight threads, as
    the timer), then :func:`_bare_instance_process` instances until the queue is empty."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.queues import get_queue_store

    queue = get_queue_store().queue(BARE_QUEUE)  # created on first use

    def start() -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(queue.send, clubs))

    where = SimpleNamespace(port=srv.port, host_key_line=srv.host_key_line)
    run = _fleet(c, _bare_instance_process, (where,), start, srv, others)
    assert run["outcomes"] == {"uploaded": len(clubs)}, run["outcomes"]
    return {
        "wall": run["wall"],
        "p50": statistics.median(run["per_club"]),
        "p95": statistics.quantiles(run["per_club"], n=20)[18],
        "machine_cpu": run["cpu"] + run["server_cpu"] + sum(run["other_cpu"].values()),
    }


def _night(c: int, night: int, store: Any, srv: _RemoteSftp, others: dict[str, int]) -> dict[str, Any]:
    from shared.config import reset_settings
    from shared.idrott import fanout

    at = NIGHT0 + timedelta(days=night)
    os.environ["IDROTTONLINE_EXPORT_CONCURRENCY"] = str(max(c, 1))
    reset_settings()
    where = SimpleNamespace(root=srv.root, port=srv.port, host_key_line=srv.host_key_line)
    before = store.counts()
    run = _fleet(
        c, _instance_process, (store.address, night, where), lambda: fanout.fan_out(now=lambda: at), srv, others
    )
    ops = store.counts() - before
    n = len(run["started"].enqueued)
    return {
        "c": c,
        "instances": run["instances"],
        "clubs": n,
        "wall": run["wall"],
        "fanout": run["start_seconds"],
        "target": 1.5 * n * LATENCY / c,
        "ideal": n * LATENCY / c,
        "p50": statistics.median(run["per_club"]),
        "p95": statistics.quantiles(run["per_club"], n=20)[18],
        "outcomes": dict(run["outcomes"]),
        "cpu_per_club": run["cpu"] / n,
        "server_cpu_per_club": run["server_cpu"] / n,
        # every process of the night on this machine, against what its cores could give in the wall time
        "machine_cpu": run["cpu"] + run["server_cpu"] + sum(run["other_cpu"].values()),
        "other_cpu": run["other_cpu"],
        "cores": os.cpu_count() or 1,
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


def _worker_memory(club_id: str, n: int, srv: Any, night: int) -> float:
    """tracemalloc peak of one delta export of the club, with an in-process store holding only it
    (the store's process answers a query with all its rows at once, which a real page does not)."""
    from devtools.memtables import MemoryTableStore
    from shared import tables
    from shared.idrott.export import export_club
    from shared.lifecycle import reset_process_state

    reset_process_state()
    local = MemoryTableStore()
    tables.get_table_store = lambda: local  # type: ignore[assignment,return-value]
    _seed_club(int(club_id.split("-")[1]), n, srv)
    export_club(club_id, trigger="manual", now=lambda: NIGHT0 + timedelta(days=night - 1))  # its full load
    _change({club_id: n}, night)
    tracemalloc.start()
    export_club(club_id, trigger="manual", now=lambda: NIGHT0 + timedelta(days=night))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    n_clubs = int(argv[0]) if argv else 1000
    sample = int(argv[1]) if len(argv) > 1 else 25
    global LATENCY, CONCURRENCY
    if len(argv) > 2:  # RF's server was also seen taking 2 s per login (the measurements)
        LATENCY = float(argv[2])
    if len(argv) > 3:
        CONCURRENCY = tuple(int(c) for c in argv[3].split(","))
    from bench import remote_tables
    from devtools.azurite import Azurite

    manager, address = remote_tables.start()
    with tempfile.TemporaryDirectory() as tmp, Azurite(service="queue") as az:
        os.environ.update(
            AzureWebJobsStorage=az.connection_string,
            IDROTTONLINE_EXPORT_QUEUE="bench-night",
            SFTP_PASSWORD_BENCH=SFTP_PASSWORD,
            DATA_TABLES_PREFIX="bench",
        )
        from shared.lifecycle import reset_process_state

        reset_process_state()
        store = _use_store(address)
        srv = _RemoteSftp(Path(tmp) / "sftp")
        try:
            others = {"store": manager._process.pid, "azurite": az.proc.pid}  # type: ignore[attr-defined,union-attr]
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
                row = _night(c, night, store, srv, others)
                rows.append(row)
                print(
                    f"C={c:>3} ({row['instances']} instance processes): {row['clubs']} clubs in {row['wall']:.1f} s "
                    f"(fan-out {row['fanout']:.1f} s); "
                    f"N x latency / C = {row['ideal']:.1f} s, target <= {row['target']:.1f} s: "
                    f"{'MET' if row['wall'] <= row['target'] else 'NOT MET'} (ratio {row['wall'] / row['ideal']:.2f}); "
                    f"per club p50 {row['p50']:.2f} s, p95 {row['p95']:.2f} s; CPU {row['cpu_per_club'] * 1000:.0f} ms/club "
                    f"(SFTP server process: {row['server_cpu_per_club'] * 1000:.0f} ms/club); "
                    f"outcomes {row['outcomes']}",
                    flush=True,
                )
                print(
                    f"        machine: {row['machine_cpu']:.1f} CPU-s used of {row['cores']} cores x {row['wall']:.1f} s "
                    f"= {row['cores'] * row['wall']:.1f} ({row['machine_cpu'] / (row['cores'] * row['wall']):.0%}; store process "
                    f"{row['other_cpu']['store']:.1f} s, Azurite {row['other_cpu']['azurite']:.1f} s); "
                    f"CPU floor (the night's CPU-s / cores, the wall time at 100 % of every core) "
                    f"{row['machine_cpu'] / row['cores']:.1f} s against the target's {row['target']:.1f} s",
                    flush=True,
                )
                print(
                    "        storage per club: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(row["ops"].items())),
                    flush=True,
                )
                if c in BARE:
                    bare = _bare_night(c, sorted(sizes), srv, others)
                    print(
                        f"        bare baseline, same C (SFTP login, upload, rename, queue; no storage, no XML): "
                        f"{bare['wall']:.1f} s (ratio to N x latency / C {bare['wall'] / row['ideal']:.2f}; "
                        f"p50 {bare['p50']:.2f} s, p95 {bare['p95']:.2f} s; machine {bare['machine_cpu']:.1f} CPU-s, "
                        f"{bare['machine_cpu'] / (row['cores'] * bare['wall']):.0%} of {row['cores']} cores); "
                        f"the night / bare = {row['wall'] / bare['wall']:.2f}",
                        flush=True,
                    )
            night = len(CONCURRENCY) + 1
            _change(sizes, night)
            picked = sorted(sizes)[:sample]
            per = _sequential(picked, night)
            seq = per * n_clubs
            print(
                f"sequential (one invocation, club after club): {per:.2f} s per club on a sample of {sample}, "
                f"extrapolated to {n_clubs} clubs: {seq:.0f} s; fan-out speed-up C="
                + "/".join(map(str, CONCURRENCY))
                + ": "
                + "/".join(f"{seq / r['wall']:.1f}x" for r in rows),
                flush=True,
            )
            biggest = max(sizes, key=lambda k: sizes[k])
            mem = _worker_memory(biggest, sizes[biggest], srv, night + 1)
            print(
                f"memory per worker: {mem:.1f} MiB tracemalloc peak exporting the largest club ({sizes[biggest]} persons, delta night)"
            )
        finally:
            srv.stop()
            manager.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
