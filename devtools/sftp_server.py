"""In-process SFTP server on loopback (asyncssh), for tests and ``make run``.

Never imported by deployed code. One user, public-key and/or password auth, chrooted to a folder,
exec/shell/scp refused, a fresh Ed25519 host key per start, port 0 (the OS picks a free port).
The asyncssh event loop runs in a daemon thread, so synchronous code (paramiko, the export) can
talk to it from the test thread.

    from devtools.sftp_server import SftpServer
    with SftpServer(root, username="club", password="pw") as srv:
        srv.port, srv.known_hosts_line, srv.host_key_line      # "ssh-ed25519 AAAA..."
        srv.drop_connection_after(bytes_written=4096)          # fault hook (one shot)
        srv.opened                                             # every path a client opened, in order

Command line (``make run``)::

    python -m devtools.sftp_server --root .local/sftp [--port 2222] [--user demo --password pw]

Files land under ``<root>/`` exactly as uploaded (the export writes to
``IDROTTONLINE_REMOTE_DIR`` which is ``.`` by default, i.e. straight into the root).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self

import asyncssh

log = logging.getLogger("devtools.sftp_server")

DEFAULT_USER = "idrettsbro"


class _FaultPlan:
    """One-shot faults the tests arm: drop the TCP connection once N bytes of a file are written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.drop_after_bytes: int | None = None
        self.remaining = 0
        self.path_filter: Callable[[str], bool] | None = None
        self.triggered = 0

    def arm(self, after: int, times: int, path_filter: Callable[[str], bool] | None) -> None:
        with self._lock:
            self.drop_after_bytes, self.remaining, self.path_filter = after, times, path_filter

    def should_drop(self, path: str, written: int) -> bool:
        with self._lock:
            if self.drop_after_bytes is None or self.remaining <= 0:
                return False
            if self.path_filter is not None and not self.path_filter(path):
                return False
            if written < self.drop_after_bytes:
                return False
            self.remaining -= 1
            self.triggered += 1
            if self.remaining <= 0:
                self.drop_after_bytes = None
            return True


