"""Start and stop Azurite's Table service, or its Queue service (npm package in devtools/node_modules).

``Azurite()`` is the Table service; ``Azurite(service="queue")`` the Queue service (the export work
queue and its poison queue); each is its own node process on its own port.

In-memory for tests, on disk (``location``) for ``make run``. Always stopped with SIGINT: with
on-disk persistence a SIGTERM within seconds of a write loses that write (platform notes §1).
The node script is started directly, not through npx, so the PID is Azurite's own.

``start()`` returns only once *this* node process says it listens ("Azurite Table service
successfully started on …") and is still alive with the port answering. A port that answers is
not enough: with the port taken (another Azurite, anything else), node exits with
``EADDRINUSE`` while the other process answers the connect. That case raises
:class:`devtools.ports.PortInUse` with the tail of node's stderr; any other early exit raises
``RuntimeError`` with it. With ``port=0`` a free port is chosen, and chosen again (three tries)
if another process takes it before node binds it.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal, Self

from devtools.ports import PortInUse, free_port, wait_for_port

HERE = Path(__file__).resolve().parent
AZURITE_TABLE = HERE / "node_modules" / "azurite" / "dist" / "src" / "table" / "main.js"
AZURITE_QUEUE = HERE / "node_modules" / "azurite" / "dist" / "src" / "queue" / "main.js"
ACCOUNT = "devstoreaccount1"
# The public, well-known development key published in the Azurite README (not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# printed by table/main.js and queue/main.js once listen() succeeded
STARTED = {
    "table": "Azurite Table service successfully started on",
    "queue": "Azurite Queue service successfully listens on",
}
TAIL_LINES = 40
PORT_TRIES = 3


def connection_string(port: int | None, host: str = "127.0.0.1", *, queue_port: int | None = None) -> str:
    """The account's connection string with a TableEndpoint (``port``) and/or a QueueEndpoint."""
    text = f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
    if port:
        text += f"TableEndpoint=http://{host}:{port}/{ACCOUNT};"
    if queue_port:
        text += f"QueueEndpoint=http://{host}:{queue_port}/{ACCOUNT};"
    return text


class _Output:
    """Drains node's stdout and stderr in daemon threads (a full pipe would block Azurite),
    keeps their last lines and signals when the start line or the end of stdout arrives."""

    def __init__(self, proc: subprocess.Popen[bytes], started_line: str) -> None:
        self.started_line = started_line
        self.stdout: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.stderr: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.started = False
        self.event = threading.Event()  # set on the start line or when stdout closes
        assert proc.stdout is not None and proc.stderr is not None
        self._threads = [
            threading.Thread(
                target=self._drain, args=(proc.stdout, self.stdout, True), daemon=True, name="azurite-stdout"
            ),
            threading.Thread(
                target=self._drain, args=(proc.stderr, self.stderr, False), daemon=True, name="azurite-stderr"
            ),
        ]
        for t in self._threads:
            t.start()

    def _drain(self, stream: IO[bytes], lines: collections.deque[str], is_stdout: bool) -> None:
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode(errors="replace").rstrip()
                lines.append(line)
                if is_stdout and self.started_line in line:
                    self.started = True
                    self.event.set()
        finally:
            if is_stdout:
                self.event.set()
            stream.close()

    def join(self, timeout: float = 5.0) -> None:
        for t in self._threads:
            t.join(timeout)

    def tail(self) -> str:
        return "\n".join(self.stderr or self.stdout).strip()


@dataclass
class Azurite:
    port: int = 0
    location: Path | None = None  # None = in-memory
    host: str = "127.0.0.1"
    service: Literal["table", "queue"] = "table"
    proc: subprocess.Popen | None = field(default=None, repr=False)
    _output: _Output | None = field(default=None, repr=False)

    @property
    def connection_string(self) -> str:
        if self.service == "queue":
            return connection_string(None, self.host, queue_port=self.port)
        return connection_string(self.port, self.host)

    def stderr_tail(self) -> str:
        """The last lines node wrote to stderr (or stdout when stderr is empty)."""
        return self._output.tail() if self._output else ""

    def start(self, timeout: float = 30.0) -> Self:
        if not (AZURITE_QUEUE if self.service == "queue" else AZURITE_TABLE).exists():
            raise RuntimeError("Azurite is not installed: run `make install` (npm ci in devtools/)")
        chosen = not self.port
        for attempt in range(PORT_TRIES if chosen else 1):
            if chosen:
                self.port = free_port(self.host)
            try:
                return self._start_once(timeout)
            except PortInUse:
                if attempt == (PORT_TRIES if chosen else 1) - 1:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> Self:
        args = [
            "node",
            str(AZURITE_QUEUE if self.service == "queue" else AZURITE_TABLE),
            f"--{self.service}Host",
            self.host,
            f"--{self.service}Port",
            str(self.port),
            "--disableTelemetry",
            "--silent",
            "--skipApiVersionCheck",
        ]
        if self.location is None:
            args.append("--inMemoryPersistence")
        else:
            self.location.mkdir(parents=True, exist_ok=True)
            args += ["--location", str(self.location)]
        deadline = time.monotonic() + timeout
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        self.proc, self._output = proc, _Output(proc, STARTED[self.service])
        closed_or_started = self._output.event.wait(timeout)
        if self._output.started:
            # node's own listen() succeeded: the port is ours once it answers and node is still alive
            try:
                wait_for_port(self.port, self.host, max(deadline - time.monotonic(), 1.0))
            except TimeoutError:
                pass
            else:
                if proc.poll() is None:
                    return self
        elif closed_or_started:  # stdout closed without the start line: node is exiting
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:  # alive, but never said it listens (or does not answer)
            self.stop()
            raise RuntimeError(
                f"Azurite did not start listening on {self.host}:{self.port} "
                f"(waited {timeout} s): {self.stderr_tail() or 'no output'}"
            )
        self._output.join()
        tail, code = self.stderr_tail(), proc.returncode
        self.proc = None
        if "EADDRINUSE" in tail:
            raise PortInUse(self.port, self.host, service="Azurite", detail=tail.splitlines()[-1])
        raise RuntimeError(
            f"Azurite exited (code {code}) instead of listening on {self.host}:{self.port}: {tail or 'no output'}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._output is not None:
            self._output.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # python -m devtools.azurite [port]
    import sys

    az = Azurite(
        port=int(sys.argv[1]) if len(sys.argv) > 1 else 10002,
        location=Path(os.environ.get("AZURITE_LOCATION", ".local/azurite")),
    )
    try:
        az.start()
    except RuntimeError as exc:  # PortInUse too
        print(exc, file=sys.stderr)
        sys.exit(1)
    print(az.connection_string, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        az.stop()
