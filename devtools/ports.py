"""Loopback port helpers shared by the local services."""

from __future__ import annotations

import errno
import socket
import time


class PortInUse(RuntimeError):
    """Another process listens on a port one of our local services needs.

    ``service`` names what wanted the port ("local Functions host", "Azurite", …); ``detail`` is
    what the failing service said (e.g. the tail of Azurite's stderr with ``EADDRINUSE``).
    """

    def __init__(self, port: int, host: str = "127.0.0.1", *, service: str | None = None, detail: str = "") -> None:
        self.port, self.host, self.service, self.detail = port, host, service, detail
        what = f"port {port} ({service})" if service else f"port {port}"
        super().__init__(f"{what} on {host} is in use by another process" + (f": {detail}" if detail else ""))


def is_address_in_use(exc: BaseException) -> bool:
    """True for the ``OSError`` a ``bind``/``listen`` raises when the address is taken."""
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when another socket listens on ``host:port``, so a server of ours could not bind it.

    Binds with ``SO_REUSEADDR`` (as our servers and Azurite's node do), so connections of an
    earlier run still in TIME_WAIT do not count; a listening socket always does (Linux refuses the
    bind, also for a listener on the wildcard address).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if is_address_in_use(exc):
                return True
            raise
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 20.0) -> None:
    """Poll a TCP connect until it succeeds or ``timeout`` passes (then TimeoutError)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)
