"""Typed models of NIF's REST payloads, tolerant of the shapes in NIF's own examples.

Parsing rules (from the seed document's examples):

- ids arrive as integers or numeric strings (``"clubId": "1111111"`` and ``"clubId": 16235``);
  ``""`` and ``null`` mean absent;
- keys are trimmed and matched case-insensitively (``"sportId "`` with a trailing space; the
  request table spells fields in PascalCase, the examples in camelCase);
- coordinates are free text (``"72.5714° E"``) or null;
- Allidrett groups have no branches and no sport id; corporate clubs (org type 15) use the same
  shape.

Request-side models (:class:`MembershipRequest`) check only types and formats; the business rules
and their NIF codes live in :mod:`shared.nif.rules`.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, computed_field, model_validator

INT32_MAX = 2_147_483_647
NORWAY_COUNTRY_ID = 1500152

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# --- value coercions --------------------------------------------------------------------------


def _nif_id(value: Any) -> Any:
    """int or numeric string → int; ``""``/None → None; anything else fails validation."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("must be an integer id")  # noqa: TRY004 - pydantic turns ValueError into a 422
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text == "":
            return None
        if text.isascii() and text.lstrip("-").isdigit() and len(text) <= 19:
            number = int(text)
    if number is None:
        raise ValueError("must be an integer id")
    if not -(2**63) <= number < 2**63:  # ids from NIF's answers are stored (Edm.Int64)
        raise ValueError("integer id out of range")
    return number


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and value.strip() == "":
        return None
    return value


def _iso_date(value: Any) -> Any:
    """Only ``yyyy-mm-dd`` strings (no timestamps, no numbers); ``""`` → None."""
    if value is None or isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return None
        if _DATE.match(text):
            try:
                return date.fromisoformat(text)
            except ValueError:
                raise ValueError("must be a valid date (yyyy-mm-dd)") from None
    raise ValueError("must be a date (yyyy-mm-dd)")


def _none_to_list(value: Any) -> Any:
    return [] if value is None else value


