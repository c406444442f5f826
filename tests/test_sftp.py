"""shared.sftp against the real asyncssh server (devtools.sftp_server) and, in CI, OpenSSH sshd."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from devtools.sftp_server import SftpServer
from shared import sftp
from tests.support import wait_for

PASSWORD = "s3cret-Sftp-pass"


def _ed25519_pair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization as s
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.OpenSSH, s.NoEncryption()).decode()
    public = key.public_key().public_bytes(s.Encoding.OpenSSH, s.PublicFormat.OpenSSH).decode()
    return private, public


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setattr(sftp, "RETRY_BACKOFF_SECONDS", (0.0,))
    monkeypatch.setenv("SFTP_PASSWORD_TEST", PASSWORD)


@pytest.fixture
def server(tmp_path):
    with SftpServer(tmp_path / "remote", username="club1", password=PASSWORD) as srv:
        yield srv


def _target(srv: SftpServer, **kw) -> sftp.SftpTarget:
    base = {
        "host": "127.0.0.1",
        "port": srv.port,
        "username": srv.username,
        "host_key": srv.host_key_line,
        "password_secret": "sftp-password-test",
    }
    base.update(kw)
    return sftp.SftpTarget(**base)


def _files(tmp_path: Path, n: int = 2, size: int = 100_000) -> list[tuple[Path, str]]:
    out = []
    for i in range(1, n + 1):
        p = tmp_path / f"local{i}.xml"
        p.write_bytes(bytes([48 + i]) * size)
        out.append((p, f"app_123_20260101T020000Z_{i}of{n}.xml"))
    return out


def test_upload_in_order_with_rename(server, tmp_path):
    files = _files(tmp_path, 3)
    report = sftp.upload_files(_target(server), files)
    assert [f.name for f in report.files] == [name for _, name in files]
    assert report.connections == 1
    remote = sorted(p.name for p in server.root.iterdir())
    assert remote == sorted(name for _, name in files)  # no .part left behind
    for local, name in files:
        assert (server.root / name).read_bytes() == local.read_bytes()


def test_upload_replaces_existing_file(server, tmp_path):
    files = _files(tmp_path, 1)
    (server.root / files[0][1]).write_bytes(b"old")
    sftp.upload_files(_target(server), files)
    assert (server.root / files[0][1]).read_bytes() == files[0][0].read_bytes()


def test_remote_dir_and_private_key_auth(tmp_path, monkeypatch):
    private, public = _ed25519_pair()
    monkeypatch.setenv("SFTP_KEY_TEST", private)
    with SftpServer(tmp_path / "remote", username="club1", client_keys=[public]) as srv:
        (srv.root / "inbox").mkdir()
        target = _target(srv, password_secret=None, private_key_secret="sftp-key-test", remote_dir="inbox")
        sftp.upload_files(target, _files(tmp_path, 1))
        assert [p.name for p in (srv.root / "inbox").iterdir()] == ["app_123_20260101T020000Z_1of1.xml"]


def test_pinned_key_mismatch_is_refused(server, tmp_path):
    other = SftpServer(tmp_path / "other").host_key_line  # never started: just a different key
    with pytest.raises(sftp.HostKeyRejected) as err:
        sftp.upload_files(_target(server, host_key=other), _files(tmp_path, 1))
    assert "pins" in str(err.value) and "refusing" in str(err.value)
    assert list(server.root.iterdir()) == []


def test_key_of_other_type_is_refused(server, tmp_path):
    # an ecdsa pin while the server only offers ed25519: paramiko must not fall back to trusting it
    import paramiko

    ecdsa = paramiko.ECDSAKey.generate()
    with pytest.raises(sftp.HostKeyRejected):
        sftp.upload_files(_target(server, host_key=f"{ecdsa.get_name()} {ecdsa.get_base64()}"), _files(tmp_path, 1))
    assert list(server.root.iterdir()) == []


def test_invalid_pinned_key_string(server, tmp_path):
    with pytest.raises(sftp.InvalidHostKey):
        sftp.upload_files(_target(server, host_key="ssh-ed25519 not-base64!"), _files(tmp_path, 1))


def test_wrong_password_is_permanent(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SFTP_PASSWORD_TEST", "wrong-password-123")
    with pytest.raises(sftp.SftpAuthError):
        sftp.upload_files(_target(server), _files(tmp_path, 1))
    assert server.connections == 1  # not retried


def test_missing_secret(server, tmp_path):
    with pytest.raises(sftp.SftpAuthError, match="not found"):
        sftp.upload_files(_target(server, password_secret="sftp-password-nope"), _files(tmp_path, 1))


def test_single_drop_is_retried_and_completes(server, tmp_path):
    files = _files(tmp_path, 2)
    server.drop_connection_after(50_000, times=1, path_filter=lambda p: "2of2" in p)
    report = sftp.upload_files(_target(server), files)
    assert report.connections == 2
    assert [f.attempts for f in report.files] == [1, 2]
    assert sorted(p.name for p in server.root.iterdir()) == sorted(n for _, n in files)


def test_drop_every_attempt_leaves_no_final_file(server, tmp_path):
    files = _files(tmp_path, 1)
    server.drop_connection_after(50_000, times=100)
    with pytest.raises(sftp.SftpTransientError, match="gave up after 3"):
        sftp.upload_files(_target(server), files)
    assert not (server.root / files[0][1]).exists()
    assert server.connections == 3


def test_connection_refused_is_transient(tmp_path):
    from devtools.ports import free_port

    srv = SftpServer(tmp_path / "r")
    target = sftp.SftpTarget("127.0.0.1", free_port(), "u", srv.host_key_line, password_secret="sftp-password-test")
    with pytest.raises(sftp.SftpTransientError):
        sftp.upload_files(target, _files(tmp_path, 1), attempts=2)


def test_session_socket_has_nagle_off(server, monkeypatch):
    """The SSH socket is opened with TCP_NODELAY (paramiko sets none): with Nagle on, each small
    login packet sent behind another waits for the server's delayed ACK."""
    import socket

    from shared.config import get_settings

    creds = sftp._credentials(_target(server))
    session = sftp._Session(_target(server), creds, time.monotonic() + 30, get_settings())
    try:
        transport = session.client.get_transport()
        assert transport is not None and transport.is_authenticated()
        assert transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert session.sftp.listdir(".") == []
    finally:
        session.close()
    assert not transport.is_active()


