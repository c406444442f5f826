"""Secrets: Key Vault in Azure, environment variables locally.

``get_secret_store().get("sftp-password-club1")`` reads Key Vault secret ``sftp-password-club1``
when ``KEY_VAULT_URL`` is set (cached 5 minutes, so a rotated secret is picked up without a
restart), otherwise the environment variable ``SFTP_PASSWORD_CLUB1``. Every value read is
registered with the log redactor.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any, Protocol

from shared import lifecycle
from shared.logs import register_secret

_NAME = re.compile(r"^[A-Za-z0-9-]{1,127}$")
CACHE_SECONDS = 300.0


class SecretNotFound(LookupError):
    """No secret of that name (or an empty one). Callers translate it into their own error
    (``MissingSetting``, ``SftpSecretMissing``); the map is in ``shared.problems``."""

    def __init__(self, name: str) -> None:
        super().__init__(f"secret not found: {name}")
        self.name = name


def env_name(secret_name: str) -> str:
    """``sftp-password-club1`` → ``SFTP_PASSWORD_CLUB1``."""
    return re.sub(r"[^A-Za-z0-9]", "_", secret_name).upper()


def validate_secret_name(name: str) -> str:
    """Key Vault secret names: 1-127 of letters, digits and dashes."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError("secret names are 1-127 letters, digits and dashes")
    return name


class SecretStore(Protocol):
    def get(self, name: str) -> str: ...


class EnvSecretStore:
    """Local development and tests: secrets are environment variables."""

    def get(self, name: str) -> str:
        value = os.environ.get(env_name(validate_secret_name(name)))
        if not value:
            raise SecretNotFound(name)
        register_secret(value)
        return value


class KeyVaultSecretStore:
    """Azure Key Vault through the managed identity (azure-identity, imported on first use)."""

    def __init__(self, vault_url: str, *, credential: Any = None, timeout: float = 10.0) -> None:
        self._vault_url = vault_url
        self._credential = credential
        self._timeout = timeout
        self._client: Any = None
        self._cache: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        if self._client is None:
            from azure.keyvault.secrets import SecretClient

            from shared.identity import get_credential

            self._client = SecretClient(
                self._vault_url,
                self._credential or get_credential(),
                connection_timeout=self._timeout,
                read_timeout=self._timeout,
                retry_total=2,
            )
        return self._client

    def get(self, name: str) -> str:
        validate_secret_name(name)
        now = time.monotonic()
        hit = self._cache.get(name)
        if hit and hit[0] > now:
            return hit[1]
        from azure.core.exceptions import ResourceNotFoundError

        try:
            value = self._get_client().get_secret(name).value
        except ResourceNotFoundError:
            raise SecretNotFound(name) from None
        if not value:
            raise SecretNotFound(name)
        register_secret(value)
        with self._lock:
            self._cache[name] = (now + CACHE_SECONDS, value)
        return value


_store: SecretStore | None = None


def get_secret_store() -> SecretStore:
    global _store
    if _store is None:
        from shared.config import get_settings

        url = get_settings().KEY_VAULT_URL
        _store = KeyVaultSecretStore(url) if url else EnvSecretStore()
    return _store


@lifecycle.on_reset
def _reset() -> None:
    global _store
    _store = None
