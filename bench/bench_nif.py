"""NIF wrapper benchmarks: ``python -m bench.bench_nif`` (reports; exits 0 unless it crashes).

Everything runs in one process, one run: Azurite (in-memory, loopback), the NIF sandbox
(in-process, loopback) and the registered functions behind ``devtools.host.LocalHost``.

(a) The issue's comparison: membership add p50 through the registered function (routing, key
    check, validation, NIF call, Table Storage record in Azurite) vs a direct httpx POST of the
    same body to the sandbox, which answers in ~2 ms on loopback. Target ratio <= 1.2.
(b) The same comparison, same method, with the sandbox holding every POST membership for
    ``BENCH_NIF_LATENCY_MS`` (default 50 ms: a conservative figure for NIF behind APIM, called
    from Azure) through the sandbox's fault hook. Also labelled against the 1.2 target.
(c) Breakdown of the function path, timed by sections in the same calls (the handlers are wrapped
    with timers here, production code is unchanged): Table Storage record write, NIF call
    (``NifClient.add_membership``: token lookup, HTTP, response validation), and the rest
    (host routing and key check, glue, JSON parse, pydantic, NIF rules, result, serialisation).
    "Function without the record" = per-call total minus that call's record write.
(d) 200 concurrent adds over 5 clubs: token fetches (target: exactly 5).

Samples are interleaved (function, direct, function, ...) so that drift on a shared machine hits
both sides alike. INFO logging is disabled on both sides (as before): the log handler is the
platform's, not ours. Env: BENCH_NIF_N (default 200), BENCH_NIF_N_LATENCY (default 40),
BENCH_NIF_LATENCY_MS (default 50).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

N = int(os.environ.get("BENCH_NIF_N", "200"))
N_LATENCY = int(os.environ.get("BENCH_NIF_N_LATENCY", "40"))
LATENCY_MS = float(os.environ.get("BENCH_NIF_LATENCY_MS", "50"))
WARMUP = 20
TARGET = 1.2
KEY = "bench-subscription-key-0001"
CLUBS = list(range(700001, 700006))


def _request(i: int) -> dict[str, Any]:
    start = date.today().replace(month=1, day=1).isoformat()
    return {
        "startDate": start,
        "isClubLevel": True,
        "person": {
            "firstName": f"B{i}",
            "lastName": "Bench",
            "birthDate": "1990-01-01",
            "postCode": "0150",
            "email": f"b{i}@example.com",
            "mobilePhone": "90909091",
            "countryCode": "+47",
            "genderId": 2,
            "countryId": 1500152,
            "nationalityId": 1500152,
        },
        "sports": [{"branchId": 827527, "sportId": 220, "startDate": start}],
    }


def _ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _verdict(ratio: float) -> str:
    return f"target <= {TARGET}: {'MET' if ratio <= TARGET else 'NOT MET'}"


class _Sections:
    """Per-call section timers: wraps an attribute so each call records its duration."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def wrap(self, owner: Any, attr: str, label: str) -> None:
        original = getattr(owner, attr)
        sections = self

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                sections.last[label] = time.perf_counter() - t0

        setattr(owner, attr, timed)

    def take(self, label: str) -> float:
        return self.last.pop(label, 0.0)


def _compare(
    label: str,
    n: int,
    via_function: Callable[[int], None],
    via_httpx: Callable[[int], None],
    sections: _Sections,
    offset: int,
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"function": [], "httpx": [], "record": [], "nif": [], "bare": []}
    for i in range(n):  # interleaved, so drift hits both alike
        sections.last.clear()
        t0 = time.perf_counter()
        via_function(offset + i)
        total = time.perf_counter() - t0
        record, nif = sections.take("record"), sections.take("nif")
        samples["function"].append(total)
        samples["record"].append(record)
        samples["nif"].append(nif)
        samples["bare"].append(total - record)
        t0 = time.perf_counter()
        via_httpx(offset + i)
        samples["httpx"].append(time.perf_counter() - t0)
    f, h, r, nf, b = (_ms(samples[k]) for k in ("function", "httpx", "record", "nif", "bare"))
    wrapper = (
        statistics.median(t - rec - nc for t, rec, nc in zip(samples["function"], samples["record"], samples["nif"]))
        * 1000
    )
    print(f"{label}")
    print(
        f"  membership add p50: function {f:.2f} ms, direct httpx {h:.2f} ms -> ratio {f / h:.2f} ({_verdict(f / h)})"
    )
    print(
        f"  breakdown (p50 of each section, same calls): Table Storage record {r:.2f} ms, "
        f"NIF call {nf:.2f} ms, wrapper's own code {wrapper:.2f} ms"
    )
    print(
        f"  function without the record write: {b:.2f} ms -> ratio {b / h:.2f} vs direct "
        f"({'within' if b / h <= TARGET else 'above'} {TARGET})"
    )
    return samples


