"""One list of settings: shared.config.Settings (+ BINDING_SETTINGS + the triggers' %NAME% and
connection= settings) against the Bicep app settings and local.settings.json.example.

The names the code reads are collected dynamically (Settings.model_fields, the functions' source
parsed with ast), so a field added to Settings fails here until it is provisioned in both places.
"""

from __future__ import annotations

import json
import re

import pytest

from devtools import infra_check as ic
from devtools.infra_check import FUNCTIONAPP_BICEP, LOCAL_SETTINGS_EXAMPLE, MAIN_BICEP

# Platform/host settings the code never reads; the only names allowed beyond the code's list.
PLATFORM_AZURE = {
    "AzureWebJobsStorage__blobServiceUri": "host storage, identity-based",
    "AzureWebJobsStorage__queueServiceUri": "host storage, identity-based (also the export queue's endpoint)",
    "AzureWebJobsStorage__tableServiceUri": "host storage, identity-based",
    "AzureWebJobsStorage__credential": "host storage, identity-based (managedidentity)",
    "AzureWebJobsStorage__clientId": "host storage, the user-assigned identity",
    "AZURE_CLIENT_ID": "DefaultAzureCredential picks the user-assigned identity",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "telemetry target",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "telemetry with Entra ID (local auth disabled)",
    "PYTHON_THREADPOOL_THREAD_COUNT": "the Python worker's thread pool for sync functions",
}
PLATFORM_LOCAL = {
    "FUNCTIONS_WORKER_RUNTIME": "Core Tools: the language worker",
    "AzureWebJobsFeatureFlags": "Core Tools: host feature flags, if ever needed",
}
# Code settings deliberately NOT provisioned in Azure, with the reason.
NOT_IN_AZURE = {
    "AzureWebJobsStorage": "the connection string form (local); in Azure the identity-based "
    "AzureWebJobsStorage__* settings satisfy the same connection (checked as a connection below)",
    "DATA_TABLES_CONNECTION": "Azure uses DATA_TABLES_ENDPOINT with the managed identity; a connection string "
    "needs the storage account key, and shared-key access is disabled",
}
# Code settings deliberately NOT in local.settings.json.example, with the reason.
NOT_LOCAL = {
    "AzureWebJobsStorage__queueServiceUri": "locally the queues are Azurite's, through AzureWebJobsStorage",
}
KEY_VAULT_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\(VaultName=\$\{keyVaultName\};SecretName=([^;/)]+)\)$")


def code_settings() -> dict[str, str]:
    """Every app setting name the code needs → where it comes from (for the failure message)."""
    names = {**ic.settings_env_names(), **ic.binding_settings()}
    expressions, connections = ic.trigger_settings()
    for name, origin in expressions.items():
        names.setdefault(name, origin)
    for name, origin in connections.items():
        names.setdefault(name, origin)
    return names


def _connections() -> dict[str, str]:
    return ic.trigger_settings()[1]


def _missing(required: dict[str, str], provided: set[str]) -> list[str]:
    connections = _connections()
    out = []
    for name, origin in sorted(required.items()):
        ok = ic.connection_satisfied(name, provided) if name in connections else name in provided
        if not ok:
            out.append(f"{name} (from {origin})")
    return out


def _extra(provided: set[str], allowed: set[str]) -> list[str]:
    connections = _connections()
    return sorted(
        name for name in provided if name not in allowed and not any(name.startswith(f"{c}__") for c in connections)
    )


@pytest.fixture(scope="module")
def local_values() -> dict[str, str]:
    doc = json.loads(LOCAL_SETTINGS_EXAMPLE.read_text())
    assert doc.get("IsEncrypted") is False
    assert all(isinstance(v, str) for v in doc["Values"].values()), "local.settings values must be strings"
    return doc["Values"]


def test_the_code_declares_settings():
    names = code_settings()
    assert "NIF_API_BASE_URL" in names and "NifServiceBus" in names, sorted(names)


def test_every_code_setting_is_in_bicep():
    provided = set(ic.app_settings())
    connections = _connections()
    required = {k: v for k, v in code_settings().items() if k not in NOT_IN_AZURE or k in connections}
    missing = _missing(required, provided)
    assert not missing, "app settings missing from infra/main.bicep (var appSettings): " + ", ".join(missing)


def test_bicep_has_no_setting_the_code_never_reads():
    provided = set(ic.app_settings())
    extra = _extra(provided, set(code_settings()) | set(PLATFORM_AZURE))
    assert not extra, f"app settings in Bicep that no code reads (remove, or add to Settings): {extra}"
    unexpected = sorted(set(NOT_IN_AZURE) & provided)
    assert not unexpected, f"settings listed as not-in-Azure are provisioned anyway: {unexpected}"


def test_not_in_azure_exceptions_are_real_settings():
    stale = sorted(set(NOT_IN_AZURE) - set(code_settings()))
    assert not stale, f"NOT_IN_AZURE names no setting the code reads any more: {stale}"


def test_every_code_setting_is_in_local_settings_example(local_values):
    missing = _missing({k: v for k, v in code_settings().items() if k not in NOT_LOCAL}, set(local_values))
    assert not missing, "settings missing from local.settings.json.example: " + ", ".join(missing)


