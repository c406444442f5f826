"""NIF payment benchmarks: ``python -m bench.bench_payments`` (reports; exits 0 unless it crashes).

One process, one run: Azurite (in-memory, loopback), the NIF sandbox (in-process, loopback) and
the registered functions behind ``devtools.host.LocalHost`` (Microsoft's runtime).

(a) Payment report p50 through the registered function (routing, key check, validation with the
    mirror look-ups, outbox index + claim + outcome writes in Azurite, the NIF call) vs a direct
    httpx POST of the same body to the sandbox, the sandbox holding every POST payment for
    ``BENCH_PAY_LATENCY_MS`` (default 50 ms). Samples interleaved. Target ratio <= 1.2.
    Breakdown by sections (the outbox writes, the mirror reads), timed in the same calls.
(b) Drain after an outage: ``BENCH_PAY_DRAIN`` (default 1 000) payments queued while NIF answered
    503 (fails before recording, so each retry looks the payment up first, then posts), then one
    run of the retry drain, in payments/s, against a bare sequential loop of direct httpx POSTs
    of the same number of payments, in the same run, with the sandbox on loopback (no added
    latency) for both.

Env: BENCH_PAY_N (default 40), BENCH_PAY_LATENCY_MS (default 50), BENCH_PAY_DRAIN (default 1000).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.bench_nif import _Sections
from devtools.nif_sandbox_payments import example_payment

N = int(os.environ.get("BENCH_PAY_N", "40"))
LATENCY_MS = float(os.environ.get("BENCH_PAY_LATENCY_MS", "50"))
DRAIN = int(os.environ.get("BENCH_PAY_DRAIN", "1000"))
WARMUP = 5
TARGET = 1.2
KEY = "bench-subscription-key-0002"
CLUB = 19428
PERSON0 = 8_800_000


def _ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _recording(drain: Any, runs: list[dict[str, int]]) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        result = drain(*args, **kwargs)
        runs.append(result.summary())
        return result

    return run


def main() -> int:
    from devtools.azurite import Azurite
    from devtools.host import LocalHost
    from devtools.nif_sandbox import NifSandbox
    from shared.lifecycle import reset_process_state

    logging.disable(logging.WARNING)
    started = time.perf_counter()
    with Azurite() as az, NifSandbox(subscription_key=KEY) as sb:
        template = sb.persons[8756935]
        for i in range(DRAIN + N + 2 * WARMUP + 10):
            sb.persons[PERSON0 + i] = dataclasses.replace(template, personId=PERSON0 + i)
        os.environ.update(
            NIF_API_BASE_URL=sb.base_url,
            NIF_SUBSCRIPTION_KEY=KEY,
            DATA_TABLES_CONNECTION=az.connection_string,
            DATA_TABLES_PREFIX="benchpay" + uuid.uuid4().hex[:6],
        )
        reset_process_state()
        host = LocalHost()

        import httpx

        from shared.nif.payments import facts, outbox, service

        sections = _Sections()
        for attr in ("claim", "finish"):
            sections.wrap(outbox, attr, attr)
        sections.wrap(facts, "membership_facts", "mirror")

        direct = httpx.Client(base_url=sb.base_url + "/api/v1/")
        headers = {
            "Ocp-Apim-Subscription-Key": KEY,
            "Authorization": sb.issue_token(CLUB),
            "ClubId": str(CLUB),
            "Content-Type": "application/json",
        }
        run = uuid.uuid4().hex[:6]

        def via_function(i: int) -> None:
            res = host.request(
                "POST", f"/api/nif/clubs/{CLUB}/payments", json_body=example_payment(f"F{run}-{i}", PERSON0 + i)
            )
            assert res.status_code == 200, res.get_body()

        def via_httpx(i: int) -> None:
            data = json.dumps(example_payment(f"D{run}-{i}", PERSON0 + i)).encode()
            res = direct.post("membership/Addpaymentdetail", content=data, headers=headers)
            assert res.status_code == 200, res.text

        # (a) payment report, NIF answering after LATENCY_MS
        sb.inject("Addpaymentdetail", method="POST", delay=LATENCY_MS / 1000, times=2 * (N + WARMUP))
        for i in range(WARMUP):
            via_function(i)
            via_httpx(i)
        samples: dict[str, list[float]] = {"function": [], "httpx": [], "writes": [], "mirror": []}
        for i in range(WARMUP, WARMUP + N):
            sections.last.clear()
            t0 = time.perf_counter()
            via_function(i)
            samples["function"].append(time.perf_counter() - t0)
            samples["writes"].append(sum(sections.take(k) for k in ("claim", "finish")))
            samples["mirror"].append(sections.take("mirror"))
            t0 = time.perf_counter()
            via_httpx(i)
            samples["httpx"].append(time.perf_counter() - t0)
        f, h, w, m = (_ms(samples[k]) for k in ("function", "httpx", "writes", "mirror"))
        ratio = f / h
        print(f"(a) payment report, sandbox answering POST after {LATENCY_MS:.0f} ms, median of {N} interleaved pairs")
        print(
            f"  p50: function {f:.2f} ms, direct httpx {h:.2f} ms -> ratio {ratio:.2f} "
            f"(target <= {TARGET}: {'MET' if ratio <= TARGET else 'NOT MET'})"
        )
        print(
            f"  breakdown (p50, same calls): outbox transactions (claim, outcome; the claim overlaps the mirror reads) {w:.2f} ms, mirror reads {m:.2f} ms"
        )

        # the storage floor of this run: one bare insert into Azurite (the function makes two
        # sequential storage round trips: the claim, overlapped with the mirror reads, and the outcome)
        scratch = outbox._store().table("BenchFloor")
        floor = []
        for i in range(30):
            t0 = time.perf_counter()
            scratch.create({"PartitionKey": run, "RowKey": str(i)})
            floor.append(time.perf_counter() - t0)
        print(f"  storage floor in this run: one bare Azurite insert p50 {_ms(floor):.2f} ms")

        # (b) drain after an outage
        base = WARMUP + N + 5
        sb.inject("Addpaymentdetail", method="POST", status=503, times=DRAIN)
        policy = service.Policy.from_settings()
        queued = 0
        for i in range(DRAIN):
            req = service.PaymentRequest.model_validate(example_payment(f"Q{run}-{i}", PERSON0 + base + i))
            queued += service.report(CLUB, req, policy)["status"] == "queued"
        later = datetime.now(UTC) + timedelta(hours=2)
        service.clock = lambda: later
        runs: list[dict[str, int]] = []
        service.drain = _recording(service.drain, runs)
        t0 = time.perf_counter()
        host.invoke("nif_payment_retry_timer", timer=False)  # one timer run, through the runtime
        drain_s = time.perf_counter() - t0
        outcomes = runs[0]
        t0 = time.perf_counter()
        for i in range(DRAIN):
            data = json.dumps(example_payment(f"B{run}-{i}", PERSON0 + base + i)).encode()
            assert direct.post("membership/Addpaymentdetail", content=data, headers=headers).status_code == 200
        bare_s = time.perf_counter() - t0
        reported = outcomes.get("reported", 0)
        print(
            f"(b) drain of {queued} payments queued during an outage (503 before recording), one timer run through the runtime"
        )
        print(
            f"  drain {reported / drain_s:.0f} payments/s ({reported} reported in {drain_s:.2f} s, "
            f"{policy.concurrency} at a time, each looked up then posted) vs bare loop of direct POSTs "
            f"{DRAIN / bare_s:.0f} payments/s ({bare_s:.2f} s) -> ratio {(reported / drain_s) / (DRAIN / bare_s):.2f}"
        )
        dup = sum(1 for i in range(DRAIN) if sb.payments.posts_for(f"Q{run}-{i}") != 1)
        print(f"  exactly once: {DRAIN - dup}/{DRAIN} payments recorded once by the sandbox; outcomes {outcomes}")
        direct.close()
        reset_process_state()
    print(f"bench_payments: {time.perf_counter() - started:.1f} s, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
