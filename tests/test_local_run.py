"""``make run`` works: the README walkthrough, over real HTTP, against ``python -m devtools.run``.

Starts the real local run (Azurite, NIF sandbox, SFTP server, local host, outbox pump) in a
subprocess on free ports, follows the banner's curl commands with httpx, then stops it with
SIGINT and expects a clean exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def local_run(tmp_path: Path):
    ready = tmp_path / "ready.json"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NIF_", "DATA_TABLES_", "IDROTTONLINE_", "SFTP_", "KEY_VAULT"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.run", "--ephemeral", "--no-persist", "--timer-seconds", "3600",
         "--state-dir", str(tmp_path / "state"), "--ready-file", str(ready)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate(timeout=10)
            pytest.fail(f"local run did not start (exit {proc.returncode}):\n{out[-2000:]}\n{err[-4000:]}")
        time.sleep(0.2)
    time.sleep(0.1)
    info = json.loads(ready.read_text())
    try:
        yield info
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("local run did not stop on SIGINT")
        assert proc.returncode == 0, err[-4000:]
        assert "stopping" in out


def _wait_for(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_readme_walkthrough(local_run: dict) -> None:
    api, sandbox = local_run["api"], local_run["sandbox"]
    fkey = {"x-functions-key": local_run["functionKey"]}
    mkey = {"x-functions-key": local_run["masterKey"]}
    state = Path(local_run["state"])
    with httpx.Client(timeout=20) as http:
        assert http.get(f"{api}/health").json()["status"] == "pass"

        # NIF: the seed's membership request (dates moved to this year) → pending with a traceId
        body = Path(local_run["membershipRequest"]).read_bytes()
        res = http.post(f"{api}/nif/clubs/19428/memberships", headers={**fkey, "Content-Type": "application/json"},
                        content=body)
        assert res.status_code == 200, res.text
        added = res.json()
        assert added["status"] == "pending_verification" and added["traceId"]
        trace = added["traceId"]
        # the person verifies in the sandbox → queue messages → pump → Service Bus function → mirror
        assert http.post(f"{sandbox}/_sandbox/verifications/{trace}/complete").status_code == 200
        confirmed = _wait_for(lambda: http.get(f"{api}/nif/clubs/19428/membership-requests/{trace}",
                                               headers=fkey).json().get("status") == "confirmed")
        assert confirmed, "the membership request was not confirmed from the queue"
        members = http.get(f"{api}/nif/clubs/19428/members", headers=fkey).json()
        assert any(m.get("personId") == added["personId"] for m in members["items"])

        # IdrottOnline: persons + activities → preview with prognosis → export → file on SFTP
        se = local_run["seClub"]
        for kind in ("persons", "activities"):
            res = http.put(f"{api}/idrottonline/clubs/{se}/{kind}", headers={**fkey, "Content-Type": "application/json"},
                           content=(state / f"idrottonline-{kind}.json").read_bytes())
            assert res.status_code == 200, res.text
        preview = http.get(f"{api}/idrottonline/clubs/{se}/export/preview", headers=fkey).json()
        assert preview["fullLoad"] is True and preview["persons"] == 5 and preview["activities"] == 2
        assert preview["files"] and "<Import" in preview["files"][0]["xml"]
        assert preview["lokPrognosis"]["advisory"] is True
        prognosis = {p["activityId"]: p for p in preview["lokPrognosis"]["activities"]}
        assert prognosis["t1"]["eligible"] is True and prognosis["t1"]["advisory"] is True
        assert prognosis["t2"]["eligible"] is False and prognosis["t2"]["failures"]
        res = http.post(f"{api}/idrottonline/clubs/{se}/export", headers=mkey)
        assert res.status_code == 200, res.text
        files = sorted(p.name for p in Path(local_run["sftpRoot"]).rglob("*.xml"))
        assert files and not list(Path(local_run["sftpRoot"]).rglob("*.part"))
        ledger = http.get(f"{api}/idrottonline/clubs/{se}/exports", headers=fkey).json()
        assert ledger
