"""OpenSSH ``sshd`` on loopback for ONE CI smoke test (platform-notes §5). Needs root.

A second, foreground sshd with its own config, host key, pid file and authorized-keys file; one
throw-away system user with public-key auth only, chrooted (``internal-sftp``) to
``/srv/idrettsbro-sshd-<id>/chroot`` with a user-owned ``upload/`` folder. Gotchas handled:
absolute path ``/usr/sbin/sshd``, ``/run/sshd`` created, chroot outside ``/tmp`` (every component
root-owned, not group/world writable), ``usermod -p '*'`` (``useradd`` leaves the account locked,
which sshd refuses with ``UsePAM no``), readiness by the pid file (a port probe logs "invalid
protocol identifier"). ``stop()`` kills sshd by its PID, deletes the user and the folder.

    from devtools.sshd import OpenSshd, sshd_unavailable_reason
    if (why := sshd_unavailable_reason()): pytest.skip(why)
    with OpenSshd(client_public_key="ssh-ed25519 AAAA...") as srv:
        srv.port, srv.username, srv.host_key_line, srv.upload_dir (local path), "upload" (remote)
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Self

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
REMOTE_DIR = "upload"


def sshd_unavailable_reason() -> str | None:
    """Why the OpenSSH smoke test cannot run here, or None when it can."""
    if os.environ.get("IDRETTSBRO_SSHD_TESTS") != "1":
        return "OpenSSH sshd smoke test runs only with IDRETTSBRO_SSHD_TESTS=1 (set by .ci/run)"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "OpenSSH sshd smoke test needs root (useradd, chroot)"
    for tool in (SSHD, SSH_KEYGEN, "/usr/sbin/useradd", "/usr/sbin/usermod", "/usr/sbin/userdel"):
        if not Path(tool).exists():
            return f"{tool} missing (apt-get install -y --no-install-recommends openssh-server)"
    return None


class OpenSshd:
    def __init__(self, client_public_key: str, *, port: int | None = None) -> None:
        from devtools.ports import free_port

        self.client_public_key = client_public_key.strip()
        self.port = port or free_port()
        tag = secrets.token_hex(3)
        self.username = f"idbsftp{tag}"
        self.base = Path(f"/srv/idrettsbro-sshd-{tag}")
        self.etc = self.base / "etc"
        self.chroot = self.base / "chroot"
        self.upload_dir = self.chroot / REMOTE_DIR
        self.pid_file = self.etc / "sshd.pid"
        self.log_file = self.etc / "sshd.log"
        self.host_key_path = self.etc / "ssh_host_ed25519_key"
        self._proc: subprocess.Popen | None = None
        self._user_created = False

    @property
    def host_key_line(self) -> str:
        key_type, b64 = Path(str(self.host_key_path) + ".pub").read_text().split()[:2]
        return f"{key_type} {b64}"

    def _run(self, *args: str) -> None:
        subprocess.run(list(args), check=True, capture_output=True, timeout=30)

    def start(self) -> Self:
        reason = sshd_unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        Path("/srv").mkdir(mode=0o755, exist_ok=True)
        for d in (self.base, self.etc, self.chroot):
            d.mkdir(mode=0o755)
            os.chown(d, 0, 0)
            os.chmod(d, 0o755)
        self._run(
            "/usr/sbin/useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/",
            "--shell",
            "/usr/sbin/nologin",
            self.username,
        )
        self._user_created = True
        self._run("/usr/sbin/usermod", "-p", "*", self.username)
        import pwd

        pw = pwd.getpwnam(self.username)
        self.upload_dir.mkdir(mode=0o755)
        os.chown(self.upload_dir, pw.pw_uid, pw.pw_gid)
        self._run(SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key_path))
        auth = self.etc / "authorized_keys"
        auth.write_text(self.client_public_key + "\n")
        os.chmod(auth, 0o644)
        config = self.etc / "sshd_config"
        config.write_text(
            f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key_path}
PidFile {self.pid_file}
AuthorizedKeysFile {auth}
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
AllowUsers {self.username}
AllowAgentForwarding no
AllowTcpForwarding no
X11Forwarding no
PermitTTY no
LogLevel VERBOSE
Subsystem sftp internal-sftp
Match User {self.username}
    ChrootDirectory {self.chroot}
    ForceCommand internal-sftp
    AllowTcpForwarding no
    X11Forwarding no
    PermitTTY no
"""
        )
        check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True, timeout=30, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"sshd -t rejected the config: {check.stderr.strip()}")
        log = self.log_file.open("wb")
        self._proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not self.pid_file.exists():
            if self._proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log_file.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("sshd did not write its pid file within 10 s")
            time.sleep(0.01)

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._proc = None
        if self._user_created:
            subprocess.run(["/usr/sbin/userdel", self.username], capture_output=True, timeout=30, check=False)
            self._user_created = False
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
