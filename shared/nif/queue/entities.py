"""The 11 queue entities: projection table names, keys, and tolerant field access (pure).

Field lists are inferred (reference 6.4), so nothing here rejects a body: models allow extra
fields, ids are read as int or numeric string, ``0``/``""``/null count as absent, and field
names are matched case-insensitively after trimming. The raw body is kept in the journal.

Keys (documented in docs/queue.md):

- projection row: ``PartitionKey = bucket(ObjectId)`` (``ObjectId // 1000``, zero-padded),
  ``RowKey = ObjectId`` zero-padded to 12 digits. A point read needs only the id (a Modified
  delta may not carry the club or person), and consecutive ids (NIF assigns them in order)
  share a partition, so a batch writes them in one transaction.
- unknown entities: generic table, ``PartitionKey = normalised entity name``, same RowKey.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.nif.queue.envelope import KNOWN_ENTITIES

BUCKET = 1000

#: Projection table per entity (Table Storage names must be alphanumeric).
PROJECTION_TABLES: dict[str, str] = {name: "Prj" + name.replace("_", "") for name in KNOWN_ENTITIES}
GENERIC_TABLE = "PrjGeneric"
JOURNAL_TABLE = "NifJournal"
JOURNAL_OVERFLOW_TABLE = "NifJournalOverflow"
QUARANTINE_TABLE = "NifQuarantine"
MERGE_TABLE = "NifMergeMap"
LINKS_TABLE = "NifLinks"


def table_for(entity: str, known: bool) -> str:
    return PROJECTION_TABLES[entity] if known else GENERIC_TABLE


def pad(n: int) -> str:
    return f"{n:012d}" if n >= 0 else f"-{-n:011d}"


def bucket(n: int) -> str:
    return f"{n // BUCKET:09d}" if n >= 0 else "neg"


def row_keys(entity: str, known: bool, object_id: int) -> tuple[str, str]:
    if not known:
        return entity, pad(object_id)
    return bucket(object_id), pad(object_id)


# --- tolerant field access ----------------------------------------------------------------


def field(data: Mapping[str, Any], *names: str) -> Any:
    """First present value among ``names`` (case-insensitive, keys trimmed)."""
    lowered = {str(k).strip().lower(): v for k, v in data.items()}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def as_id(value: Any) -> int | None:
    """Id as int; ``0``, ``""``, null, booleans and non-numbers are absent."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value or None
    if isinstance(value, float) and value.is_integer():
        return int(value) or None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.lstrip("-").isdigit():  # "²".isdigit() is True, int("²") fails
            return int(text) or None
    return None


def as_ids(value: Any) -> list[int]:
    """A list of ids from a list, a single id or a comma-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        items: Iterable[Any] = value.replace(";", ",").split(",")
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        items = [value]
    out = []
    for item in items:
        if isinstance(item, Mapping):
            item = field(item, "personId", "membershipId", "activeMembershipId", "id")
        n = as_id(item)
        if n is not None:
            out.append(n)
    return sorted(set(out))


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return False


PERSON_ID = ("personId", "person_id")
CLUB_ID = ("clubId", "orgId", "organizationId", "organisationId", "clubOrgId")
BRANCH_ID = ("branchId", "branchOrgId", "orgId", "organizationId")
STATUS_ID = ("membershipStatusId", "statusId", "status", "membershipStatus")
SOFT_DELETE = ("isDeleted", "deleted", "isSoftDeleted", "softDeleted")
MERGED_PERSONS = ("mergedPersonIds", "mergedPersonId", "mergedPersons", "mergedIds")
MERGED_MEMBERSHIPS = ("mergedMembershipIds", "mergedMembershipId", "mergedIds")
MERGED_ACTIVE = ("mergedActiveMembershipIds", "mergedActiveMembershipId", "mergedIds")
TRACE_ID = ("traceId", "trace_id")
MEMBERSHIP_ID = ("membershipId",)

SECRET_FLAGS: dict[str, tuple[str, ...]] = {
    "isSecretAddress": (
        "addressLine1",
        "addressLine2",
        "addressLine3",
        "address",
        "postCode",
        "postalCode",
        "city",
        "postCity",
        "countryId",
    ),
    "isSecretEmail": ("email", "emailAddress"),
    "isSecretMobilePhone": ("mobilePhone", "mobile", "cellPhone"),
    "isSecretPrivatePhone": ("privatePhone", "homePhone"),
    "isSecretWorkPhone": ("workPhone",),
}


def links_of(entity: str, data: Mapping[str, Any]) -> dict[str, int]:
    """Promoted link fields of a row's current data (``personId``, ``clubId``, ``branchId``)."""
    out: dict[str, int] = {}
    if entity in ("TpMembership", "TpActiveMembership", "TpPersonContactInformation", "TpMembershipPeriod"):
        pid = as_id(field(data, *PERSON_ID))
        if pid:
            out["personId"] = pid
    if entity == "TpMembership":
        cid = as_id(field(data, *CLUB_ID))
        if cid:
            out["clubId"] = cid
    if entity == "TpActiveMembership":
        bid = as_id(field(data, *BRANCH_ID))
        if bid:
            out["branchId"] = bid
        cid = as_id(field(data, "clubId"))
        if cid:
            out["clubId"] = cid
    return out


# --- tolerant models (documentation of the inferred fields; extra fields allowed) ----------


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TpPerson(_Tolerant):
    personId: int | str | None = None
    firstName: str | None = None
    lastName: str | None = None
    genderId: int | str | None = None
    birthDate: str | None = None
    deathDate: str | None = None
    nationalityId: int | str | None = None
    sportNo: str | int | None = None
    mergedPersonIds: list[int | str] | str | int | None = None
    traceId: str | None = None


class TpPersonContactInformation(_Tolerant):
    personId: int | str | None = None
    addressLine1: str | None = None
    addressLine2: str | None = None
    postCode: str | None = None
    city: str | None = None
    countryId: int | str | None = None
    privatePhone: str | None = None
    workPhone: str | None = None
    mobilePhone: str | None = None
    email: str | None = None
    isSecretAddress: bool | None = None
    isSecretEmail: bool | None = None
    isSecretMobilePhone: bool | None = None
    isSecretPrivatePhone: bool | None = None
    isSecretWorkPhone: bool | None = None


class TpMembership(_Tolerant):
    membershipId: int | str | None = None
    personId: int | str | None = None
    clubId: int | str | None = None
    startDate: str | None = None
    endDate: str | None = None
    membershipStatusId: int | str | None = None
    mergedMembershipIds: list[int | str] | str | int | None = None
    isDeleted: bool | None = None
    traceId: str | None = None


class TpActiveMembership(_Tolerant):
    activeMembershipId: int | str | None = None
    personId: int | str | None = None
    branchId: int | str | None = None
    sportId: int | str | None = None
    startDate: str | None = None
    endDate: str | None = None
    statusId: int | str | None = None
    mergedActiveMembershipIds: list[int | str] | str | int | None = None
    isDeleted: bool | None = None
    traceId: str | None = None
