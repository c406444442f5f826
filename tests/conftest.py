"""Shared fixtures: a real Azurite, per-test table isolation, the local host, the log guard.

See docs/architecture.md ("Tests") for how to use them.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.lifecycle import reset_process_state
from shared.logs import install_redaction

install_redaction()

# Settings that must not leak in from the developer's shell into tests.
_APP_ENV = re.compile(r"^(NIF_|DATA_TABLES_|IDROTTONLINE_|SFTP_|KEY_VAULT_URL$|LOCAL_TIMEZONE$|EXPORT_LOCK)")
for _name in list(os.environ):
    if _APP_ENV.match(_name):
        del os.environ[_name]


# --- log guard ---------------------------------------------------------------------------
class SensitiveValues:
    """Values that must never appear in a log line; fixtures add the secrets they create."""

    JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
    # Date-shaped digits bounded by non-alphanumerics (so hex request ids and UUIDs don't match).
    _B, _E = r"(?<![0-9A-Za-z])", r"(?![0-9A-Za-z])"
    SE_PNR = re.compile(_B + r"(?:19|20)?\d{2}(?:0[1-9]|1[0-2])(?:[0-3]\d|[6-9]\d)(?:[-+]\d{4}|\d{4})" + _E)
    NO_FNR = re.compile(_B + r"(?:0[1-9]|[12]\d|3[01]|[4-6]\d|7[01])(?:0[1-9]|1[0-2]|[45]\d)\d{7}" + _E)

    def __init__(self) -> None:
        self.values: set[str] = set()

    def add(self, *values: str | None) -> None:
        for v in values:
            if v and len(v) >= 6:
                self.values.add(v)

    def findings(self, text: str) -> list[str]:
        found = [f"value {v[:3]}…" for v in self.values if v in text]
        for name, pattern in (("JWT", self.JWT), ("personnummer", self.SE_PNR), ("fødselsnummer", self.NO_FNR)):
            if pattern.search(text):
                found.append(name)
        return found


SENSITIVE = SensitiveValues()


class _CaptureAll(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_capture = _CaptureAll()
logging.getLogger().addHandler(_capture)
logging.getLogger().setLevel(logging.DEBUG)
for _noisy in ("urllib3", "asyncio", "paramiko.transport", "asyncssh", "hpack", "httpcore", "filelock"):
    logging.getLogger(_noisy).setLevel(logging.INFO)
# The SDK's per-request header dump: noise, already redacted by the SDK itself, and its random request
# ids used to trip the personnummer guard. Quietened here once for every test module.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)


def _render(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), record.exc_text or ""]
    fields = getattr(record, "fields", None)
    if fields:
        parts.append(repr(fields))
    return "\n".join(parts)


@pytest.fixture
def sensitive() -> SensitiveValues:
    """Register values (secrets, personal numbers) that this test's logs must not contain."""
    return SENSITIVE


@pytest.fixture(autouse=True)
def _log_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if any log line emitted during it carries a secret or an identity number."""
    start = len(_capture.records)
    yield
    records, _capture.records = _capture.records[start:], _capture.records[:start]
    if request.node.get_closest_marker("allow_sensitive_logs"):
        return
    problems = []
    for rec in records:
        hits = SENSITIVE.findings(_render(rec))
        if hits:
            problems.append(f"{rec.name}:{rec.levelname}: {', '.join(hits)}")
    if problems:
        pytest.fail("sensitive data reached the logs:\n" + "\n".join(problems[:20]), pytrace=False)


@pytest.fixture(autouse=True)
def _reset_state() -> Iterator[None]:
    yield
    reset_process_state()


# --- environment -------------------------------------------------------------------------
class Env:
    def __init__(self, mp: pytest.MonkeyPatch) -> None:
        self._mp = mp

    def set(self, **values: Any) -> None:
        for k, v in values.items():
            if v is None:
                self._mp.delenv(k, raising=False)
            else:
                self._mp.setenv(k, str(v))
        reset_process_state()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Env:
    """``env.set(NAME=value, …)``: environment for this test only; process state reset."""
    return Env(monkeypatch)


# --- Azurite -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """A real Azurite Table service for the whole session; the value is its connection string."""
    from devtools.azurite import Azurite

    az = Azurite().start()
    try:
        yield az.connection_string
    finally:
        az.stop()


@pytest.fixture
def storage(azurite: str, env: Env):
    """Settings pointed at Azurite with a table prefix unique to this test; yields the TableStore."""
    from shared.tables import get_table_store

    env.set(DATA_TABLES_CONNECTION=azurite, DATA_TABLES_PREFIX="t" + uuid.uuid4().hex[:12])
    yield get_table_store()


@pytest.fixture(scope="session")
def azurite_queues() -> Iterator[str]:
    """A real Azurite Queue service for the whole session; the value is its connection string."""
    from devtools.azurite import Azurite

    az = Azurite(service="queue").start()
    try:
        yield az.connection_string
    finally:
        az.stop()


@pytest.fixture
def queues(azurite_queues: str, env: Env):
    """Settings pointed at Azurite's queues with an export queue unique to this test; yields the
    QueueStore (``queues.queue(get_settings().IDROTTONLINE_EXPORT_QUEUE)`` is this test's queue)."""
    from shared.queues import get_queue_store

    env.set(AzureWebJobsStorage=azurite_queues, IDROTTONLINE_EXPORT_QUEUE="t" + uuid.uuid4().hex[:12])
    yield get_queue_store()


@pytest.fixture
def rf_sftp(tmp_path, storage, env, sensitive, monkeypatch):
    """The real SFTP server as RF's, with the password the test clubs' secret names (kept out of
    logs), and no waits between upload retries; tables on Azurite."""
    from shared import sftp
    from tests.idrott_support import SFTP_PASSWORD, sftp_server

    env.set(SFTP_PASSWORD_TEST=SFTP_PASSWORD)
    sensitive.add(SFTP_PASSWORD)
    monkeypatch.setattr(sftp, "RETRY_BACKOFF_SECONDS", (0.0,))
    with sftp_server(tmp_path / "sftp") as server:
        yield server


# --- the app through the local host ------------------------------------------------------
@pytest.fixture(scope="session")
def app_host():
    """``devtools.host.LocalHost`` over Microsoft's runtime, which indexes ``function_app`` once."""
    from devtools.host import LocalHost

    host = LocalHost()
    SENSITIVE.add(host.function_key, host.master_key)
    return host
