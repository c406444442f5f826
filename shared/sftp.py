"""SFTP upload adapter (paramiko). Import lazily: ``from shared import sftp`` inside a function.

Security and robustness rules (docs/idrottonline.md, platform-notes §5 and §8):
- The server's host key is pinned from the club registry (``"<type> <base64>"``). Only that key is
  loaded into the client's host-key store and the policy is ``RejectPolicy``: an unknown or a
  changed key is refused with :class:`HostKeyRejected`. Never ``AutoAddPolicy``.
- Password or private key from :mod:`shared.secrets` by secret *name*; ``allow_agent=False``,
  ``look_for_keys=False``.
- connect / banner / auth / channel timeouts, SSH keepalive, an SFTP channel timeout and an
  overall deadline (a watchdog closes the transport when it passes).
- The TCP socket is opened here with ``TCP_NODELAY`` (paramiko sets no socket options). With
  Nagle's algorithm on, a small SSH packet sent right after another waits for the peer's delayed
  ACK (40 ms on Linux, up to 200 ms on Windows), and a login exchanges several: measured against
  the local server, a connection and login took 62 ms with Nagle and 6 ms without.
- Each file goes to ``<name>.<n>.part`` in the target folder (``n``: the connection's number in
  this call, so a dead connection's late writes can never reach a retry's file), its size is
  checked with ``stat``, then it is ``posix_rename``d to ``<name>`` (atomic replace) and reported
  to ``on_uploaded`` at once. The temp file is removed on failure when the connection still allows
  it. Files are uploaded in the order given; after a transient failure the client reconnects and
  continues with the file that failed (bounded attempts, backoff).
- ``stale`` (a predicate on names in the target folder): on the first connection, before any
  upload, the matching files (the caller's own leftover ``.part`` files) are removed. The report's
  ``clean`` says that no file of the caller's but the uploaded ones is left behind, so a caller
  that records it can leave ``stale`` out next time (the export does: a listing per run grows
  with the folder).
- :class:`Connecting` opens the first connection ahead, in a thread of its own, while the caller
  still prepares the files; ``upload_files(..., opened=...)`` uses it as its first attempt. A
  server that takes a second to log in (RF's is reached over the internet) then no longer adds
  that second to the caller's own work: an export's storage reads, XML and XSD check run during
  the login. The overall deadline counts from the start of the connection.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import errno
import io
import logging
import posixpath
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

log = logging.getLogger(__name__)

#: Sleep before attempt 2, 3, ... (seconds). Tests patch this to zeros.
RETRY_BACKOFF_SECONDS: tuple[float, ...] = (2.0, 5.0, 10.0)
DEFAULT_ATTEMPTS = 3
KEEPALIVE_SECONDS = 15
PART_SUFFIX = ".part"


class SftpError(Exception):
    """Base class of every way an upload fails. ``transient`` says whether a later attempt may
    succeed. What each class becomes (an export run's ``errorCode``): ``shared.problems``."""

    transient = False


class HostKeyRejected(SftpError):
    """The server presented a host key other than the pinned one (or none is pinned)."""


class SftpAuthError(SftpError):
    """Authentication failed (wrong password or key, or the secret is missing)."""


class SftpSecretMissing(SftpAuthError):
    """The password or private key secret the club names cannot be read (or none is named)."""


class SftpRefused(SftpError):
    """The server refused a file operation (permission denied, no such folder)."""


class SftpTransientError(SftpError):
    """The connection failed or dropped (or a size check failed): reconnect and try again."""

    transient = True


class SftpDeadlineExceeded(SftpError):
    """The overall deadline passed before every file was uploaded."""


class _CallerFailed(Exception):
    """``on_uploaded`` raised: handed back to the caller as it was, never retried or reclassified."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class InvalidHostKey(SftpError, ValueError):
    """A pinned host key string that does not parse as ``<type> <base64>``.

    An :class:`SftpError` (an upload with it fails, as ``upload_files`` promises, with an
    ``SftpError``) and a ``ValueError`` (the club registry's validators reject the value with it).
    """


@dataclass(frozen=True)
class SftpTarget:
    """Where and how to upload. Holds secret *names*, never secret values."""

    host: str
    port: int
    username: str
    host_key: str
    password_secret: str | None = None
    private_key_secret: str | None = None
    remote_dir: str = "."
    disabled_algorithms: dict[str, list[str]] | None = None


@dataclass
class UploadedFile:
    name: str
    size: int
    attempts: int = 1


@dataclass
class UploadReport:
    files: list[UploadedFile] = field(default_factory=list)
    connections: int = 0
    removed_stale: list[str] = field(default_factory=list)
    #: the stale files were looked for (or none were asked for: ``stale`` None)
    stale_checked: bool = True
    #: stale or temp files of ours this call found or left and could not remove
    unremoved: int = 0

    @property
    def clean(self) -> bool:
        """No file of ours but the uploaded ones is left in the folder, as far as this call knows
        (the caller may skip the next call's search for stale files)."""
        return self.stale_checked and self.unremoved == 0


def parse_host_key(line: str) -> paramiko.PKey:
    """``"<type> <base64>"`` (an optional trailing comment is ignored) → paramiko key."""
    parts = (line or "").strip().split()
    if len(parts) < 2:
        raise InvalidHostKey("host key must read '<type> <base64>'")
    key_type, b64 = parts[0], parts[1]
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidHostKey("host key base64 does not decode") from exc
    try:
        key = paramiko.PKey.from_type_string(key_type, blob)
    except Exception as exc:
        raise InvalidHostKey(f"host key of type {key_type!r} does not parse: {exc}") from exc
    if key.get_name() != key_type and not key_type.startswith(key.get_name()):
        # e.g. blob of one type labelled as another
        raise InvalidHostKey(f"host key blob is {key.get_name()}, not {key_type}")
    return key


def fingerprint(key: paramiko.PKey) -> str:
    return key.fingerprint  # "SHA256:..." (public information)


def load_private_key(text: str) -> paramiko.PKey:
    """Parse an OpenSSH/PEM private key (Ed25519, ECDSA or RSA) from secret text."""
    errors = []
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except Exception as exc:  # noqa: BLE001
            errors.append(type(exc).__name__)
    raise SftpAuthError("the private key secret does not hold a supported unencrypted private key")


def _credentials(target: SftpTarget) -> dict:
    from shared.secrets import SecretNotFound, get_secret_store

    store = get_secret_store()
    creds: dict = {}
    try:
        if target.private_key_secret:
            creds["pkey"] = load_private_key(store.get(target.private_key_secret))
        if target.password_secret:
            creds["password"] = store.get(target.password_secret)
    except SecretNotFound as exc:
        raise SftpSecretMissing(f"SFTP secret not found: {exc}") from exc
    if not creds:
        raise SftpSecretMissing("no SFTP password or private key secret configured for this club")
    return creds


def _known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class _Session:
    """One SSH connection + SFTP channel, closed by a watchdog at the deadline."""

    def __init__(self, target: SftpTarget, creds: dict, deadline: float, settings) -> None:
        self.target = target
        self.client = paramiko.SSHClient()
        self.client.get_host_keys().add(
            _known_hosts_name(target.host, target.port), *_typed(parse_host_key(target.host_key))
        )
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SftpDeadlineExceeded("SFTP deadline passed before connecting")
        self._watchdog = threading.Timer(remaining, self._expire)
        self._watchdog.daemon = True
        self.expired = False
        self._watchdog.start()
        connect_timeout = min(settings.SFTP_CONNECT_TIMEOUT_SECONDS, remaining)
        sock: socket.socket | None = None
        try:
            sock = _open_socket(target.host, target.port, connect_timeout)
            self.client.connect(
                target.host,
                port=target.port,
                username=target.username,
                timeout=connect_timeout,
                banner_timeout=connect_timeout,
                auth_timeout=connect_timeout,
                channel_timeout=connect_timeout,
                allow_agent=False,
                look_for_keys=False,
                disabled_algorithms=target.disabled_algorithms,
                sock=sock,
                **creds,
            )
            transport = self.client.get_transport()
            assert transport is not None
            transport.set_keepalive(KEEPALIVE_SECONDS)
            self.sftp = self.client.open_sftp()
            self.sftp.get_channel().settimeout(settings.SFTP_OPERATION_TIMEOUT_SECONDS)
        except BaseException:
            self.close()
            if sock is not None:
                sock.close()  # the transport closes it too, when it got that far
            raise

    def _expire(self) -> None:
        self.expired = True
        with contextlib.suppress(Exception):
            self.client.close()

    def close(self) -> None:
        self._watchdog.cancel()
        with contextlib.suppress(Exception):
            self.client.close()


class Connecting:
    """The first SFTP connection of an upload, opened ahead in a thread of its own (module
    docstring). Pass it to :func:`upload_files` as ``opened``, or :meth:`close` it (always safe,
    also after the upload; a connection still being opened is closed as soon as it is open)."""

    def __init__(self, target: SftpTarget, *, settings=None, deadline_seconds: float | None = None) -> None:
        if settings is None:
            from shared.config import get_settings

            settings = get_settings()
        self.target = target
        self.deadline = time.monotonic() + (deadline_seconds or settings.SFTP_DEADLINE_SECONDS)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._session: _Session | None = None
        self._error: BaseException | None = None
        self._closed = False
        context = contextvars.copy_context()  # the caller's log fields
        threading.Thread(
            target=context.run, args=(self._open, settings), name="sftp-connect-ahead", daemon=True
        ).start()

    def _open(self, settings) -> None:
        session: _Session | None = None
        error: BaseException | None = None
        try:
            parse_host_key(self.target.host_key)
            session = _Session(self.target, _credentials(self.target), self.deadline, settings)
        except BaseException as exc:  # noqa: BLE001 - handed to the upload, which classifies it
            error = exc
        with self._lock:
            self._error = error
            if session is not None and self._closed:
                session.close()
            else:
                self._session = session
            self._done.set()

    def take(self) -> _Session:
        """The open session (waits for it), handed over to the caller; raises what opening it raised."""
        if not self._done.wait(max(self.deadline - time.monotonic(), 0.0) + 1.0):
            self.close()
            raise SftpDeadlineExceeded("SFTP deadline passed while connecting")
        with self._lock:
            session, self._session = self._session, None
            if self._error is not None:
                raise self._error
            if session is None:
                raise SftpError("the connection opened ahead was closed or already used")
            return session

    def close(self) -> None:
        """Close the connection unless an upload took it."""
        with self._lock:
            self._closed = True
            session, self._session = self._session, None
        if session is not None:
            session.close()


def _open_socket(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to the server, with Nagle's algorithm off (module docstring)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _typed(key: paramiko.PKey) -> tuple[str, paramiko.PKey]:
    return key.get_name(), key


def _classify(exc: BaseException, target: SftpTarget) -> SftpError:
    """Map paramiko/socket errors onto our permanent/transient classes."""
    if isinstance(exc, SftpError):
        return exc
    where = f"{target.host}:{target.port}"
    if isinstance(exc, paramiko.BadHostKeyException):
        return HostKeyRejected(
            f"SFTP server {where} presented host key {exc.key.get_name()} {fingerprint(exc.key)}, "
            f"but the club registry pins {exc.expected_key.get_name()} {fingerprint(exc.expected_key)}; "
            "refusing to connect (update the pinned key only after verifying it with RF)"
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return SftpAuthError(f"SFTP authentication failed for user {target.username!r} at {where}")
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
        return HostKeyRejected(f"SFTP server {where} host key is not the pinned one; refusing to connect")
    if isinstance(exc, (PermissionError,)) or (
        isinstance(exc, OSError)
        and getattr(exc, "errno", None) in (errno.EACCES, errno.ENOENT)
        and not isinstance(exc, (ConnectionError, socket.timeout))
    ):
        return SftpRefused(f"SFTP server {where} refused the operation: {exc}")
    if isinstance(exc, (OSError, EOFError, paramiko.SSHException, socket.timeout)):
        return SftpTransientError(f"SFTP transfer to {where} failed: {type(exc).__name__}: {exc}")
    return SftpError(f"SFTP transfer to {where} failed: {type(exc).__name__}: {exc}")


def _remote_path(remote_dir: str, name: str) -> str:
    if not remote_dir or remote_dir == ".":
        return name
    return posixpath.join(remote_dir, name)


def _remove_stale(session: _Session, stale: Callable[[str], bool], report: UploadReport) -> None:
    """Remove the files of the target folder that ``stale`` names, into ``report``; best effort
    (never raises for a listing or removal the server refuses: the upload goes on)."""
    folder = session.target.remote_dir or "."
    try:
        names = session.sftp.listdir(folder)
    except (OSError, paramiko.SSHException) as exc:
        log.warning("SFTP could not list %s to remove stale files: %s", folder, type(exc).__name__)
        return
    report.stale_checked = True
    for name in sorted(names):
        if not stale(name):
            continue
        try:
            session.sftp.remove(_remote_path(session.target.remote_dir, name))
        except (OSError, paramiko.SSHException) as exc:
            log.warning("SFTP could not remove stale %s: %s", name, type(exc).__name__)
            report.unremoved += 1
            continue
        report.removed_stale.append(name)
        log.info("SFTP removed stale %s (left by an earlier upload)", name)


def _part_path(remote_dir: str, name: str, connection: int) -> str:
    return f"{_remote_path(remote_dir, name)}.{connection}{PART_SUFFIX}"


def _upload_one(session: _Session, local: Path, name: str, connection: int = 1) -> int:
    sftp = session.sftp
    final = _remote_path(session.target.remote_dir, name)
    tmp = _part_path(session.target.remote_dir, name, connection)
    size = local.stat().st_size
    renamed = False
    try:
        with local.open("rb") as fh:
            sftp.putfo(fh, tmp, file_size=size, confirm=False)
        remote_size = sftp.stat(tmp).st_size
        if remote_size != size:
            raise SftpTransientError(f"size check failed for {name}: sent {size}, server has {remote_size}")
        sftp.posix_rename(tmp, final)
        renamed = True
    finally:
        if not renamed:
            with contextlib.suppress(Exception):  # connection may be gone; next run overwrites it
                sftp.remove(tmp)
    return size


def upload_files(
    target: SftpTarget,
    files: Sequence[tuple[Path, str]],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    deadline_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    settings=None,
    on_uploaded: Callable[[UploadedFile], None] | None = None,
    stale: Callable[[str], bool] | None = None,
    opened: Connecting | None = None,
) -> UploadReport:
    """Upload ``(local_path, remote_name)`` pairs in order; raise :class:`SftpError` on failure.

    Files already renamed to their final name stay there when a later file fails (IdrottOnline
    processes them in order and re-sending the same ids is harmless). ``on_uploaded`` is called
    for each file as soon as it is under its final name (so the caller's record matches the server
    even when a later file fails); an exception it raises stops the upload. ``stale``: see the
    module docstring. ``opened``: the first attempt's connection, opened ahead
    (:class:`Connecting`, for the same target); the deadline is then the one it started.
    """
    if settings is None:
        from shared.config import get_settings

        settings = get_settings()
    parse_host_key(target.host_key)  # refuse early with a clear error
    creds = _credentials(target)
    if opened is not None:
        deadline = opened.deadline
    else:
        deadline = time.monotonic() + (deadline_seconds or settings.SFTP_DEADLINE_SECONDS)
    report = UploadReport(stale_checked=stale is None)
    index = 0
    attempt = 0
    last: SftpError | None = None
    per_file_attempts = 0
    orphans: list[str] = []
    while index < len(files):
        attempt += 1
        if attempt > attempts:
            break
        if attempt > 1:
            pause = (
                RETRY_BACKOFF_SECONDS[min(attempt - 2, len(RETRY_BACKOFF_SECONDS) - 1)]
                if RETRY_BACKOFF_SECONDS
                else 0.0
            )
            if time.monotonic() + pause >= deadline:
                raise SftpDeadlineExceeded(f"SFTP deadline reached after {attempt - 1} attempt(s): {last}")
            log.warning("SFTP attempt %d of %d to %s:%s after: %s", attempt, attempts, target.host, target.port, last)
            sleep(pause)
        session = None
        try:
            if opened is not None and attempt == 1:
                session = opened.take()
            else:
                session = _Session(target, creds, deadline, settings)
            report.connections += 1
            if stale is not None and report.connections == 1:
                _remove_stale(session, stale, report)
            while orphans:  # temp files an earlier connection of this call could not remove
                orphan = orphans.pop()
                try:
                    session.sftp.remove(orphan)
                    log.info("SFTP removed %s left by the dropped connection", posixpath.basename(orphan))
                except FileNotFoundError:
                    pass  # the dropped connection never created it
                except (OSError, paramiko.SSHException):
                    report.unremoved += 1
            while index < len(files):
                local, name = files[index]
                per_file_attempts += 1
                size = _upload_one(session, Path(local), name, report.connections)
                done = UploadedFile(name=name, size=size, attempts=per_file_attempts)
                report.files.append(done)
                per_file_attempts = 0
                log.info("SFTP uploaded %s (%d bytes) to %s:%s", name, size, target.host, target.port)
                index += 1
                if on_uploaded is not None:
                    try:
                        on_uploaded(done)
                    except Exception as exc:
                        raise _CallerFailed(exc) from exc
        except BaseException as exc:
            expired = session is not None and session.expired
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if isinstance(exc, _CallerFailed):
                raise exc.error from None  # the caller's own failure, not an SFTP one
            if session is not None and index < len(files):
                orphans.append(_part_path(target.remote_dir, files[index][1], report.connections))
            if expired or time.monotonic() >= deadline:
                raise SftpDeadlineExceeded(
                    f"SFTP deadline of {deadline_seconds or settings.SFTP_DEADLINE_SECONDS:g}s passed "
                    f"with {index} of {len(files)} file(s) uploaded"
                ) from exc
            last = _classify(exc, target)
            if not last.transient:
                raise last from exc
        finally:
            if session is not None:
                session.close()
    if index < len(files):
        assert last is not None
        raise SftpTransientError(
            f"SFTP upload gave up after {attempts} attempt(s) with {index} of {len(files)} file(s) uploaded: {last}"
        )
    return report
