"""NIF wrapper benchmarks: ``python -m bench.bench_nif``.

(a) membership add p50 through the registered function (routing, key check, validation, NIF
    call, Table Storage record in Azurite) vs a direct httpx POST of the same body to the sandbox;
    ratio target <= 1.2. The record write is reported separately because it is a second network
    round trip the direct call doesn't make.
(b) 200 concurrent adds over 5 clubs: token fetches (must be exactly 5).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

N = int(os.environ.get("BENCH_NIF_N", "200"))
KEY = "bench-subscription-key-0001"
CLUBS = list(range(700001, 700006))


def _request(i: int) -> dict[str, Any]:
    start = date.today().replace(month=1, day=1).isoformat()
    return {
        "startDate": start, "isClubLevel": True,
        "person": {"firstName": f"B{i}", "lastName": "Bench", "birthDate": "1990-01-01", "postCode": "0150",
                   "email": f"b{i}@example.com", "mobilePhone": "90909091", "countryCode": "+47", "genderId": 2,
                   "countryId": 1500152, "nationalityId": 1500152},
        "sports": [{"branchId": 827527, "sportId": 220, "startDate": start}],
    }


def _p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> int:
    import azure.functions as func

    from devtools.azurite import Azurite
    from devtools.host import LocalHost
    from devtools.nif_sandbox import NifSandbox
    from shared.lifecycle import reset_process_state

    import logging

    logging.disable(logging.INFO)
    with Azurite() as az, NifSandbox(subscription_key=KEY, clubs=CLUBS) as sb:
        os.environ.update(NIF_API_BASE_URL=sb.base_url, NIF_SUBSCRIPTION_KEY=KEY,
                          DATA_TABLES_CONNECTION=az.connection_string, DATA_TABLES_PREFIX="bench" + uuid.uuid4().hex[:8])
        reset_process_state()
        import function_app

        app = function_app.app
        if not any(f.get_function_name() == "nif_membership_add" for f in _functions(app)):
            from functions import nif_api

            app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
            app.register_functions(nif_api.bp)
        host = LocalHost(app)

        import httpx

        direct = httpx.Client(base_url=sb.base_url + "/api/v1/")
        token = sb.issue_token(CLUBS[0])
        headers = {"Ocp-Apim-Subscription-Key": KEY, "Authorization": token, "ClubId": str(CLUBS[0])}

        def via_function(i: int) -> None:
            res = host.request("POST", f"/api/nif/clubs/{CLUBS[0]}/memberships", json_body=_request(i))
            assert res.status_code == 200, res.get_body()

        def via_httpx(i: int) -> None:
            res = direct.post("membership", content=json.dumps(_request(i)).encode(),
                              headers={**headers, "Content-Type": "application/json"})
            assert res.status_code == 200, res.text

        from shared.nif.models import MembershipRequest, NifMembershipResponse
        from shared.nif.requests import record_request

        nif_resp = NifMembershipResponse(traceId="x", membershipId=0)

        def record_only(i: int) -> None:
            record_request(CLUBS[0], MembershipRequest.model_validate(_request(i)),
                           nif_resp.model_copy(update={"traceId": str(uuid.uuid4())}))

        for fn in (via_function, via_httpx, record_only):  # warm up
            for i in range(20):
                fn(i)
        samples: dict[str, list[float]] = {"function": [], "httpx": [], "record": []}
        for i in range(N):  # interleaved, so drift hits both alike
            for name, fn in (("function", via_function), ("httpx", via_httpx), ("record", record_only)):
                t0 = time.perf_counter()
                fn(1000 + i)
                samples[name].append(time.perf_counter() - t0)
        f, h, r = (_p50(samples[k]) for k in ("function", "httpx", "record"))
        print(f"membership add p50: function {f:.2f} ms, direct httpx {h:.2f} ms, ratio {f / h:.2f} (target <= 1.2)")
        print(f"  of which Table Storage record p50 {r:.2f} ms; function without it ~{f - r:.2f} ms, "
              f"ratio ~{(f - r) / h:.2f}")

        # (b) 200 concurrent adds over 5 clubs
        reset_process_state()
        before = {c: sb.token_fetches[c] for c in CLUBS}
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(
                lambda i: host.request("POST", f"/api/nif/clubs/{CLUBS[i % 5]}/memberships",
                                       json_body=_request(5000 + i)).status_code, range(200)))
        elapsed = time.perf_counter() - t0
        fetches = sum(sb.token_fetches[c] - before[c] for c in CLUBS)
        ok = statuses.count(200)
        print(f"200 concurrent adds over 5 clubs: {ok}/200 ok in {elapsed:.2f} s, token fetches {fetches} (target 5)")
        direct.close()
        reset_process_state()
        return 0 if fetches == 5 and ok == 200 else 1


def _functions(app: Any) -> list[Any]:
    # get_functions() may be called once per app object (platform notes); use the builder list.
    return [b.build() for b in getattr(app, "_function_builders", [])]


if __name__ == "__main__":
    sys.exit(main())
