"""Settings are read lazily and validated; secrets come from Key Vault or the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.config import MissingSetting, Settings, get_settings
from shared.logs import redact
from shared.secrets import EnvSecretStore, KeyVaultSecretStore, SecretNotFound, env_name, get_secret_store


def test_defaults_without_environment(env) -> None:
    s = get_settings()
    assert s.NIF_API_VERSION == 1 and s.LOCAL_TIMEZONE == "Europe/Oslo" and s.NIF_TOKEN_MODE == "api"
    with pytest.raises(MissingSetting):
        s.nif_api_root()


def test_values_from_environment_and_secret_str(env) -> None:
    env.set(NIF_API_BASE_URL="https://gw.example/", NIF_API_VERSION="2", NIF_SUBSCRIPTION_KEY="sub-key-123456")
    s = get_settings()
    assert s.nif_api_root() == "https://gw.example/api/v2"
    assert "sub-key-123456" not in repr(s) and s.NIF_SUBSCRIPTION_KEY.get_secret_value() == "sub-key-123456"


def test_settings_are_cached_until_reset(env) -> None:
    env.set(LOCAL_TIMEZONE="Europe/Stockholm")
    first = get_settings()
    assert get_settings() is first and first.LOCAL_TIMEZONE == "Europe/Stockholm"


@pytest.mark.parametrize(
    "name,value",
    [
        ("NIF_TOKEN_MODE", "portal"),
        ("NIF_API_VERSION", "zero"),
        ("LOCAL_TIMEZONE", "Mars/Olympus_Mons"),
        ("LOCAL_TIMEZONE", "../etc"),
        ("DATA_TABLES_PREFIX", "1bad"),
        ("IDROTTONLINE_MAX_FILE_BYTES", "5"),
    ],
)
def test_invalid_values_are_refused(env, name: str, value: str) -> None:
    env.set(**{name: value})
    with pytest.raises(ValidationError):
        Settings()


def test_connection_and_endpoint_are_exclusive(env) -> None:
    env.set(DATA_TABLES_CONNECTION="UseDevelopmentStorage=true", DATA_TABLES_ENDPOINT="https://x")
    with pytest.raises(ValidationError):
        Settings()


def test_env_secret_store(env) -> None:
    assert env_name("sftp-password-club1") == "SFTP_PASSWORD_CLUB1"
    env.set(SFTP_PASSWORD_CLUB1="pw-from-env-42")
    store = get_secret_store()
    assert isinstance(store, EnvSecretStore)
    assert store.get("sftp-password-club1") == "pw-from-env-42"
    assert "pw-from-env-42" not in redact("login pw-from-env-42")  # registered with the redactor
    with pytest.raises(SecretNotFound):
        store.get("missing-secret")
    with pytest.raises(ValueError):
        store.get("../etc/passwd")


class _FakeSecretClient:
    def __init__(self) -> None:
        self.values = {"nif-token-19430": "kv-token-value-1"}
        self.calls = 0

    def get_secret(self, name: str):
        from azure.core.exceptions import ResourceNotFoundError

        self.calls += 1
        if name not in self.values:
            raise ResourceNotFoundError("nope")
        return type("S", (), {"value": self.values[name]})()


def test_key_vault_store_caches_and_maps_not_found(env) -> None:
    env.set(KEY_VAULT_URL="https://vault.example")
    store = get_secret_store()
    assert isinstance(store, KeyVaultSecretStore)
    fake = _FakeSecretClient()
    store._client = fake  # the SDK client is the edge; its behaviour is stubbed here
    assert store.get("nif-token-19430") == "kv-token-value-1"
    assert store.get("nif-token-19430") == "kv-token-value-1"
    assert fake.calls == 1
    with pytest.raises(SecretNotFound):
        store.get("nif-token-1")


def test_one_credential_with_timeouts(env) -> None:
    from shared.identity import get_credential

    env.set(STORAGE_TIMEOUT_SECONDS="7")
    cred = get_credential()
    assert get_credential() is cred
    mi = next(c for c in cred.credentials if type(c).__name__ == "ManagedIdentityCredential")
    # the managed identity's token requests (the path used in Azure) carry our timeouts
    config = mi._credential._client._pipeline._transport.connection_config
    assert (config.timeout, config.read_timeout) == (7.0, 7.0)


def test_process_wide_values_are_built_once_and_dropped_on_reset() -> None:
    import threading

    from shared.lifecycle import process_wide, reset_process_state

    built, closed = [], []

    def factory() -> object:
        built.append(object())
        return built[-1]

    get = process_wide(factory, close=closed.append)
    threads = [threading.Thread(target=get) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and get() is built[0]
    reset_process_state()
    assert closed == [built[0]]
    assert get() is built[1]
