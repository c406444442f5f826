"""``make run``: everything locally on embedded defaults.

Starts, on loopback:
- Azurite (Table service; on disk under ``.local/azurite`` so data survives restarts) on :10002,
  and its Queue service (``.local/azurite-queues``) on :10001 for the export work queue;
- the NIF sandbox (``devtools.nif_sandbox``) on :7072;
- an SFTP server (``devtools.sftp_server``) on :2222, files landing in ``.local/sftp/``;
- the local Functions host (``devtools.host``) serving the app's HTTP functions on :7071/api;
- a local OIDC issuer (``devtools.oidc_issuer``) on a free loopback port: ``AUTH_ISSUER`` points at
  it, and with ``AUTH_MODE=tokens`` the app takes its bearer tokens (and still the host's keys);
- the outbox pump: NIF sandbox queue messages → the registered Service Bus function;
- one queue poller per queue-triggered function (``devtools.queue_poller``): the export worker
  runs each work item the timer or ``POST /api/idrottonline/export`` enqueues, with the host's
  retry and poison semantics from host.json;
- only with ``--export-timer SECONDS``: a local timer that invokes the timer-triggered export
  function through the host every SECONDS (the real host evaluates
  ``IDROTTONLINE_EXPORT_SCHEDULE``, nightly; it cannot run here, and a tick every minute would
  export the walkthrough's data before you do and add an ``empty`` ledger row each time);
and registers a demo Swedish club (``demo-se``) pointing at the local SFTP server.

A port that is already taken stops the start with one message naming the service and the port
(exit status 1) and nothing left running; ``--ephemeral`` uses free ports instead, ``--<service>-port``
moves one service. ``--reset`` deletes the state this command keeps under ``.local/`` (Azurite's
tables, the SFTP folder, the example files) before starting, for a fresh demo.

Settings come from ``local.settings.json`` (``Values``) when that file exists, otherwise from the
embedded defaults below; the environment wins over both. Ctrl-C stops everything (Azurite with
SIGINT, so on-disk data is flushed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

from devtools.ports import PortInUse, is_address_in_use, port_in_use

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("devtools.run")

DEMO_CLUB_SE = "demo-se"
NIF_DEMO_CLUB = 19428  # the club of the seed's membership examples (known to the sandbox)
DEMO_SFTP_USER = "demo"
DEMO_SFTP_SECRET = "sftp-password-demo-se"
# Local-only password of the local SFTP server (not a secret: it guards a folder on loopback).
DEMO_SFTP_PASSWORD = "local-sftp-demo"

# service → (what the messages call it, default port, the option that moves it)
SERVICES: dict[str, tuple[str, int, str]] = {
    "azurite": ("Azurite", 10002, "--azurite-port"),
    "queues": ("Azurite queues", 10001, "--queues-port"),
    "sandbox": ("NIF sandbox", 7072, "--sandbox-port"),
    "sftp": ("SFTP server", 2222, "--sftp-port"),
    "functions": ("local Functions host", 7071, "--functions-port"),
}
# what this command keeps in its state folder; --reset deletes exactly these, nothing else there
STATE_ENTRIES = (
    "azurite",
    "sftp",
    "membership-request.json",
    "idrottonline-persons.json",
    "idrottonline-activities.json",
    "idrottonline-person-change.json",
    "azurite-queues",
)


def _seed_request(today: date) -> dict[str, Any]:
    """The seed's membership request example with its dates moved into the current year.

    The seed dates it 2019-08-27; NIF (and our local validation) only accept start dates in the
    current year and end dates after today, so the example is re-dated, nothing else changes.
    """
    from shared.nif.lenient_json import loads  # copes with the seed's "-- NB:" comment and table residue

    data = loads((ROOT / "tests" / "events" / "nif" / "membership_request.txt").read_text(encoding="utf-8"))
    start, end = today.isoformat(), (today + timedelta(days=30)).isoformat()
    data["startDate"] = start
    for item in data.get("sports", []) + data.get("groups", []):
        item["startDate"], item["endDate"] = start, end
    return data


def _personnummer(birth: date, serial: int, male: bool) -> str:
    """A syntactically valid personnummer (Luhn, gender digit) for demo data."""
    from shared.idrott.personnummer import luhn_check_digit

    third = serial % 10 if (serial % 10) % 2 == (1 if male else 0) else (serial + 1) % 10
    nine = f"{birth:%y%m%d}{serial // 10 % 100:02d}{third}"
    return f"{birth:%Y%m%d}-{nine[6:]}{luhn_check_digit(nine)}"


def demo_idrottonline(today: date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Persons and activities for the README walkthrough, dated relative to ``today``.

    Four members aged 9–15 and a leader; activity ``t1`` (90 minutes yesterday) should be
    LOK-eligible, ``t2`` (30 minutes, two participants) shows the prognosis naming failed rules.
    """
    kids = [
        ("m1", "Alva", "Andersson", 9, False),
        ("m2", "Elias", "Berg", 11, True),
        ("m3", "Maja", "Carlsson", 13, False),
        ("m4", "Noah", "Dahl", 15, True),
    ]
    persons = [
        {
            "externalId": ext,
            "personnummer": _personnummer(date(today.year - age, 3, 14), 20 + i, male),
            "firstName": first,
            "lastName": last,
            "gender": "male" if male else "female",
            "sports": [{"sportId": 7, "isActive": True}],
        }
        for i, (ext, first, last, age, male) in enumerate(kids)
    ]
    persons.append(
        {
            "externalId": "coach1",
            "personnummer": _personnummer(date(today.year - 40, 6, 1), 71, False),
            "firstName": "Kim",
            "lastName": "Ek",
            "gender": "female",
            "sports": [{"sportId": 7, "isActive": True}],
        }
    )
    day = today - timedelta(days=1)
    activities = [
        {
            "activityId": "t1",
            "typeId": 1,
            "name": "Träning U13",
            "sportId": 7,
            "venueName": "Hallen",
            "startTime": f"{day}T17:00:00+01:00",
            "endTime": f"{day}T18:30:00+01:00",
            "participants": [{"personId": p} for p in ("m1", "m2", "m3", "m4")]
            + [{"personId": "coach1", "leader": True}],
        },
        {
            "activityId": "t2",
            "typeId": 1,
            "name": "Extrapass",
            "sportId": 7,
            "venueName": "Hallen",
            "startTime": f"{day}T19:00:00+01:00",
            "endTime": f"{day}T19:30:00+01:00",
            "participants": [{"personId": "m1"}, {"personId": "m2"}],
        },
    ]
    return persons, activities


