"""`make fuzz` at a bounded size inside `make test`: a 5xx on any route fails the build (issue 9).

`devtools/fuzz.sh` starts the local run (`python -m devtools.run --ephemeral --no-persist`: the
registered functions behind the local host, the NIF sandbox, Azurite, the SFTP server) and points
schemathesis (its own venv, `.venv-fuzz`, created by `make test`) at our OpenAPI document with the
`not_a_server_error` check. Every operation gets the key its security scheme names: the function key
on function-level routes, the master key on admin routes.

The size is bounded by examples, not by a clock: all four phases, `EXAMPLES` cases per operation for
fuzzing and stateful, and the coverage phase whole (schemathesis' deterministic boundary and
malformed values per parameter and field, about 1 100 of the ~1 400 requests). `--max-time` is not
used: it is a budget schemathesis always spends in full (fuzzing repeats until it runs out), and it
cuts the coverage phase per operation on a slow machine. `make fuzz` is the long run
(100 per operation). The seed is random, so each build tries new inputs; a failure prints the seed
(`devtools/fuzz.sh 10 --seed N` replays it).

Skipped only when `.venv-fuzz` is absent and CI is unset; under CI a missing venv fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMATHESIS = ROOT / ".venv-fuzz" / "bin" / "schemathesis"
EXAMPLES = 10


def _operations() -> dict[tuple[str, re.Pattern[str]], str]:
    """``(METHOD, path regex) → auth level`` for every operation of the document the run serves."""
    from shared.openapi import all_operations, build_document

    ops: dict[tuple[str, re.Pattern[str]], str] = {}
    for path, item in build_document(all_operations())["paths"].items():
        pattern = re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)))
        for method, op in item.items():
            # the key schemes only: a bearer token (docs/security.md) is an alternative on every keyed route
            schemes = {name for requirement in op.get("security", []) for name in requirement} - {"bearer"}
            level = "admin" if schemes == {"masterKey"} else "function" if schemes else "anonymous"
            ops[(method.upper(), pattern)] = level
    return ops


def _stop(proc: subprocess.Popen) -> None:
    """Stop the run and everything it started (its own session): SIGINT lets devtools.run clean up."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


@pytest.mark.timeout(420)  # a hang guard only; the run is bounded by size (about a minute on 2 CPUs)
def test_no_route_answers_a_server_error(tmp_path: Path) -> None:
    if not SCHEMATHESIS.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{SCHEMATHESIS} is missing under CI: `make test` must create .venv-fuzz")
        pytest.skip("schemathesis not installed (.venv-fuzz absent; `make test` creates it); CI runs this")
    keys = {"function": f"fuzz-function-{uuid.uuid4().hex[:8]}", "admin": f"fuzz-master-{uuid.uuid4().hex[:8]}"}
    report = tmp_path / "report"
    cmd = ["bash", "devtools/fuzz.sh", str(EXAMPLES)]
    cmd += ["--suppress-health-check", "all", "--request-timeout", "60", "--no-color"]
    cmd += ["--report", "har", "--report-dir", str(report), "--output-sanitize", "false"]
    env = {**os.environ, "IDRETTSBRO_FUNCTION_KEY": keys["function"], "IDRETTSBRO_MASTER_KEY": keys["admin"]}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate()
    finally:
        _stop(proc)
    assert proc.returncode == 0, f"schemathesis found failures (or could not run):\n{out[-12000:]}"

    tested = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", out)
    assert tested and len(set(tested.groups())) == 1, f"not every operation was tested:\n{out[-4000:]}"

    # Every operation was reached past the key check (a status other than 401), with the key its level needs.
    levels = _operations()
    assert len(levels) == int(tested.group(1)), (len(levels), tested.group(0))
    key_level = {keys["function"]: "function", keys["admin"]: "admin"}
    reached: dict[tuple[str, re.Pattern[str]], set[str]] = {op: set() for op in levels}
    (har,) = report.glob("*.json")
    for entry in json.loads(har.read_text(encoding="utf-8"))["log"]["entries"]:
        request = entry["request"]
        if entry["response"]["status"] == 401:
            continue
        path = "/" + request["url"].split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        key = next((h["value"] for h in request["headers"] if h["name"].lower() == "x-functions-key"), "")
        for (method, pattern), used in reached.items():
            if method == request["method"] and pattern.fullmatch(path):
                used.add(key_level.get(key, "anonymous"))
    missing = [
        f"{method} {pattern.pattern} ({levels[(method, pattern)]}): reached with {sorted(used) or 'nothing'}"
        for (method, pattern), used in reached.items()
        if levels[(method, pattern)] not in used
    ]
    assert not missing, "operations never reached with their own key:\n" + "\n".join(missing)
