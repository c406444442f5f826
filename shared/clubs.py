"""Club registry (shared by the NIF and IdrottOnline sides), in Table Storage.

Table ``Clubs`` (prefixed), ``PartitionKey="club"``, ``RowKey=<clubId>``; the registry is small
(hundreds to a few thousand rows), so one partition and a filtered query for the enabled clubs
of a country is enough.

The registry holds the *names* of the secrets with a club's SFTP password or private key, never
the secret values. The SFTP host key is pinned here as ``"<type> <base64>"`` and validated by
parsing it (``shared.sftp.parse_host_key`` semantics, done without importing paramiko).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

from shared.idrott.personnummer import luhn_valid  # organisationsnummer uses the same Luhn check

if TYPE_CHECKING:
    from shared.sftp import SftpTarget
    from shared.tables_contract import StorageTable

TABLE = "Clubs"
PARTITION = "club"

CLUB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
SECRET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,126}$"  # Key Vault secret name rules
HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)

ClubId = Annotated[str, StringConstraints(pattern=CLUB_ID_PATTERN)]
SecretName = Annotated[str, StringConstraints(pattern=SECRET_NAME_PATTERN)]

#: NIF's organisation (club) ids are 32-bit, as everywhere in NIF's API (``shared.nif.models.INT32_MAX``).
NIF_ORGANISATION_ID_MAX = 2_147_483_647
#: The widest integer Table Storage holds (Edm.Int64); the SDK raises ``TypeError`` past it.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Integers of the request are JSON integers only (no ``true``, ``"12"`` or ``"12\n"``) and bounded
# to their domain, so nothing a caller sends can exceed what Table Storage stores.
NifOrganisationId = Annotated[int, Strict(), Field(ge=1, le=NIF_ORGANISATION_ID_MAX)]
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]


def validate_host_key_line(value: str) -> str:
    """``"<type> <base64>"`` whose blob is an SSH public key of that type; returns it normalised.

    The key types allowed are this registry's policy; parsing is the SFTP adapter's (paramiko),
    imported here only when a club is registered or read.
    """
    parts = value.strip().split()
    if len(parts) < 2:
        raise ValueError("must read '<type> <base64>', e.g. 'ssh-ed25519 AAAAC3Nza...'")
    key_type, b64 = parts[0], parts[1]
    if key_type not in HOST_KEY_TYPES:
        raise ValueError(f"unsupported key type {key_type!r} (use one of {', '.join(HOST_KEY_TYPES)})")
    from shared.sftp import InvalidHostKey, parse_host_key

    try:
        parse_host_key(f"{key_type} {b64}")
    except InvalidHostKey as exc:
        raise ValueError(str(exc)) from None
    return f"{key_type} {b64}"


class ClubIn(BaseModel):
    """Body of ``PUT /api/clubs/{clubId}`` (camelCase JSON). See docs/idrottonline.md."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )

    club_id: ClubId | None = Field(None, description="Optional; must equal the route's clubId.")
    name: str | None = Field(None, max_length=200)
    country: Literal["NO", "SE"]
    enabled: bool = True
    nif_organisation_id: NifOrganisationId | None = Field(None, description="NIF org id (NO clubs).")
    # --- RF / IdrottOnline (SE) ----------------------------------------------------------------
    rf_foreningsnummer: str | None = Field(None, pattern=r"^[0-9]{1,10}$", description="RF föreningsnummer.")
    organisation_number: str | None = Field(None, description="Swedish organisationsnummer NNNNNN-NNNN (Luhn-checked).")
    rf_guid: uuid.UUID | None = Field(None, description="Per-club GUID issued by RF.")
    contact_export: bool = Field(False, description="Send persons' contact details to IdrottOnline.")
    sftp_host: str | None = Field(None, min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\-\[\]]+$")
    sftp_port: Port = 22
    sftp_username: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[^\s:@/]+$")
    sftp_host_key: str | None = Field(None, description="Pinned server key '<type> <base64>'.")
    sftp_password_secret: SecretName | None = Field(None, description="Secret NAME, not the password.")
    sftp_private_key_secret: SecretName | None = Field(None, description="Secret NAME, not the key.")
    sftp_remote_dir: str | None = Field(None, max_length=256, pattern=r"^[^\x00-\x1f]*$")

    @field_validator("organisation_number")
    @classmethod
    def _orgnr(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.fullmatch(r"[0-9]{6}-[0-9]{4}", v):  # ASCII: "\d" also matches "٨"
            raise ValueError("must be NNNNNN-NNNN (10 digits with a hyphen)")
        if not luhn_valid(v.replace("-", "")):
            raise ValueError("check digit (Luhn) does not match")
        return v

    @field_validator("sftp_host_key")
    @classmethod
    def _host_key(cls, v: str | None) -> str | None:
        return None if v is None else validate_host_key_line(v)

    def country_errors(self) -> list[tuple[str, str]]:
        """``(fieldPath, message)`` for fields a Swedish club needs (checked by the PUT handler)."""
        if self.country != "SE":
            return []
        need = [
            ("rfForeningsnummer", self.rf_foreningsnummer),
            ("organisationNumber", self.organisation_number),
            ("rfGuid", self.rf_guid),
        ]
        if self.enabled:
            need += [
                ("sftpHost", self.sftp_host),
                ("sftpUsername", self.sftp_username),
                ("sftpHostKey", self.sftp_host_key),
            ]
        errors = [(path, "required for a Swedish club") for path, value in need if value is None]
        if self.enabled and not (self.sftp_password_secret or self.sftp_private_key_secret):
            errors.append(
                ("sftpPasswordSecret", ("an enabled Swedish club needs sftpPasswordSecret or sftpPrivateKeySecret"))
            )
        return errors


class Club(ClubIn):
    """A stored club (the route's id filled in, timestamps added)."""

    club_id: ClubId
    # Read back as stored: a row written before the NIF bound (anything Table Storage holds) stays readable.
    nif_organisation_id: Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)] | None = Field(
        None, description="NIF org id (NO clubs)."
    )
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def sftp_target(self, remote_dir_default: str = ".") -> SftpTarget:
        """The ``shared.sftp.SftpTarget`` for this club (imports nothing heavy)."""
        from shared.sftp import SftpTarget  # lazy: paramiko

        return SftpTarget(
            host=self.sftp_host or "",
            port=self.sftp_port,
            username=self.sftp_username or "",
            host_key=self.sftp_host_key or "",
            password_secret=self.sftp_password_secret,
            private_key_secret=self.sftp_private_key_secret,
            remote_dir=self.sftp_remote_dir or remote_dir_default,
        )