def test_deadline(server, tmp_path):
    with pytest.raises(sftp.SftpDeadlineExceeded):
        sftp.upload_files(_target(server), _files(tmp_path, 1), deadline_seconds=1e-9)


def test_exec_is_refused(server):
    import paramiko

    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[127.0.0.1]:{server.port}", *sftp._typed(sftp.parse_host_key(server.host_key_line)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", server.port, server.username, PASSWORD, allow_agent=False, look_for_keys=False)
    try:
        with pytest.raises(paramiko.SSHException):
            client.exec_command("ls", timeout=5)
    finally:
        client.close()


def test_chroot_keeps_paths_inside(server, tmp_path):
    files = [(tmp_path / "x.xml", "../../escape.xml")]
    files[0][0].write_bytes(b"x")
    sftp.upload_files(_target(server), files)
    assert (server.root / "escape.xml").exists()
    assert not (server.root.parent.parent / "escape.xml").exists()


def test_password_never_logged(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server.drop_connection_after(10, times=1)
    sftp.upload_files(_target(server), _files(tmp_path, 1))
    assert PASSWORD not in caplog.text


def test_server_stops_cleanly(tmp_path, recwarn):
    srv = SftpServer(tmp_path / "r", password=PASSWORD).start()
    sftp.upload_files(_target(srv), _files(tmp_path, 1))
    srv.stop()
    srv.stop()  # idempotent
    assert not [w for w in recwarn if "destroyed" in str(w.message)]


def test_parse_host_key_variants(server):
    key = sftp.parse_host_key(server.host_key_line + " comment@host")
    assert key.get_name() == "ssh-ed25519"
    for bad in ("", "ssh-ed25519", "ssh-ed25519 AAAA", "ssh-rsa " + server.host_key_line.split()[1]):
        with pytest.raises(sftp.InvalidHostKey):
            sftp.parse_host_key(bad)


# ---- OpenSSH sshd smoke test (CI: IDRETTSBRO_SSHD_TESTS=1, root, openssh-server) -------------
@pytest.mark.sshd
def test_openssh_sshd_smoke(tmp_path, monkeypatch):
    from devtools.sshd import REMOTE_DIR, OpenSshd, sshd_unavailable_reason

    reason = sshd_unavailable_reason()
    if reason:
        pytest.skip(reason)
    private, public = _ed25519_pair()
    monkeypatch.setenv("SFTP_KEY_SSHD", private)
    with OpenSshd(public) as srv:
        target = sftp.SftpTarget(
            "127.0.0.1",
            srv.port,
            srv.username,
            srv.host_key_line,
            private_key_secret="sftp-key-sshd",
            remote_dir=REMOTE_DIR,
        )
        files = _files(tmp_path, 2)
        sftp.upload_files(target, files)
        assert sorted(os.listdir(srv.upload_dir)) == sorted(n for _, n in files)
        sftp.upload_files(target, files[:1])  # posix_rename over an existing file
        assert (srv.upload_dir / files[0][1]).read_bytes() == files[0][0].read_bytes()
        wrong = SftpServer(tmp_path / "k").host_key_line
        with pytest.raises(sftp.HostKeyRejected):
            sftp.upload_files(
                sftp.SftpTarget("127.0.0.1", srv.port, srv.username, wrong, private_key_secret="sftp-key-sshd"), files
            )


# ---- a connection opened ahead (shared.sftp.Connecting) ---------------------------------------------
def test_a_connection_opened_ahead_is_the_uploads_only_connection(server, tmp_path):
    """The upload uses the connection opened ahead: one connection in all, whose login began
    before the files were handed over, and none left open afterwards."""
    server.auth_latency = 0.3
    opened = sftp.Connecting(_target(server))
    assert wait_for(lambda: server.connections == 1)  # logging in while the caller prepares
    files = _files(tmp_path, 2)
    report = sftp.upload_files(_target(server), files, opened=opened)
    assert [f.name for f in report.files] == [name for _, name in files]
    assert (report.connections, server.connections) == (1, 1)
    opened.close()  # harmless after the upload
    assert wait_for(lambda: not server._conns)
    assert sorted(p.name for p in server.root.iterdir()) == sorted(name for _, name in files)


def test_a_connection_opened_ahead_and_not_used_is_closed(server):
    """Closed while still logging in, or once open: the server is left with no session."""
    server.auth_latency = 0.5
    early = sftp.Connecting(_target(server))
    assert wait_for(lambda: server.connections == 1)
    early.close()  # still in the login: closed as soon as it is open
    later = sftp.Connecting(_target(server))
    later._done.wait(10)
    later.close()
    assert wait_for(lambda: not server._conns)
    assert list(server.root.iterdir()) == []
    with pytest.raises(sftp.SftpError):
        later.take()  # a closed connection is never handed out


def test_a_connection_opened_ahead_that_fails_is_the_uploads_first_attempt(server, tmp_path):
    """A refused host key is the upload's error at once (not retried); a connection that dropped
    while the caller prepared is retried on a new one."""
    files = _files(tmp_path, 1)
    wrong = _target(server, host_key=SftpServer(tmp_path / "other").host_key_line)
    with pytest.raises(sftp.HostKeyRejected):
        sftp.upload_files(wrong, files, opened=sftp.Connecting(wrong))
    assert server.connections == 1
    dropped = sftp.Connecting(_target(server))
    assert dropped._done.wait(10) and dropped._session is not None
    dropped._session.client.close()  # the server or the network dropped it meanwhile
    report = sftp.upload_files(_target(server), files, opened=dropped)
    assert [f.name for f in report.files] == [files[0][1]]
    assert (report.connections, server.connections) == (2, 3)


def test_the_report_says_whether_the_folder_was_left_clean(server, tmp_path, monkeypatch):
    """``clean``: nothing of the caller's but the uploaded files is left, as far as the call knows:
    true after a stale search, after no search asked for, and after a dropped connection whose temp
    file the retry removed; false when a stale file could not be removed."""
    files = _files(tmp_path, 1)
    stale_name = "app_123_old.xml.1.part"
    assert sftp.upload_files(_target(server), files, stale=lambda n: n == stale_name).clean
    assert sftp.upload_files(_target(server), files).clean
    server.drop_connection_after(50_000, times=1)
    dropped = sftp.upload_files(_target(server), files)
    assert dropped.connections == 2 and dropped.clean
    (server.root / stale_name).write_bytes(b"x")
    real_remove = sftp.paramiko.SFTPClient.remove

    def refuse(self, path):
        if path.endswith(stale_name):
            raise PermissionError(13, "Permission denied")
        return real_remove(self, path)

    monkeypatch.setattr(sftp.paramiko.SFTPClient, "remove", refuse)
    report = sftp.upload_files(_target(server), files, stale=lambda n: n == stale_name)
    assert report.files and not report.clean and report.unremoved == 1