class SftpServer:
    """Start with ``start()`` (or a ``with`` block); ``stop()`` shuts down cleanly."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        username: str = DEFAULT_USER,
        password: str | None = None,
        client_keys: list[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """``client_keys``: authorised public keys as OpenSSH lines ("ssh-ed25519 AAAA...")."""
        self.root = Path(root).resolve()
        self.username = username
        self.password = password
        self.host = host
        self._requested_port = port
        self._authorized: set[bytes] = set()
        for line in client_keys or []:
            self.add_client_key(line)
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.faults = _FaultPlan()
        #: Seconds each authentication takes (RF's server is reached over the internet): the capacity bench.
        self.auth_latency = 0.0
        self.port: int = 0
        self.connections = 0
        #: Paths (as the client sent them) of every file opened, in order: which temp names an upload used.
        self.opened: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: Any = None
        self._conns: set[asyncssh.SSHServerConnection] = set()

    # ---- configuration ---------------------------------------------------------------------
    def add_client_key(self, public_key_line: str) -> None:
        self._authorized.add(asyncssh.import_public_key(public_key_line).public_data)

    def drop_connection_after(
        self, bytes_written: int = 1, *, times: int = 1, path_filter: Callable[[str], bool] | None = None
    ) -> None:
        """Abort the TCP connection as soon as a file has ``bytes_written`` bytes (``times`` uploads)."""
        self.faults.arm(bytes_written, times, path_filter)

    @property
    def host_key_line(self) -> str:
        """``ssh-ed25519 AAAA...`` (what the club registry pins)."""
        key_type, b64 = self.host_key.export_public_key("openssh").decode().split()[:2]
        return f"{key_type} {b64}"

    @property
    def known_hosts_line(self) -> str:
        host = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{host} {self.host_key_line}"

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        loop = asyncio.new_event_loop()
        self._loop = loop
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                errors.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="sftp-server", daemon=True)
        self._thread.start()
        started.wait(10)
        if errors:  # e.g. the port is taken (OSError EADDRINUSE): leave no loop or thread behind
            self._thread.join(10)
            self._loop = None
            loop.close()
            raise errors[0]
        log.info("SFTP server listening on %s:%s, root %s", self.host, self.port, self.root)
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        self._loop = None
        if loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                fut.result(10)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                if self._thread is not None:
                    self._thread.join(10)
        loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- asyncssh plumbing -------------------------------------------------------------------
    async def _listen(self) -> None:
        outer = self

        class _Server(asyncssh.SSHServer):
            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                self._conn = conn
                outer._conns.add(conn)
                outer.connections += 1

            def connection_lost(self, exc: Exception | None) -> None:
                outer._conns.discard(self._conn)

            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return outer.password is not None

            async def validate_password(self, username: str, password: str) -> bool:
                if outer.auth_latency:
                    await asyncio.sleep(outer.auth_latency)
                return username == outer.username and outer.password is not None and password == outer.password

            def public_key_auth_supported(self) -> bool:
                return bool(outer._authorized)

            def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
                return username == outer.username and key.public_data in outer._authorized

        class _Sftp(asyncssh.SFTPServer):
            def __init__(self, chan: asyncssh.SSHServerChannel) -> None:
                super().__init__(chan, chroot=str(outer.root).encode())
                self._written: dict[int, int] = {}
                self._paths: dict[int, str] = {}

            def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
                file_obj = super().open(path, pflags, attrs)
                outer.opened.append(os.fsdecode(path))
                self._paths[id(file_obj)] = os.fsdecode(path)
                self._written[id(file_obj)] = 0
                return file_obj

            # asyncssh types this MaybeAwait[int]; the base result (sync for local files) passes through.
            def write(self, file_obj: object, offset: int, data: bytes) -> int | Awaitable[int]:
                key = id(file_obj)
                self._written[key] = self._written.get(key, 0) + len(data)
                result = super().write(file_obj, offset, data)
                if outer.faults.should_drop(self._paths.get(key, ""), self._written[key]):
                    log.info("fault hook: dropping connection during upload of %s", self._paths.get(key))
                    self.connection.abort()
                return result

            def close(self, file_obj: object) -> None:
                self._written.pop(id(file_obj), None)
                self._paths.pop(id(file_obj), None)
                super().close(file_obj)

        self._listener = await asyncssh.create_server(
            _Server,
            self.host,
            self._requested_port,
            server_host_keys=[self.host_key],
            sftp_factory=_Sftp,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_pty=False,
            # no process_factory / session_factory: shell and exec requests are refused
        )
        self.port = self._listener.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
        for conn in list(self._conns):
            conn.abort()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.sleep(0)


def start_local(
    root_dir: str | os.PathLike[str], *, port: int = 0, username: str = "demo", password: str = "demo"
) -> SftpServer:
    """Start a server for ``make run``: files land in ``root_dir`` (e.g. ``.local/sftp/``).

    The caller registers a demo SE club with ``sftp_host=127.0.0.1``, ``sftp_port=server.port``,
    ``sftp_username=server.username``, ``host_key=server.host_key_line`` and puts the password in
    the environment variable its ``sftp_password_secret`` names.
    """
    return SftpServer(root_dir, username=username, password=password, port=port).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local SFTP server (asyncssh) for idrettsbro.")
    parser.add_argument("--root", required=True, help="folder the SFTP user is chrooted to")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="demo")
    parser.add_argument("--password", default="demo")
    parser.add_argument(
        "--authorized-key", action="append", default=[], help="OpenSSH public key line allowed to log in (repeatable)"
    )
    parser.add_argument(
        "--auth-latency", type=float, default=0.0, help="seconds each password authentication takes (a remote server)"
    )
    parser.add_argument(
        "--log-level", default="INFO", help="logging level (a benchmark passes WARNING: a line per login costs CPU)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    srv = SftpServer(
        args.root, username=args.user, password=args.password, client_keys=args.authorized_key, port=args.port
    )
    srv.auth_latency = args.auth_latency
    srv.start()
    print(f"port={srv.port}", flush=True)
    print(f"host_key={srv.host_key_line}", flush=True)
    print(f"known_hosts={srv.known_hosts_line}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