_FIELDS = [name for name in Club.model_fields if name not in ("club_id",)]


def _table() -> StorageTable:
    from shared.tables import get_table_store

    return get_table_store().table(TABLE)


def _to_entity(club: Club) -> dict:
    data = club.model_dump(mode="json", exclude={"club_id", "created_at", "updated_at"})
    entity: dict[str, Any] = {"PartitionKey": PARTITION, "RowKey": club.club_id}
    for key, value in data.items():
        entity[key] = value  # None values are stored as absent by the adapter / ignored on read
    entity["created_at"] = club.created_at
    entity["updated_at"] = club.updated_at
    return {k: v for k, v in entity.items() if v is not None}


def _from_entity(entity: dict) -> Club:
    data = {k: entity.get(k) for k in _FIELDS if entity.get(k) is not None}
    return Club.model_validate({"club_id": entity["RowKey"], **data})


def get_club(club_id: str) -> Club | None:
    if not re.fullmatch(CLUB_ID_PATTERN, club_id or ""):
        return None
    entity = _table().get(PARTITION, club_id)
    return None if entity is None else _from_entity(entity)


def put_club(club_id: str, data: ClubIn) -> tuple[Club, bool]:
    """Create or replace a club; returns ``(club, created)``."""
    from shared.problems import FieldError, validation_problem

    errors = [FieldError(path, msg) for path, msg in data.country_errors()]
    if data.club_id is not None and data.club_id != club_id:
        errors.append(FieldError("clubId", "must equal the clubId in the URL"))
    if errors:
        raise validation_problem(errors, "The club is not valid.")
    existing = _table().get(PARTITION, club_id)
    now = datetime.now(UTC)
    created_at = (existing or {}).get("created_at") or now
    club = Club.model_validate(
        {**data.model_dump(exclude={"club_id"}), "club_id": club_id, "created_at": created_at, "updated_at": now}
    )
    _table().upsert(_to_entity(club), replace=True)
    return club, existing is None


def list_clubs(country: str | None = None, *, enabled_only: bool = False) -> list[Club]:
    clauses, params = [], {}
    if country:
        clauses.append("country eq @country")
        params["country"] = country
    if enabled_only:
        clauses.append("enabled eq true")
    flt = " and ".join(clauses) if clauses else None
    rows = _table().query(filter=flt, parameters=params or None, partition_key=PARTITION)
    return sorted((_from_entity(r) for r in rows), key=lambda c: c.club_id)


def list_enabled_clubs(country: str = "SE") -> list[Club]:
    return list_clubs(country, enabled_only=True)
