"""Club registry: model validation (pure) and Table Storage round trips (Azurite)."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from shared import clubs
from tests.idrott_support import ORGNR

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def _se(**kw) -> dict:
    base = {
        "country": "SE",
        "rfForeningsnummer": "123",
        "organisationNumber": ORGNR,
        "rfGuid": str(uuid.uuid4()),
        "sftpHost": "sftp.example.se",
        "sftpUsername": "club",
        "sftpHostKey": ED25519,
        "sftpPasswordSecret": "sftp-password-c1",
    }
    base.update(kw)
    return base


def test_valid_se_club_and_camel_case():
    c = clubs.ClubIn.model_validate(_se())
    assert c.country_errors() == [] and c.sftp_port == 22 and c.enabled
    assert c.model_dump(by_alias=True)["sftpHostKey"] == ED25519


@pytest.mark.parametrize(
    "field,value",
    [
        ("organisationNumber", "8020000009"),
        ("organisationNumber", "802000-0001"),
        ("organisationNumber", "802000-00091"),
        ("sftpHostKey", "ssh-ed25519"),
        ("sftpHostKey", "ssh-ed25519 !!!"),
        ("sftpHostKey", "ssh-dss AAAA"),
        ("sftpHostKey", "ssh-rsa " + ED25519.split()[1]),
        ("sftpHostKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"),
        ("rfGuid", "not-a-guid"),
        ("sftpPort", 0),
        ("sftpPort", 65536),
        ("country", "DK"),
        ("sftpPasswordSecret", "has space"),
        ("sftpPasswordSecret", "under_score"),
        ("sftpUsername", "a b"),
        ("rfForeningsnummer", "12a"),
        ("rfForeningsnummer", "١٢٣"),  # Unicode digits: the XML's RF number is ASCII (issue 9)
        ("nifOrganisationId", 2**63),  # past Edm.Int64: was a 500 from the Table SDK (issue 9)
        ("nifOrganisationId", 2**31),  # NIF ids are 32-bit
        ("nifOrganisationId", True),
        ("nifOrganisationId", "123"),
        ("sftpPort", "22"),
        ("sftpPort", True),
        ("unknownField", 1),
    ],
)
def test_invalid_fields(field, value):
    with pytest.raises(ValidationError) as err:
        clubs.ClubIn.model_validate(_se(**{field: value}))
    assert field in str(err.value)


def test_country_rules():
    c = clubs.ClubIn.model_validate({"country": "SE"})
    paths = {p for p, _ in c.country_errors()}
    assert paths == {
        "rfForeningsnummer",
        "organisationNumber",
        "rfGuid",
        "sftpHost",
        "sftpUsername",
        "sftpHostKey",
        "sftpPasswordSecret",
    }
    disabled = clubs.ClubIn.model_validate(_se(enabled=False, sftpHost=None, sftpHostKey=None, sftpPasswordSecret=None))
    assert disabled.country_errors() == []
    assert clubs.ClubIn.model_validate({"country": "NO"}).country_errors() == []
    key_only = clubs.ClubIn.model_validate(_se(sftpPasswordSecret=None, sftpPrivateKeySecret="sftp-key-c1"))
    assert key_only.country_errors() == []


def test_host_key_accepts_comment_and_real_keys():
    assert clubs.validate_host_key_line(ED25519 + " root@host") == ED25519
    import paramiko

    ecdsa = paramiko.ECDSAKey.generate()
    line = f"{ecdsa.get_name()} {ecdsa.get_base64()}"
    assert clubs.validate_host_key_line(line) == line


def test_registry_round_trip(storage):
    club, created = clubs.put_club("c1", clubs.ClubIn.model_validate(_se()))
    assert created and club.created_at is not None
    again, created2 = clubs.put_club("c1", clubs.ClubIn.model_validate(_se(sftpPort=2222)))
    assert not created2 and again.created_at == club.created_at and again.sftp_port == 2222
    got = clubs.get_club("c1")
    assert got.sftp_port == 2222 and got.organisation_number == ORGNR and got.rf_guid == again.rf_guid
    assert clubs.get_club("missing") is None and clubs.get_club("bad/id") is None
    clubs.put_club("c2", clubs.ClubIn.model_validate(_se(enabled=False)))
    clubs.put_club("n1", clubs.ClubIn.model_validate({"country": "NO"}))
    assert [c.club_id for c in clubs.list_enabled_clubs()] == ["c1"]
    assert [c.club_id for c in clubs.list_enabled_clubs("NO")] == ["n1"]
    assert [c.club_id for c in clubs.list_clubs()] == ["c1", "c2", "n1"]
    target = got.sftp_target(".")
    assert (target.port, target.password_secret, target.remote_dir) == (2222, "sftp-password-c1", ".")


def test_put_club_rejects_mismatched_id(storage):
    from shared.problems import Problem

    with pytest.raises(Problem) as err:
        clubs.put_club("c1", clubs.ClubIn.model_validate(_se(clubId="c9")))
    assert err.value.status == 422 and err.value.errors[0].path == "clubId"
