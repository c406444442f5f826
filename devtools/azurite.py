"""Start and stop Azurite's Table service (npm package in devtools/node_modules).

In-memory for tests, on disk (``location``) for ``make run``. Always stopped with SIGINT: with
on-disk persistence a SIGTERM within seconds of a write loses that write (platform notes §1).
The node script is started directly, not through npx, so the PID is Azurite's own.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from devtools.ports import free_port, wait_for_port

HERE = Path(__file__).resolve().parent
AZURITE_TABLE = HERE / "node_modules" / "azurite" / "dist" / "src" / "table" / "main.js"
ACCOUNT = "devstoreaccount1"
# The public, well-known development key published in the Azurite README (not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(port: int, host: str = "127.0.0.1") -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"TableEndpoint=http://{host}:{port}/{ACCOUNT};"
    )


@dataclass
class Azurite:
    port: int = 0
    location: Path | None = None  # None = in-memory
    host: str = "127.0.0.1"
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def connection_string(self) -> str:
        return connection_string(self.port, self.host)

    def start(self, timeout: float = 30.0) -> "Azurite":
        if not AZURITE_TABLE.exists():
            raise RuntimeError("Azurite is not installed: run `make node` (npm install in devtools/)")
        if not self.port:
            self.port = free_port(self.host)
        args = ["node", str(AZURITE_TABLE), "--tableHost", self.host, "--tablePort", str(self.port),
                "--disableTelemetry", "--silent", "--skipApiVersionCheck"]
        if self.location is None:
            args.append("--inMemoryPersistence")
        else:
            self.location.mkdir(parents=True, exist_ok=True)
            args += ["--location", str(self.location)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        try:
            wait_for_port(self.port, self.host, timeout)
        except TimeoutError:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"Azurite did not start: {err.strip()}") from None
        return self

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()

    def __enter__(self) -> "Azurite":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # python -m devtools.azurite [port]
    import sys
    import time

    az = Azurite(port=int(sys.argv[1]) if len(sys.argv) > 1 else 10002,
                 location=Path(os.environ.get("AZURITE_LOCATION", ".local/azurite"))).start()
    print(az.connection_string, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        az.stop()