def _text(value: Any) -> Any:
    """Free text from NIF: numbers become strings (coordinates, names)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


NifId = Annotated[int | None, BeforeValidator(_nif_id)]
Text = Annotated[str | None, BeforeValidator(_text)]
RequestId = Annotated[Annotated[int, Field(ge=0, le=INT32_MAX)] | None, BeforeValidator(_nif_id)]
OptStr = Annotated[str | None, BeforeValidator(_blank_to_none)]
IsoDate = Annotated[date | None, BeforeValidator(_iso_date)]
ListOf = BeforeValidator(_none_to_list)


class NifModel(BaseModel):
    """Base: trims keys and matches them case-insensitively to the field names."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _normalise_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = {name.lower(): name for name in cls.model_fields}
        out: dict[str, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                continue
            name = known.get(key.strip().lower(), key.strip())
            if name in out and out[name] is not None and value is None:
                continue  # don't let a later null spelling override a value
            out[name] = value
        return out


# --- reference data -----------------------------------------------------------------------------


class Sport(NifModel):
    sportId: NifId = None
    sportName: Text = None
    sportDescription: Text = None
    sports: Annotated[list[Sport], ListOf] = Field(default_factory=list)


class Country(NifModel):
    countryId: NifId = None
    countryName: Text = None
    isoAlpha2: Text = None
    isoAlpha3: Text = None


class Branch(NifModel):
    branchId: NifId = None
    branchName: Text = None
    describingName: Text = None
    sportId: NifId = None
    sportName: Text = None


class Group(NifModel):
    groupId: NifId = None
    groupName: Text = None
    describingName: Text = None
    sportId: NifId = None
    sportName: Text = None
    branches: Annotated[list[Branch], ListOf] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def isAllidrett(self) -> bool:
        """Allidrett groups have no branches and no sport id (seed); members join the group."""
        return not self.branches and not self.sportId


class OrgStructure(NifModel):
    clubId: NifId = None
    clubName: Text = None
    describingName: Text = None
    email: Text = None
    city: Text = None
    county: Text = None
    longitude: Text = None
    latitude: Text = None
    orgTypeId: NifId = Field(None, description="5 club, 15 corporate club; not in NIF's examples.")
    groups: Annotated[list[Group], ListOf] = Field(default_factory=list)


class TokenResponse(NifModel):
    """GET Token body. The seed shows ``[ "token": "..." ]``; line-wrap whitespace is removed."""

    token: str

    @model_validator(mode="before")
    @classmethod
    def _accept_shapes(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"token": data}
        if isinstance(data, dict):
            for key in ("token", "accessToken", "access_token"):
                for k, v in data.items():
                    if isinstance(k, str) and k.strip().lower() == key.lower() and isinstance(v, str):
                        return {"token": v}
        return data

    @model_validator(mode="after")
    def _squeeze(self) -> TokenResponse:
        squeezed = "".join(self.token.split())
        if not squeezed:
            raise ValueError("empty token")
        object.__setattr__(self, "token", squeezed)
        return self


class TokenInfo(BaseModel):
    """What callers may see about a club token: never the token itself."""

    clubId: int
    expiresAt: str | None = Field(None, description="JWT exp (UTC, ISO 8601); null if unreadable.")
    fetchedAt: str = Field(description="When this process obtained the token (UTC, ISO 8601).")
    mode: Literal["api", "static"]


# --- membership add -----------------------------------------------------------------------------


class PersonIn(NifModel):
    personId: RequestId = Field(None, description="NIF person id; when set, other person fields are ignored.")
    firstName: OptStr = None
    lastName: OptStr = None
    birthDate: IsoDate = None
    postCode: OptStr = None
    email: OptStr = None
    mobilePhone: OptStr = None
    countryCode: OptStr = None
    genderId: RequestId = Field(None, description="1 male, 2 female, 5 unknown.")
    countryId: RequestId = None
    nationalityId: RequestId = Field(None, description="countryId from GET Countries; 1500152 = Norway.")
    addressLine1: OptStr = None
    addressLine2: OptStr = None
    city: OptStr = None
    privatePhone: OptStr = None
    workPhone: OptStr = None
    isSecretAddress: bool | None = None
    isSecretPrivatePhone: bool | None = None
    isSecretWorkPhone: bool | None = None
    isSecretMobilePhone: bool | None = None
    isSecretEmail: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _zero_person_id(cls, data: Any) -> Any:
        # "0, '' and null as absent" for personId (the Allidrett example sends "").
        if isinstance(data, dict):
            for key in list(data):
                if isinstance(key, str) and key.strip().lower() == "personid" and data[key] in (0, "0"):
                    data = {**data, key: None}
        return data


class SportIn(NifModel):
    branchId: RequestId = None
    sportId: RequestId = None
    startDate: IsoDate = None
    endDate: IsoDate = None


class GroupIn(NifModel):
    groupId: RequestId = None
    sportId: RequestId = None
    startDate: IsoDate = None
    endDate: IsoDate = None


class MembershipRequest(NifModel):
    """POST Membership body (camelCase as in NIF's examples)."""

    startDate: IsoDate = Field(None, description="Club-level start date; must be in the current year.")
    isClubLevel: bool | None = None
    person: PersonIn | None = None
    sports: Annotated[list[SportIn], ListOf] = Field(default_factory=list)
    groups: Annotated[list[GroupIn], ListOf] = Field(default_factory=list)

    def to_nif_json(self) -> dict[str, Any]:
        """The body sent to NIF: camelCase, absent values left out."""
        return self.model_dump(mode="json", exclude_none=True, exclude={"groups"} if not self.groups else None)


class BranchMembership(NifModel):
    branchId: NifId = None
    sportId: NifId = None
    branchName: Text = None
    activeMembershipId: NifId = None


class GroupMembership(NifModel):
    groupId: NifId = None
    sportId: NifId = None
    groupName: Text = None
    activeMembershipId: NifId = None


class NifMembershipResponse(NifModel):
    """NIF's answer to POST Membership."""

    personId: NifId = None
    membershipId: NifId = None
    clubId: NifId = None
    clubName: Text = None
    startDate: Text = None
    traceId: Annotated[str | None, BeforeValidator(_blank_to_none)] = None
    sports: Annotated[list[BranchMembership], ListOf] = Field(default_factory=list)
    groups: Annotated[list[GroupMembership], ListOf] = Field(default_factory=list)
    responseMessage: Text = None
    sentToEmail: Annotated[str | None, BeforeValidator(_blank_to_none)] = None
    sentToPhone: Annotated[str | None, BeforeValidator(_blank_to_none)] = None
    updatedPersonId: NifId = None


MembershipStatus = Literal["pending_verification", "completed"]


def membership_status(membership_id: int | None) -> MembershipStatus:
    """``pending_verification`` while NIF has not created the membership (0 or null)."""
    return "completed" if membership_id else "pending_verification"


class MembershipResult(BaseModel):
    """Our answer to a membership add."""

    status: MembershipStatus
    personId: int | None = Field(None, description="Do not use while status is pending_verification.")
    membershipId: int | None = None
    traceId: str | None = None
    clubId: int | None = None
    clubName: str | None = None
    startDate: str | None = None
    sentToEmail: str | None = None
    sentToPhone: str | None = None
    responseMessage: str | None = None
    sports: list[BranchMembership] = Field(default_factory=list)
    groups: list[GroupMembership] = Field(default_factory=list)
    updatedPersonId: int | None = None

    @classmethod
    def from_nif(cls, nif: NifMembershipResponse) -> MembershipResult:
        data = nif.model_dump()
        return cls(status=membership_status(nif.membershipId), **data)


class MembershipRequestRecord(BaseModel):
    """GET membership-requests/{traceId}: the recorded request (no contact data) and its status."""

    traceId: str
    clubId: int
    status: Literal["pending_verification", "completed", "confirmed", "expired"]
    expired: bool
    createdAt: str
    expiresAt: str
    personId: int | None = None
    membershipId: int | None = None
    isClubLevel: bool | None = None
    startDate: str | None = None
    sports: list[dict[str, Any]] = Field(default_factory=list)
    groups: list[dict[str, Any]] = Field(default_factory=list)
    sentToEmail: str | None = Field(None, description="Masked.")
    sentToPhone: str | None = Field(None, description="Masked.")
    confirmedAt: str | None = None
    confirmedBy: str | None = None
