"""One typed Settings object, read lazily.

Nothing here runs at import time: ``get_settings()`` builds the object on first call and
caches it; tests call ``reset_settings()`` after changing the environment. Every app setting the
code reads is a field here, so this class is the single list that Bicep and
``local.settings.json.example`` are checked against (tests/test_settings_sync.py).

Secret-valued settings are ``SecretStr`` so they never print in a repr or a log line.
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Binding expressions the host resolves from app settings (not read by our code, but they must
#: be provisioned). Kept here so the settings-consistency test sees one list.
BINDING_SETTINGS: tuple[str, ...] = (
    "NIF_QUEUE_NAME",  # %NIF_QUEUE_NAME% on the Service Bus trigger
    "IDROTTONLINE_EXPORT_SCHEDULE",  # %IDROTTONLINE_EXPORT_SCHEDULE% on the timer trigger
)


class Settings(BaseSettings):
    """App settings (environment variables / Azure app settings), names as documented."""

    model_config = SettingsConfigDict(
        case_sensitive=True,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    # --- NIF REST API ---------------------------------------------------------------------
    NIF_API_BASE_URL: str | None = Field(
        None, description="Base URL of NIF's API gateway (shown in the NIF developer portal)."
    )
    NIF_API_VERSION: int = Field(1, ge=1, description="The `v{version}` path segment.")
    NIF_SUBSCRIPTION_KEY: SecretStr | None = Field(
        None, description="Vendor APIM key (`Ocp-Apim-Subscription-Key`). Key Vault reference in Azure."
    )
    NIF_TOKEN_MODE: Literal["api", "static"] = Field(
        "api",
        description="`api`: fetch club tokens with GET Token; `static`: portal-issued token per club "
        "read from the secret named by NIF_STATIC_TOKEN_SECRET.",
    )
    NIF_STATIC_TOKEN_SECRET: str = Field(
        "nif-token-{club_id}",
        description="Secret name template for static club tokens (`{club_id}` is replaced).",
    )
    NIF_DEVELOPER_USER_ID: str | None = Field(
        None,
        description="Optional `developerUserId` query parameter for GET Token "
        "(developer e-mail with `.` and `@` replaced by `-`).",
    )
    NIF_TOKEN_REFRESH_MARGIN_SECONDS: int = Field(
        300, ge=0, description="Refresh a cached token this long before its JWT `exp`."
    )
    NIF_CONNECT_TIMEOUT_SECONDS: float = Field(5.0, gt=0, description="NIF connect timeout.")
    NIF_READ_TIMEOUT_SECONDS: float = Field(20.0, gt=0, description="NIF read/write timeout.")
    NIF_MAX_CONNECTIONS: int = Field(50, ge=1, description="httpx connection pool size for NIF.")

    # --- NIF queue ------------------------------------------------------------------------
    NIF_QUEUE_NAME: str = Field("nif-entity-changes", description="NIF's Service Bus queue name (trigger binding).")

    NifServiceBus: SecretStr | None = Field(
        None,
        description="Connection string of NIF's Service Bus namespace (trigger connection; NIF issues it). "
        "Also read by the dead-letter drain command.",
    )

    # --- Storage --------------------------------------------------------------------------
    DATA_TABLES_CONNECTION: SecretStr | None = Field(
        None, description="Table Storage connection string (local/Azurite). Use this or the endpoint."
    )
    DATA_TABLES_ENDPOINT: str | None = Field(
        None,
        description="Table Storage endpoint, e.g. https://<acct>.table.core.windows.net "
        "(managed identity via AZURE_CLIENT_ID).",
    )
    DATA_TABLES_PREFIX: str = Field(
        "ib",
        pattern=r"^[A-Za-z][A-Za-z0-9]{0,15}$",
        description="Prefix of every table name (lets several environments share an account).",
    )
    STORAGE_TIMEOUT_SECONDS: float = Field(10.0, gt=0, description="Table Storage timeouts.")

    # --- Secrets --------------------------------------------------------------------------
    KEY_VAULT_URL: str | None = Field(
        None,
        description="Key Vault URL; when set, secrets (static NIF tokens, SFTP credentials) "
        "come from it, otherwise from environment variables.",
    )

    # --- General --------------------------------------------------------------------------
    LOCAL_TIMEZONE: str = Field("Europe/Oslo", description="Zone for NIF's 'current year' and other calendar rules.")

    # --- IdrottOnline export --------------------------------------------------------------
    IDROTTONLINE_EXPORT_SCHEDULE: str = Field("0 0 2 * * *", description="NCRONTAB (UTC) of the nightly export timer.")
    IDROTTONLINE_APPLICATION_ID: str = Field("idrettsbro", description="RF-issued ApplicationId of the vendor system.")
    IDROTTONLINE_MAX_FILE_BYTES: int = Field(
        10_000_000, ge=10_000, description="Split a run into files below this size."
    )
    IDROTTONLINE_REMOTE_DIR: str = Field(".", description="Upload folder on RF's SFTP server.")
    SFTP_CONNECT_TIMEOUT_SECONDS: float = Field(10.0, gt=0, description="SFTP TCP/banner/auth timeouts.")
    SFTP_OPERATION_TIMEOUT_SECONDS: float = Field(30.0, gt=0, description="SFTP channel timeout.")
    SFTP_DEADLINE_SECONDS: float = Field(
        240.0, gt=0, description="Overall deadline for one club's upload (below functionTimeout)."
    )
    EXPORT_LOCK_SECONDS: int = Field(900, ge=60, description="Expiry of a club's export lock.")

    @field_validator("LOCAL_TIMEZONE")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Oslo)") from None
        return value

    @model_validator(mode="after")
    def _one_storage_target(self) -> Settings:
        if self.DATA_TABLES_CONNECTION and self.DATA_TABLES_ENDPOINT:
            raise ValueError("set DATA_TABLES_CONNECTION or DATA_TABLES_ENDPOINT, not both")
        return self

    def nif_api_root(self) -> str:
        """``<base>/api/v<version>`` without a trailing slash."""
        if not self.NIF_API_BASE_URL:
            raise MissingSetting("NIF_API_BASE_URL")
        return f"{self.NIF_API_BASE_URL.rstrip('/')}/api/v{self.NIF_API_VERSION}"


class MissingSetting(RuntimeError):
    """A setting needed for this operation is not configured (raised on use, never at import).

    An HTTP handler answers 503 ``not-configured`` naming it; the queue trigger raises (the
    message is redelivered) and an export run fails (the map: ``shared.problems``)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"missing configuration: {name}")
        self.name = name


@functools.cache
def get_settings() -> Settings:
    """The process-wide Settings, built from the environment on first call."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached Settings (tests, after changing the environment)."""
    get_settings.cache_clear()
