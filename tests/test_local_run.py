"""``make run`` works: the README walkthrough, over real HTTP, against ``python -m devtools.run``.

Starts the real local run (Azurite, NIF sandbox, SFTP server, local host, outbox pump) in a
subprocess on free ports, follows the banner's curl commands with httpx, then stops it with
SIGINT and expects a clean exit. Also: a busy port stops the start with one message naming the
service and leaves nothing running; Azurite refuses a port that is not its own; the local export
timer is off unless asked for and then ticks through the host; ``--reset`` starts afresh.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.azurite import Azurite
from devtools.ports import PortInUse, free_port, port_in_use
from devtools.run import SERVICES, LocalRun
from tests.idrott_support import activities_by_id, persons_by_id, xml_root
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[1]
EPHEMERAL_HINT = "stop it or run `make run ARGS=--ephemeral` for free ports"


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NIF_", "DATA_TABLES_", "IDROTTONLINE_", "SFTP_", "KEY_VAULT"))
    }


@dataclass
class Started:
    info: dict[str, Any]
    out: Path  # the run's stdout (banner, "stopping…"), complete once the run has stopped
    err: Path


@contextmanager
def local_run(tmp_path: Path, *args: str, state: Path | None = None) -> Iterator[Started]:
    """``python -m devtools.run --ephemeral <args>`` until ready; SIGINT afterwards, expecting exit 0.

    Output goes to files (a pipe nobody reads would fill up and block the run's logging)."""
    ready = tmp_path / "ready.json"
    ready.unlink(missing_ok=True)
    out, err = tmp_path / "run.out", tmp_path / "run.err"
    state = state or tmp_path / "state"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devtools.run",
                "--ephemeral",
                "--state-dir",
                str(state),
                "--ready-file",
                str(ready),
                *args,
            ],
            cwd=ROOT,
            env=_clean_env(),
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait(10)
                pytest.fail(
                    f"local run did not start (exit {proc.returncode}):\n"
                    f"{out.read_text()[-2000:]}\n{err.read_text()[-4000:]}"
                )
            time.sleep(0.2)
        time.sleep(0.1)
        yield Started(json.loads(ready.read_text()), out, err)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("local run did not stop on SIGINT")
    assert proc.returncode == 0, err.read_text()[-4000:]
    assert "stopping" in out.read_text()


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain ``text`` (Azurite's has its --location)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback port somebody else listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s


def _still_ours(sock: socket.socket) -> bool:
    """The listener still owns its port: a connect to it is accepted by it."""
    port = sock.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        sock.settimeout(5)
        conn, _ = sock.accept()
        conn.close()
    return True


# --- the walkthrough --------------------------------------------------------------------------------------


def test_readme_walkthrough(tmp_path: Path) -> None:
    with local_run(tmp_path, "--no-persist") as run:
        _walkthrough(run.info)
    banner = run.out.read_text()
    assert "Export timer      off" in banner and '--export-timer 60"' in banner


def _walkthrough(info: dict[str, Any]) -> None:
    api, sandbox = info["api"], info["sandbox"]
    fkey = {"x-functions-key": info["functionKey"]}
    mkey = {"x-functions-key": info["masterKey"]}
    state = Path(info["state"])
    assert info["exportTimer"] is None  # off unless asked for
    with httpx.Client(timeout=20) as http:
        assert http.get(f"{api}/health").json()["status"] == "pass"

        # NIF: the seed's membership request (dates moved to this year) → pending with a traceId
        body = Path(info["membershipRequest"]).read_bytes()
        res = http.post(
            f"{api}/nif/clubs/19428/memberships", headers={**fkey, "Content-Type": "application/json"}, content=body
        )
        assert res.status_code == 200, res.text
        added = res.json()
        assert added["status"] == "pending_verification" and added["traceId"]
        trace = added["traceId"]
        # the person verifies in the sandbox → queue messages → pump → Service Bus function → mirror
        assert http.post(f"{sandbox}/_sandbox/verifications/{trace}/complete").status_code == 200
        confirmed = wait_for(
            lambda: (
                http.get(f"{api}/nif/clubs/19428/membership-requests/{trace}", headers=fkey).json().get("status")
                == "confirmed"
            ),
            timeout=15.0,
            interval=0.2,
        )
        assert confirmed, "the membership request was not confirmed from the queue"
        members = http.get(f"{api}/nif/clubs/19428/members", headers=fkey).json()
        member = next(m for m in members["items"] if m.get("personId") == added["personId"])
        # personId was sent, so NIF kept its stored person: the request's person fields were ignored
        sent = json.loads(body)["person"]
        person = member["person"]["person"]
        assert (person["firstName"], person["lastName"]) == (sent["firstName"], sent["lastName"])
        assert person["genderId"] != sent["genderId"]  # NIF's stored value, not the request's

        # IdrottOnline: persons + activities → preview with prognosis → export → file on SFTP
        se = info["seClub"]
        for kind in ("persons", "activities"):
            res = http.put(
                f"{api}/idrottonline/clubs/{se}/{kind}",
                headers={**fkey, "Content-Type": "application/json"},
                content=(state / f"idrottonline-{kind}.json").read_bytes(),
            )
            assert res.status_code == 200, res.text
        preview = http.get(f"{api}/idrottonline/clubs/{se}/export/preview", headers=fkey).json()
        assert preview["fullLoad"] is True and preview["persons"] == 5 and preview["activities"] == 2
        (preview_file,) = preview["files"]
        root = xml_root(preview_file["xml"])
        assert root.tag == "Import" and (len(persons_by_id(root)), len(activities_by_id(root))) == (5, 2)
        assert preview["lokPrognosis"]["advisory"] is True
        prognosis = {p["activityId"]: p for p in preview["lokPrognosis"]["activities"]}
        assert prognosis["t1"]["eligible"] is True and prognosis["t1"]["advisory"] is True
        assert prognosis["t2"]["eligible"] is False and prognosis["t2"]["failures"]
        res = http.post(f"{api}/idrottonline/clubs/{se}/export", headers=mkey)
        assert res.status_code == 200, res.text
        sftp_root = Path(info["sftpRoot"])
        files = sorted(p.name for p in sftp_root.rglob("*.xml"))
        assert len(files) == 1 and not list(sftp_root.rglob("*.part"))

        # change one person: the next preview and export hold that person only
        change = state / "idrottonline-person-change.json"
        res = http.put(
            f"{api}/idrottonline/clubs/{se}/persons",
            headers={**fkey, "Content-Type": "application/json"},
            content=change.read_bytes(),
        )
        assert res.status_code == 200, res.text
        changed = json.loads(change.read_text(encoding="utf-8"))[0]
        preview = http.get(f"{api}/idrottonline/clubs/{se}/export/preview", headers=fkey).json()
        assert preview["fullLoad"] is False and (preview["persons"], preview["activities"]) == (1, 0)
        persons = persons_by_id(xml_root(preview["files"][0]["xml"]))
        assert list(persons) == [changed["externalId"]]
        assert persons[changed["externalId"]].findtext("LastName") == changed["lastName"]
        assert http.post(f"{api}/idrottonline/clubs/{se}/export", headers=mkey).status_code == 200
        assert len(list(sftp_root.rglob("*.xml"))) == 2

        runs = http.get(f"{api}/idrottonline/clubs/{se}/exports", headers=fkey).json()["runs"]
        # newest first; no timer ran in between (no "empty" rows)
        assert [(r["trigger"], r["status"], r["persons"]) for r in runs] == [
            ("manual", "succeeded", 1),
            ("manual", "succeeded", 5),
        ]

        # every club at once, through the export queue: the poller delivers the work item to the
        # queue-triggered worker (nothing changed since the last run: the run is empty)
        res = http.post(f"{api}/idrottonline/export", headers=mkey)
        assert res.status_code == 202 and res.json()["clubs"] == [se], res.text

        def third_run() -> list[dict[str, Any]]:
            runs = http.get(f"{api}/idrottonline/clubs/{se}/exports", headers=fkey).json()["runs"]
            return runs if len(runs) == 3 and runs[0]["status"] != "running" else []

        queued = wait_for(third_run, timeout=15.0, interval=0.2)
        assert queued and (queued[0]["trigger"], queued[0]["status"]) == ("manual", "empty")
        assert http.get(f"{api}/idrottonline/export/poison", headers=mkey).json()["items"] == []


# --- the local export timer and --reset -------------------------------------------------------------------


def test_export_timer_ticks_through_the_host_when_asked_and_reset_starts_afresh(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with local_run(tmp_path, "--export-timer", "0.2", state=state) as run:  # persisted Azurite
        api, se = run.info["api"], run.info["seClub"]
        fkey = {"x-functions-key": run.info["functionKey"]}
        assert run.info["exportTimer"] == 0.2

        def timer_runs() -> list[dict[str, Any]]:
            runs = httpx.get(f"{api}/idrottonline/clubs/{se}/exports", headers=fkey, timeout=20).json()["runs"]
            return [r for r in runs if r["trigger"] == "timer" and r["status"] != "running"]

        ticked = wait_for(timer_runs, timeout=15.0, interval=0.2)
        assert ticked and ticked[0]["status"] == "empty"  # nothing was sent in: the run had nothing to send
    assert "Export timer      on: the export timer function runs every 0.2 s" in run.out.read_text()
    assert (state / "azurite").is_dir()

    with local_run(tmp_path, "--reset", state=state) as run:
        runs = httpx.get(
            f"{run.info['api']}/idrottonline/clubs/{run.info['seClub']}/exports",
            headers={"x-functions-key": run.info["functionKey"]},
            timeout=20,
        ).json()["runs"]
        assert runs == []  # the ledger the timer wrote before is gone with Azurite's files
    assert "reset: removed azurite, sftp," in run.out.read_text()


def test_reset_removes_only_what_the_run_keeps(tmp_path: Path) -> None:
    (tmp_path / "azurite").mkdir()
    (tmp_path / "azurite" / "__azurite_db_table__.json").write_text("{}")
    (tmp_path / "sftp").mkdir()
    (tmp_path / "sftp" / "x.xml").write_text("<Import/>")
    (tmp_path / "membership-request.json").write_text("{}")
    (tmp_path / "mine.txt").write_text("not the run's")
    removed = LocalRun(state_dir=tmp_path).reset_state()
    assert sorted(p.name for p in removed) == ["azurite", "membership-request.json", "sftp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


# --- busy ports -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", list(SERVICES))
def test_a_busy_port_names_the_service_and_starts_nothing(
    service: str, tmp_path: Path, listener: socket.socket
) -> None:
    label, _, flag = SERVICES[service]
    busy = listener.getsockname()[1]
    state = tmp_path / "state"
    (state / "sftp").mkdir(parents=True)
    (state / "sftp" / "earlier.xml").write_text("<Import/>")
    res = subprocess.run(
        [sys.executable, "-m", "devtools.run", "--ephemeral", flag, str(busy), "--state-dir", str(state), "--reset"],
        check=False,
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1, res.stderr
    assert f"port {busy} ({label}) is in use by another process; {EPHEMERAL_HINT}" in res.stderr
    assert "Traceback" not in res.stderr and "idrettsbro is running" not in res.stdout
    assert (state / "sftp" / "earlier.xml").exists()  # --reset comes after the check: nothing was touched
    assert not _processes_mentioning(str(state))  # no Azurite left behind
    assert _still_ours(listener)


def test_a_port_taken_after_the_check_stops_what_was_already_started(tmp_path: Path, listener: socket.socket) -> None:
    """The port check and the bind are apart in time: a port taken in between (here: taken from the
    start, the check skipped) fails the start with the service's name, after stopping Azurite, the
    sandbox and the SFTP server, which start before the Functions host."""
    state = tmp_path / "state"
    ports = {
        "azurite": free_port(),
        "sandbox": free_port(),
        "sftp": free_port(),
        "functions": listener.getsockname()[1],
    }
    script = """
import json, sys
from pathlib import Path
from devtools.ports import PortInUse, port_in_use
from devtools.run import LocalRun
ports = json.loads(sys.argv[1])
run = LocalRun(ports=ports, state_dir=Path(sys.argv[2]))
try:
    run.start()
except PortInUse as exc:
    print(json.dumps({"port": exc.port, "service": exc.service,
                      "stillListening": [name for name, port in ports.items()
                                         if name != "functions" and port_in_use(port)]}))
else:
    run.stop()
"""
    res = subprocess.run(
        [sys.executable, "-c", script, json.dumps(ports), str(state)],
        check=False,
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    outcome = json.loads(res.stdout.strip().splitlines()[-1])
    assert outcome == {"port": ports["functions"], "service": "local Functions host", "stillListening": []}
    assert (state / "azurite").is_dir()  # Azurite did start (on disk) …
    assert not _processes_mentioning(str(state))  # … and was stopped
    assert not port_in_use(ports["azurite"])
    assert _still_ours(listener)


# --- Azurite refuses a port that is not its own -----------------------------------------------------------


def test_azurite_on_a_port_another_process_listens_on_fails_with_its_stderr(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    az = Azurite(port=port)
    with pytest.raises(PortInUse) as caught:
        az.start()
    assert caught.value.port == port and caught.value.service == "Azurite"
    assert "EADDRINUSE" in str(caught.value)
    assert az.proc is None  # its node exited; nothing to stop
    assert _still_ours(listener)


def test_a_second_azurite_on_the_same_port_fails_and_the_first_keeps_serving() -> None:
    from azure.data.tables import TableServiceClient

    with Azurite() as first:
        second = Azurite(port=first.port)
        with pytest.raises(PortInUse, match="EADDRINUSE"):
            second.start()
        assert first.proc is not None and first.proc.poll() is None
        tables = TableServiceClient.from_connection_string(first.connection_string)
        tables.create_table("stillserving")
        assert [t.name for t in tables.list_tables()] == ["stillserving"]


def test_azurite_that_exits_for_another_reason_says_why() -> None:
    az = Azurite(port=free_port(), host="192.0.2.1")  # TEST-NET-1: no interface here has that address
    with pytest.raises(RuntimeError) as caught:
        az.start()
    assert not isinstance(caught.value, PortInUse)
    assert "Azurite exited" in str(caught.value) and "EADDRNOTAVAIL" in str(caught.value)
    assert az.proc is None


# --- the command line -------------------------------------------------------------------------------------


def test_help_documents_the_options() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "devtools.run", "--help"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0
    for option in (
        "--ephemeral",
        "--export-timer",
        "--reset",
        "--no-persist",
        "--state-dir",
        "--ready-file",
        *(flag for _, _, flag in SERVICES.values()),
    ):
        assert option in res.stdout, option
    text = " ".join(res.stdout.split())  # argparse wraps the help texts
    assert 'make run ARGS="' in text and "(default: off;" in text and "make run ARGS=--reset" in text