def demo_person_change(persons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One person of the demo with a new last name: re-sent after an export, it is the whole delta."""
    changed = dict(persons[1])
    changed["lastName"] = "Bergström"
    return [changed]


def _load_local_settings() -> dict[str, str]:
    path = ROOT / "local.settings.json"
    if not path.exists():
        return {}
    values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    return {k: str(v) for k, v in values.items()}


def _orgnr_with_luhn(nine: str) -> str:
    digits = [int(d) for d in nine]
    total = sum((d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 0 else d for i, d in enumerate(digits))
    check = (10 - total % 10) % 10
    s = nine + str(check)
    return f"{s[:6]}-{s[6:]}"


class LocalRun:
    def __init__(
        self,
        *,
        ephemeral: bool = False,
        persist: bool = True,
        export_timer: float | None = None,
        state_dir: Path | None = None,
        ports: dict[str, int | None] | None = None,
    ) -> None:
        """``ports``: per service name of :data:`SERVICES`; missing or ``None`` → its default port,
        or a free one with ``ephemeral``; ``0`` → a free one. ``export_timer``: seconds between
        local export timer ticks, ``None`` = off."""
        self.ephemeral = ephemeral
        self.persist = persist
        self.export_timer = export_timer
        self.state = state_dir or ROOT / ".local"
        self.stop_event = threading.Event()
        self._stops: list[Callable[[], Any]] = []
        given = ports or {}
        unknown = set(given) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown service(s): {sorted(unknown)}")
        self.ports: dict[str, int] = {}
        for name, (_, default, _) in SERVICES.items():
            port = given.get(name)
            self.ports[name] = port if port is not None else (0 if ephemeral else default)

    def busy_ports(self) -> list[PortInUse]:
        """The fixed ports another process already listens on (checked before anything starts)."""
        return [
            PortInUse(port, service=SERVICES[name][0])
            for name, port in self.ports.items()
            if port and port_in_use(port)
        ]

    def reset_state(self) -> list[Path]:
        """Delete what this command keeps in the state folder (:data:`STATE_ENTRIES`); returns what went."""
        removed = []
        for entry in STATE_ENTRIES:
            path = self.state / entry
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            removed.append(path)
        return removed

    def _listen(self, name: str, start: Callable[[], T]) -> T:
        """Start one service; its port being taken becomes :class:`PortInUse` naming the service."""
        try:
            return start()
        except OSError as exc:
            if is_address_in_use(exc):
                raise PortInUse(self.ports[name], service=SERVICES[name][0]) from None
            raise

    def start(self) -> dict[str, Any]:
        """Start everything; on any failure, whatever was already started is stopped before the error."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> dict[str, Any]:
        from devtools.azurite import Azurite
        from devtools.nif_sandbox import NifSandbox
        from devtools.sftp_server import start_local

        self.state.mkdir(parents=True, exist_ok=True)
        azurite = Azurite(port=self.ports["azurite"], location=self.state / "azurite" if self.persist else None)
        self._stops.append(azurite.stop)  # before start(): a half-started node is stopped too
        self._listen("azurite", azurite.start)
        queues = Azurite(
            port=self.ports["queues"],
            location=self.state / "azurite-queues" if self.persist else None,
            service="queue",
        )
        self._stops.append(queues.stop)
        self._listen("queues", queues.start)
        sandbox = self._listen("sandbox", NifSandbox(port=self.ports["sandbox"]).start)
        self._stops.append(sandbox.stop)
        sftp_root = self.state / "sftp"
        sftp_root.mkdir(parents=True, exist_ok=True)
        sftp = self._listen(
            "sftp",
            lambda: start_local(
                sftp_root, port=self.ports["sftp"], username=DEMO_SFTP_USER, password=DEMO_SFTP_PASSWORD
            ),
        )
        self._stops.append(sftp.stop)
        from devtools.oidc_issuer import OidcIssuer

        issuer = OidcIssuer().start()  # loopback, a free port: tokens for test users and clubs (docs/security.md)
        self._stops.append(issuer.stop)

        defaults = {
            "AUTH_ISSUER": issuer.issuer,
            "AUTH_AUDIENCE": issuer.audience,
            "NIF_API_BASE_URL": sandbox.base_url,
            "NIF_SUBSCRIPTION_KEY": sandbox.subscription_key,
            "DATA_TABLES_CONNECTION": azurite.connection_string,
            "AzureWebJobsStorage": queues.connection_string,
            "DATA_TABLES_PREFIX": "local",
            "IDROTTONLINE_APPLICATION_ID": "idrettsbro-local",
            # a binding expression (%IDROTTONLINE_EXPORT_QUEUE%): the host needs it set, a default in code is not enough
            "IDROTTONLINE_EXPORT_QUEUE": "idrottonline-export",
        }
        configured = {**_load_local_settings(), **{k: v for k, v in os.environ.items()}}
        for key, value in defaults.items():
            # the started services' addresses always win over file defaults pointing at them
            if key in ("NIF_API_BASE_URL", "DATA_TABLES_CONNECTION", "AzureWebJobsStorage", "AUTH_ISSUER") or (
                key not in configured
            ):
                os.environ[key] = value
        for key, value in _load_local_settings().items():
            os.environ.setdefault(key, value)
        os.environ[DEMO_SFTP_SECRET.upper().replace("-", "_")] = DEMO_SFTP_PASSWORD

        from shared.lifecycle import reset_process_state

        reset_process_state()
        from devtools.host import LocalHost

        host = LocalHost()  # Microsoft's runtime indexes function_app.py, as in Azure
        for name, value in (("AUTH_FUNCTION_KEY", host.function_key), ("AUTH_MASTER_KEY", host.master_key)):
            if not os.environ.get(name):  # AUTH_MODE=tokens: the app accepts the host's keys, as back ends would
                os.environ[name] = value
        reset_process_state()
        server = self._listen("functions", lambda: host.serve(port=self.ports["functions"]))

        def stop_server() -> None:
            server.shutdown()
            server.server_close()

        self._stops.append(stop_server)
        base = f"http://127.0.0.1:{server.server_address[1]}"

        self._register_demo_club(host, sftp)
        from devtools import outbox_pump

        outbox_pump.run(sandbox.base_url, host, stop=self.stop_event)
        from devtools.queue_poller import pollers_for_app

        for poller in pollers_for_app(host.driver, max_polling_interval=1.0):
            self._stops.append(poller.stop)
            poller.start()
        if self.export_timer is not None:
            threading.Thread(
                target=self._timer_loop, args=(host, self.export_timer), name="local-export-timer", daemon=True
            ).start()

        today = date.today()
        request_file = self.state / "membership-request.json"
        request_file.write_text(json.dumps(_seed_request(today), indent=2, ensure_ascii=False), encoding="utf-8")
        persons, activities = demo_idrottonline(today)
        for name, data in (
            ("persons", persons),
            ("activities", activities),
            ("person-change", demo_person_change(persons)),
        ):
            (self.state / f"idrottonline-{name}.json").write_text(
                json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8"
            )
        info = {
            "api": f"{base}/api",
            "sandbox": sandbox.base_url,
            "sftpRoot": str(sftp_root),
            "sftpPort": sftp.port,
            "azurite": azurite.port,
            "queues": queues.port,
            "functionKey": host.function_key,
            "masterKey": host.master_key,
            "membershipRequest": str(request_file),
            "nifClub": NIF_DEMO_CLUB,
            "seClub": DEMO_CLUB_SE,
            "state": str(self.state),
            "exportTimer": self.export_timer,
            "issuer": issuer.issuer,
            "authMode": "tokens" if all(r.auth_level == "anonymous" for r in host.routes) else "keys",
        }
        self.info, self.host = info, host
        return info

    def _register_demo_club(self, host: Any, sftp: Any) -> None:
        body = {
            "country": "SE",
            "name": "Demo IF (local)",
            "enabled": True,
            "rfForeningsnummer": "12345",
            "organisationNumber": _orgnr_with_luhn("802000123"),
            "rfGuid": "6f1c1c7e-0a7e-4c39-9a55-6d1d3f9e0b11",
            "contactExport": False,
            "sftpHost": "127.0.0.1",
            "sftpPort": sftp.port,
            "sftpUsername": DEMO_SFTP_USER,
            "sftpHostKey": sftp.host_key_line,
            "sftpPasswordSecret": DEMO_SFTP_SECRET,
        }
        res = host.request("PUT", f"/api/clubs/{DEMO_CLUB_SE}", json_body=body, key="master")
        if res.status_code >= 300:
            raise RuntimeError(f"could not register the demo club: {res.status_code} {res.get_body()[:500]!r}")

    def _timer_loop(self, host: Any, seconds: float) -> None:
        """Tick the timer-triggered functions (the IdrottOnline export) through the host, as its
        scheduler would: ``host.invoke(name, timer=TimerRequest(...))``."""
        from azure.functions.timer import TimerRequest

        timers = host.function_of_type("timerTrigger")
        while not self.stop_event.wait(seconds):
            for info in timers:
                try:
                    host.invoke(info.name, **{info.trigger["name"]: TimerRequest(past_due=False)})
                except Exception:  # the real host logs and carries on too
                    log.exception("timer %s failed", info.name)

    def stop(self) -> None:
        self.stop_event.set()
        for stop in reversed(self._stops):
            try:
                stop()
            except Exception:  # stop the rest regardless
                log.exception("stopping a local service failed")
        self._stops.clear()


def busy_message(busy: list[PortInUse]) -> str:
    """What ``make run`` prints when ports are taken: one line per port, naming the service."""
    flags = {label: flag for label, _, flag in SERVICES.values()}
    lines = []
    for exc in busy:
        flag = flags.get(exc.service or "")
        move = f' (or ARGS="{flag} N" to move only this one)' if flag else ""
        lines.append(
            f"port {exc.port} ({exc.service}) is in use by another process; stop it or run "
            f"`make run ARGS=--ephemeral` for free ports{move}"
        )
    if len(busy) == len(SERVICES):
        lines.append(f"All {len(SERVICES)} are taken: is another `make run` still running?")
    return "\n".join(lines)


def _timer_line(seconds: float | None) -> str:
    if seconds is None:
        return (
            "Export timer      off (the nightly IDROTTONLINE_EXPORT_SCHEDULE does not run locally; "
            '`make run ARGS="--export-timer 60"` ticks it every 60 s)'
        )
    return f"Export timer      on: the export timer function runs every {seconds:g} s (--export-timer)"


def banner(info: dict[str, Any]) -> str:
    api, key, sandbox = info["api"], info["functionKey"], info["sandbox"]
    club, se, state = info["nifClub"], info["seClub"], info["state"]
    return f"""
idrettsbro is running locally (Ctrl-C stops everything)

  Functions (HTTP)  {api}          function key: {key}   admin (master) key: {info["masterKey"]}
  NIF sandbox       {sandbox}
  SFTP server       127.0.0.1:{info["sftpPort"]}   files land in {info["sftpRoot"]}/
  Azurite (tables)  127.0.0.1:{info["azurite"]}   (queues) 127.0.0.1:{info["queues"]}
  OpenAPI           {api}/openapi.json
  OIDC issuer       {info.get("issuer", "")}   (AUTH_MODE={info.get("authMode", "keys")}; bearer tokens are
                    accepted with `AUTH_MODE=tokens make run`, keys keep working)
  {_timer_line(info.get("exportTimer"))}
  State             {state}/   (`make run ARGS=--reset` starts the demo afresh)

Add a member with the seed's example request (dates moved into this year):
  curl -s -X POST {api}/nif/clubs/{club}/memberships -H "x-functions-key: {key}" \\
       -H "Content-Type: application/json" --data @{info["membershipRequest"]}
Complete the two-phase verification in the sandbox. The confirmation comes through the queue
(the outbox pump polls every second): the request reads "confirmed" a few seconds later, and the
member appears in the mirror with NIF's data for that personId (the request's person fields are ignored):
  curl -s -X POST {sandbox}/_sandbox/verifications/<traceId>/complete
  curl -s {api}/nif/clubs/{club}/membership-requests/<traceId> -H "x-functions-key: {key}"
  curl -s {api}/nif/clubs/{club}/members -H "x-functions-key: {key}"
IdrottOnline, demo club '{se}' (registered at start, uploads to the local SFTP server):
  curl -s -X PUT {api}/idrottonline/clubs/{se}/persons -H "x-functions-key: {key}" \\
       -H "Content-Type: application/json" --data @{state}/idrottonline-persons.json
  curl -s -X PUT {api}/idrottonline/clubs/{se}/activities -H "x-functions-key: {key}" \\
       -H "Content-Type: application/json" --data @{state}/idrottonline-activities.json
  curl -s {api}/idrottonline/clubs/{se}/export/preview -H "x-functions-key: {key}"
  curl -s -X POST {api}/idrottonline/clubs/{se}/export -H "x-functions-key: {info["masterKey"]}"
  ls {info["sftpRoot"]}/
Enqueue every club's export (the queue-triggered worker runs each one), and read the poison queue;
with --export-timer the timer fans out the same way and its roll call is .../export/nights/<YYYY-MM-DD>:
  curl -s -X POST {api}/idrottonline/export -H "x-functions-key: {info["masterKey"]}"
  curl -s {api}/idrottonline/export/poison -H "x-functions-key: {info["masterKey"]}"
A front end's call with a token alone (AUTH_MODE=tokens): a token for staff of club {club}, then the call:
  TOKEN=$(curl -s -X POST {info.get("issuer", "")}/token -d sub=staff-1 -d clubs={club} | python3 -c \\
       'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s {api}/nif/clubs/{club}/members -H "Authorization: Bearer $TOKEN"
  (roles=idrettsbro.readonly: read only; roles=idrettsbro.admin: admin routes; another club: 403)
Change one person; the next preview and export hold only that change:
  curl -s -X PUT {api}/idrottonline/clubs/{se}/persons -H "x-functions-key: {key}" \\
       -H "Content-Type: application/json" --data @{state}/idrottonline-person-change.json
  curl -s {api}/idrottonline/clubs/{se}/export/preview -H "x-functions-key: {key}"
"""


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a number of seconds above 0")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a port number (0 = a free one)")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m devtools.run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run idrettsbro locally: Azurite, the NIF sandbox, an SFTP server and the local Functions host\n"
            "on loopback, with the outbox pump and a demo Swedish club. `make run` runs this; options go\n"
            'through `make run ARGS="..."`.'
        ),
        epilog=(
            "examples:\n"
            "  make run ARGS=--ephemeral                     free ports (another process holds 7071, …)\n"
            "  make run ARGS=--reset                         start the demo afresh (empty tables, no files)\n"
            '  make run ARGS="--export-timer 60"             also run the export timer every 60 s\n'
        ),
    )
    p.add_argument(
        "--ephemeral",
        action="store_true",
        help="free ports instead of 7071/7072/2222/10002 (for ports not set with the options below)",
    )
    for name, (label, default, flag) in SERVICES.items():
        p.add_argument(
            flag,
            dest=f"{name}_port",
            type=_port,
            default=None,
            metavar="N",
            help=f"port of the {label} (default {default}; 0 = a free one)",
        )
    p.add_argument("--no-persist", action="store_true", help="in-memory Azurite (nothing kept in the state folder)")
    p.add_argument(
        "--export-timer",
        "--timer-seconds",
        dest="export_timer",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="run the export timer function every SECONDS (default: off; in Azure it runs on "
        "IDROTTONLINE_EXPORT_SCHEDULE, nightly)",
    )
    p.add_argument("--state-dir", type=Path, default=None, help="where state and example files go (default .local/)")
    p.add_argument(
        "--reset",
        action="store_true",
        help="delete the state kept in the state folder (Azurite tables, SFTP files, example files) "
        "before starting: the demo starts afresh",
    )
    p.add_argument("--ready-file", type=Path, default=None, help="write the URLs here as JSON when ready")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    from shared.logs import JsonFormatter, install_redaction

    install_redaction()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    for noisy in ("azure", "urllib3", "asyncssh", "paramiko", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    run = LocalRun(
        ephemeral=args.ephemeral,
        persist=not args.no_persist,
        export_timer=args.export_timer,
        state_dir=args.state_dir,
        ports={name: getattr(args, f"{name}_port") for name in SERVICES},
    )
    busy = run.busy_ports()  # before anything starts (and before --reset touches the state)
    if busy:
        print(busy_message(busy), file=sys.stderr, flush=True)
        return 1
    if args.reset:
        removed = run.reset_state()
        print(f"reset: removed {', '.join(p.name for p in removed) or 'nothing'} in {run.state}/", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        info = run.start()  # stops whatever it started before raising
    except PortInUse as exc:  # taken between the check above and the bind
        print(busy_message([exc]), file=sys.stderr, flush=True)
        return 1
    try:
        print(banner(info), flush=True)
        if args.ready_file:
            args.ready_file.write_text(json.dumps(info), encoding="utf-8")
        done.wait()
    finally:
        print("stopping…", flush=True)
        run.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