def main() -> int:
    from devtools.azurite import Azurite
    from devtools.host import LocalHost
    from devtools.nif_sandbox import NifSandbox
    from shared.lifecycle import reset_process_state

    logging.disable(logging.INFO)
    started = time.perf_counter()
    with Azurite() as az, NifSandbox(subscription_key=KEY, clubs=CLUBS) as sb:
        os.environ.update(
            NIF_API_BASE_URL=sb.base_url,
            NIF_SUBSCRIPTION_KEY=KEY,
            DATA_TABLES_CONNECTION=az.connection_string,
            DATA_TABLES_PREFIX="bench" + uuid.uuid4().hex[:8],
        )
        reset_process_state()
        host = LocalHost()  # Microsoft's runtime indexes function_app.py

        import httpx

        from shared.nif import membership_requests
        from shared.nif.client import NifClient

        sections = _Sections()
        sections.wrap(membership_requests, "record_request", "record")  # looked up per call by shared.nif.api
        sections.wrap(NifClient, "add_membership", "nif")

        direct = httpx.Client(base_url=sb.base_url + "/api/v1/")
        token = sb.issue_token(CLUBS[0])
        headers = {
            "Ocp-Apim-Subscription-Key": KEY,
            "Authorization": token,
            "ClubId": str(CLUBS[0]),
            "Content-Type": "application/json",
        }

        def via_function(i: int) -> None:
            res = host.request("POST", f"/api/nif/clubs/{CLUBS[0]}/memberships", json_body=_request(i))
            assert res.status_code == 200, res.get_body()

        def via_httpx(i: int) -> None:
            res = direct.post("membership", content=json.dumps(_request(i)).encode(), headers=headers)
            assert res.status_code == 200, res.text

        for i in range(WARMUP):  # warm up: token, connections, table created, imports
            via_function(i)
            via_httpx(i)

        # (a) the issue's comparison: loopback sandbox, ~2 ms
        _compare(
            f"(a) loopback sandbox (the issue's comparison), median of {N} interleaved pairs",
            N,
            via_function,
            via_httpx,
            sections,
            1000,
        )

        # (b) same, with NIF answering after a realistic latency
        sb.inject("/api/v1/membership", method="POST", delay=LATENCY_MS / 1000, times=2 * (N_LATENCY + 2))
        for i in range(2):
            via_function(3000 + i)
            via_httpx(3000 + i)
        _compare(
            f"(b) sandbox answering POST membership after {LATENCY_MS:.0f} ms (realistic NIF via APIM), "
            f"median of {N_LATENCY} interleaved pairs",
            N_LATENCY,
            via_function,
            via_httpx,
            sections,
            4000,
        )

        # (d) 200 concurrent adds over 5 clubs
        reset_process_state()
        before = {c: sb.token_fetches[c] for c in CLUBS}
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(
                pool.map(
                    lambda i: (
                        host.request(
                            "POST", f"/api/nif/clubs/{CLUBS[i % 5]}/memberships", json_body=_request(5000 + i)
                        ).status_code
                    ),
                    range(200),
                )
            )
        elapsed = time.perf_counter() - t0
        fetches = sum(sb.token_fetches[c] - before[c] for c in CLUBS)
        ok = statuses.count(200)
        print(
            f"(d) 200 concurrent adds over 5 clubs: {ok}/200 ok in {elapsed:.2f} s, token fetches {fetches} "
            f"(target exactly 5: {'MET' if fetches == 5 and ok == 200 else 'NOT MET'})"
        )
        direct.close()
        reset_process_state()
    print(f"bench_nif: {time.perf_counter() - started:.1f} s, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
