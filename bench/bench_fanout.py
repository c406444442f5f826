"""The timer's fan-out at vendor scale: ``python -m bench.bench_fanout [clubs] [rounds]``.

1 000 enabled Swedish clubs registered in Azurite's table service, the export queue on Azurite's
queue service (both in-memory, loopback). Each round runs :func:`shared.idrott.fanout.fan_out`
for a fresh night (every club is claimed, sent and recorded: three storage round trips a club)
twice, alternating: with ``FANOUT_THREADS = 1`` (the sequential fan-out this replaced, the same
code) and with the default, and drains the queue in between. Reported: seconds per 1 000 clubs
and the speed-up, median over rounds; and what that means for ``functionTimeout`` (10 min) at
100 000 clubs, extrapolated linearly (stated as such: the storage here is loopback Azurite, not
Table Storage across the network). No target is set in the issue; the design's bound is the
night's roll-call partition (2 000 entities/s in Azure). Azurite is one Node.js process on the
same two cores, so here the threads mostly wait for it: the speed-up is a lower bound for Azure,
where a round trip is network latency.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta


def _host_key_line() -> str:
    """An OpenSSH public host key line: registration requires a pinned key; nothing connects."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _register(n: int) -> None:
    from bench.clubs import swedish_club
    from shared.clubs import ClubIn, put_club

    host_key = _host_key_line()
    for c in range(n):
        body = swedish_club(c, sftp_port=22, sftp_username="rf", host_key=host_key, secret="sftp-password-bench")
        put_club(f"club-{c:05d}", ClubIn.model_validate(body))


def _drain() -> None:
    from shared.idrott import fanout

    queue = fanout.export_queue()
    while batch := queue.receive(32, visibility_timeout=60):
        for m in batch:
            queue.delete(m)


def _night(threads: int, night: int) -> float:
    from shared.idrott import fanout

    saved = fanout.FANOUT_THREADS
    fanout.FANOUT_THREADS = threads
    at = datetime(2026, 12, 2, 1, 0, tzinfo=UTC) + timedelta(days=night)
    try:
        t0 = time.perf_counter()
        done = fanout.fan_out(now=lambda: at)
        took = time.perf_counter() - t0
    finally:
        fanout.FANOUT_THREADS = saved
    assert not done.failed and not done.already, (done.failed[:3], done.already[:3])
    _drain()
    return took


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 1000
    rounds = int(argv[1]) if len(argv) > 1 else 2
    logging.disable(logging.CRITICAL)  # every club is "overdue" on these invented nights
    from devtools.azurite import Azurite
    from shared.idrott import fanout
    from shared.lifecycle import reset_process_state

    with Azurite() as tables, Azurite(service="queue") as queues:
        os.environ.update(
            DATA_TABLES_CONNECTION=tables.connection_string,
            DATA_TABLES_PREFIX="bf" + uuid.uuid4().hex[:8],
            AzureWebJobsStorage=queues.connection_string,
            IDROTTONLINE_EXPORT_QUEUE="bench-fanout",
        )
        reset_process_state()
        t0 = time.perf_counter()
        _register(n)
        print(f"registered {n} clubs in {time.perf_counter() - t0:.1f} s", flush=True)
        _night(fanout.FANOUT_THREADS, 0)  # warm-up: connections, queue and tables created
        seq, par = [], []
        for r in range(rounds):
            seq.append(_night(1, 1 + 2 * r))
            par.append(_night(fanout.FANOUT_THREADS, 2 + 2 * r))
    per_k = 1000 / n
    s, p = statistics.median(seq), statistics.median(par)
    print(f"fan-out of {n} clubs, Azurite tables + queue on loopback, {rounds} rounds:")
    print(f"  one club at a time     : {', '.join(f'{x:.1f}' for x in seq)} s  ({s * per_k:.1f} s per 1 000 clubs)")
    print(
        f"  {fanout.FANOUT_THREADS} clubs at a time      : {', '.join(f'{x:.1f}' for x in par)} s  "
        f"({p * per_k:.1f} s per 1 000 clubs)"
    )
    print(f"  speed-up               : {s / p:.2f}x")
    print(
        f"  100 000 clubs (linear) : {s * 100_000 / n / 60:.1f} min one at a time, {p * 100_000 / n / 60:.1f} min "
        f"{fanout.FANOUT_THREADS} at a time (functionTimeout: 10 min)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
