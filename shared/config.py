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
    "NIF_PAYMENTS_RETRY_SCHEDULE",  # %NIF_PAYMENTS_RETRY_SCHEDULE% on the payment retry timer
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
    STORAGE_TIMEOUT_SECONDS: float = Field(10.0, gt=0, description="Table Storage and queue timeouts.")
    AzureWebJobsStorage: SecretStr | None = Field(
        None,
        description="The host's storage as a connection string (locally Azurite). The export work queue "
        "uses it; in Azure it is unset and the identity-based AzureWebJobsStorage__queueServiceUri is used.",
    )
    AzureWebJobsStorage__queueServiceUri: str | None = Field(
        None,
        description="Queue endpoint of the host's storage (managed identity via AZURE_CLIENT_ID); set by Bicep.",
    )

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
    IDROTTONLINE_EXPORT_QUEUE: str = Field(
        "idrottonline-export",
        pattern=r"^[a-z0-9][a-z0-9-]{1,54}[a-z0-9]$",  # a queue name that leaves room for "-poison"
        description="Storage queue of the export work items (one per club); failing items end in `<name>-poison`.",
    )
    IDROTTONLINE_EXPORT_CONCURRENCY: int = Field(
        16,
        ge=1,
        le=1000,
        description="Most clubs exported at once across all instances (concurrent SFTP sessions to RF).",
    )
    IDROTTONLINE_OVERDUE_NIGHTS: int = Field(
        2,
        ge=1,
        le=60,
        description="A club not exported successfully for this many nights is an `export.overdue` alert.",
    )

    # --- NIF payments ---------------------------------------------------------------------
    NIF_PAYMENTS_RETRY_SCHEDULE: str = Field(
        "0 */5 * * * *", description="NCRONTAB (UTC) of the timer that retries queued NIF payments."
    )
    NIF_PAYMENTS_MAX_AGE_HOURS: int = Field(
        72, ge=1, le=24 * 60, description="A payment not reported this long after it was posted becomes `failed`."
    )
    NIF_PAYMENTS_RETRY_BASE_SECONDS: int = Field(
        60, ge=1, description="Backoff before a payment's first retry; doubled per attempt (with jitter)."
    )
    NIF_PAYMENTS_RETRY_MAX_SECONDS: int = Field(3600, ge=1, description="Longest backoff between two retries.")
    NIF_PAYMENTS_PENDING_GRACE_SECONDS: int = Field(
        120,
        ge=1,
        description="A `pending` payment older than this (its process died mid-call) is resolved by the "
        "retry timer: looked up at NIF first, posted again only if NIF has no record of it.",
    )
    NIF_PAYMENTS_RETRY_CONCURRENCY: int = Field(
        8, ge=1, le=64, description="Payments the retry timer sends to NIF at once."
    )

    # --- Callers: keys, OIDC tokens, CORS (docs/security.md) -------------------------------
    AUTH_MODE: Literal["keys", "tokens"] = Field(
        "keys",
        description="`keys`: the host checks function/master keys (today's behaviour); `tokens`: the HTTP "
        "routes are anonymous at the host and the app checks bearer tokens and the AUTH_*_KEY keys. "
        "Read when the host indexes the app: a change needs a restart (an app-setting change is one).",
    )
    AUTH_ISSUER: str | None = Field(
        None, description="OIDC issuer (`iss`); discovery and JWKS are read from `<issuer>/.well-known/…`."
    )
    AUTH_AUDIENCE: str | None = Field(None, description="Expected `aud` of bearer tokens (the API's client id/URI).")
    AUTH_ALGORITHMS: str = Field(
        "RS256,PS256,ES256", description="Accepted JWT algorithms, comma-separated; asymmetric ones only."
    )
    AUTH_CLOCK_SKEW_SECONDS: int = Field(60, ge=0, le=300, description="Leeway for `exp` and `nbf`.")
    AUTH_CLUBS_CLAIM: str = Field("clubs", description="Claim listing the clubs a user may act for.")
    AUTH_CLUBS_PREFIX: str = Field(
        "",
        description="Only values of the clubs claim starting with this prefix count, prefix removed "
        "(e.g. `club.` for Entra app roles `club.1234`). The claim is a JSON array or a space/comma list.",
    )
    AUTH_ROLES_CLAIM: str = Field("roles", description="Claim holding the caller's roles.")
    AUTH_ROLE_READONLY: str = Field("idrettsbro.readonly", description="Role: may read, never write.")
    AUTH_ROLE_ALL_CLUBS: str = Field(
        "idrettsbro.allclubs", description="Role of a vendor back end (client credentials): every club."
    )
    AUTH_ROLE_ADMIN: str = Field("idrettsbro.admin", description="Role: admin routes and every club.")
    AUTH_HTTP_TIMEOUT_SECONDS: float = Field(5.0, gt=0, le=30, description="Timeout of discovery and JWKS fetches.")
    AUTH_JWKS_MAX_AGE_SECONDS: int = Field(3600, ge=60, description="Refetch the issuer's JWKS after this long.")
    AUTH_JWKS_MIN_REFRESH_SECONDS: int = Field(
        30, ge=1, description="An unknown `kid` refetches the JWKS at most this often."
    )
    AUTH_FUNCTION_KEY: SecretStr | None = Field(
        None,
        description="`tokens` mode: a key the app accepts as a back end for every club (set it to the host's "
        "function key value so back ends keep their key). Key Vault reference in Azure.",
    )
    AUTH_MASTER_KEY: SecretStr | None = Field(
        None, description="`tokens` mode: a key the app accepts as an administrator. Key Vault reference in Azure."
    )
    CORS_ALLOWED_ORIGINS: str = Field(
        "", description="Browser origins allowed to call the API, comma-separated (Function App CORS)."
    )

    @field_validator("AUTH_ALGORITHMS")
    @classmethod
    def _asymmetric_only(cls, value: str) -> str:
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
        names = [a.strip() for a in value.split(",") if a.strip()]
        bad = [a for a in names if a not in allowed]
        if bad or not names:
            raise ValueError(f"only asymmetric algorithms ({', '.join(sorted(allowed))}); got {', '.join(bad)}")
        return ",".join(names)

    @field_validator("LOCAL_TIMEZONE")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Oslo)") from None
        return value

    @field_validator("IDROTTONLINE_EXPORT_QUEUE")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        if "--" in value:
            raise ValueError("a queue name has no consecutive hyphens")
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