def test_local_settings_example_has_nothing_extra(local_values):
    extra = _extra(set(local_values), set(code_settings()) | set(PLATFORM_LOCAL))
    assert not extra, f"local.settings.json.example carries names no code reads: {extra}"
    assert local_values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert local_values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"


def test_local_settings_example_values_load(local_values, monkeypatch):
    """The example's values are valid Settings (types, bounds, one storage target)."""
    from shared.config import Settings

    for name in ic.settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in local_values.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert s.NIF_API_BASE_URL == "http://127.0.0.1:7072"
    assert s.DATA_TABLES_CONNECTION is not None and "devstoreaccount1" in s.DATA_TABLES_CONNECTION.get_secret_value()
    assert s.DATA_TABLES_ENDPOINT is None and s.KEY_VAULT_URL is None


def _bicep_literal_values() -> dict[str, str]:
    """Bicep app settings whose value is a literal or a parameter default (expressions skipped)."""
    out = {}
    for name, raw in ic.variable(MAIN_BICEP, "appSettings").items():
        if isinstance(raw, dict) and raw.get("function", {}).get("type") == "string":
            raw = raw["function"]["parameters"]["value_to_convert"]  # string(intParam)
        value = ic.resolve(MAIN_BICEP, raw)
        if isinstance(value, (ic.Identifier, dict)):
            continue
        if isinstance(value, str) and "${" in value:
            continue  # interpolation (Key Vault references are checked separately)
        out[name] = str(value)
    return out


def test_bicep_values_are_valid_settings(monkeypatch):
    """Literal values and parameter defaults in main.bicep load into Settings."""
    from shared.config import Settings

    for name in ic.settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in _bicep_literal_values().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATA_TABLES_ENDPOINT", "https://example.table.core.windows.net/")
    settings = Settings()  # raises ValidationError on any invalid literal
    assert settings.DATA_TABLES_ENDPOINT == "https://example.table.core.windows.net/"


def test_bicep_defaults_match_code_defaults(monkeypatch):
    """main.bicep's literal values equal the Settings defaults, so code and template do not drift.

    Per-environment deviations belong in the .bicepparam files, not in main.bicep's defaults."""
    from shared.config import Settings

    for name in ic.settings_env_names():
        monkeypatch.delenv(name, raising=False)
    defaults = Settings()
    literal = _bicep_literal_values()
    field_of = {env: origin.split(".", 1)[1] for env, origin in ic.settings_env_names().items()}
    drift = []
    for name, value in sorted(literal.items()):
        if name not in field_of:
            continue
        monkeypatch.setenv(name, value)
        provisioned = getattr(Settings(), field_of[name])
        monkeypatch.delenv(name)
        default = getattr(defaults, field_of[name])
        if default is not None and provisioned != default:
            drift.append(f"{name}: Bicep {value!r} vs code default {default!r}")
    assert not drift, "main.bicep values differ from shared.config defaults: " + "; ".join(drift)


def test_secret_settings_are_key_vault_references():
    """Every SecretStr field and every connection-string trigger setting is a Key Vault reference."""
    from shared.config import Settings

    settings = ic.app_settings()
    secret_names = {name for name, f in Settings.model_fields.items() if "SecretStr" in repr(f.annotation)}
    secret_names |= {c for c in _connections() if c in settings}  # plain (non-identity) connection strings
    secret_names -= set(NOT_IN_AZURE)
    assert secret_names, "expected at least one secret setting"
    bad = [
        n
        for n in sorted(secret_names)
        if not (isinstance(settings.get(n), str) and KEY_VAULT_REFERENCE.match(settings[n]))
    ]
    assert not bad, (
        f"secret settings must be versionless @Microsoft.KeyVault(VaultName=...;SecretName=...) references: {bad}"
    )


def test_nif_service_bus_is_a_key_vault_reference_not_an_identity_connection():
    settings = ic.app_settings()
    assert KEY_VAULT_REFERENCE.match(settings["NifServiceBus"])
    assert not [n for n in settings if n.startswith("NifServiceBus__")], "NIF's namespace: connection string only"


def test_key_vault_references_name_declared_secrets():
    secret_names = ic.variable(MAIN_BICEP, "secretNames")
    referenced = set()
    for raw in ic.variable(MAIN_BICEP, "appSettings").values():
        if isinstance(raw, str) and raw.startswith("@Microsoft.KeyVault("):
            match = KEY_VAULT_REFERENCE.match(raw)
            assert match, raw
            ref = match.group(1)
            assert ref.startswith("${secretNames.") and ref.endswith("}"), f"use var secretNames: {raw}"
            key = ref[len("${secretNames.") : -1]
            assert key in secret_names, f"{raw}: secretNames has no {key}"
            assert re.fullmatch(r"[a-z0-9-]{1,127}", secret_names[key]), secret_names[key]
            referenced.add(key)
    assert referenced == set(secret_names), f"declared but unused secret names: {set(secret_names) - referenced}"


def test_platform_settings_are_the_allow_list():
    platform = set(ic.variable(FUNCTIONAPP_BICEP, "platformSettings"))
    assert platform == set(PLATFORM_AZURE), (
        f"platformSettings and the test's allow-list differ: {sorted(platform ^ set(PLATFORM_AZURE))}"
    )
