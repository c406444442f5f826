"""Helpers for the IdrottOnline adapter tests (test data, SFTP server + SE club registration)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SFTP_PASSWORD = "Sftp-pass-for-tests-9"
ORGNR = "802000-0009"  # Luhn-valid organisationsnummer (fictitious)


def pnr(year: int, month: int, day: int, serial: int, *, female: bool = False) -> str:
    """A valid personnummer ``YYYYMMDD-XXXX`` (Luhn, gender digit)."""
    from shared.idrott.personnummer import luhn_check_digit

    s = serial % 1000
    # the 9th of the 10 digits (last of the 3-digit serial) carries the gender: odd male, even female
    if (s % 10) % 2 != (0 if female else 1):
        s = (s + 1) % 1000
    nine = f"{year % 100:02d}{month:02d}{day:02d}{s:03d}"
    return f"{year:04d}{month:02d}{day:02d}-{s:03d}{luhn_check_digit(nine)}"


def person(
    ext: str,
    *,
    year: int = 2012,
    serial: int = 1,
    female: bool = False,
    first: str = "Alva",
    sports: list[int] | None = None,
) -> dict:
    return {
        "externalId": ext,
        "personnummer": pnr(year, 3, 14, serial, female=female),
        "firstName": first,
        "lastName": "Andersson",
        "gender": "female" if female else "male",
        "sports": [{"sportId": s} for s in (sports or [7])],
    }


def activity(
    aid: str,
    participants: list[str],
    *,
    leader: str | None = None,
    start: datetime | None = None,
    minutes: int = 90,
    type_id: int = 1,
    sport: int = 7,
) -> dict:
    start = start or datetime.now(UTC).replace(microsecond=0, second=0, minute=0) - timedelta(days=1)
    parts = [{"personId": p} for p in participants]
    if leader:
        parts.append({"personId": leader, "leader": True})
    return {
        "activityId": aid,
        "typeId": type_id,
        "name": "Träning U12",
        "startTime": start.isoformat(),
        "endTime": (start + timedelta(minutes=minutes)).isoformat(),
        "sportId": sport,
        "venueName": "Stora hallen",
        "participants": parts,
    }


def club_body(srv, *, enabled: bool = True, password_secret: str = "sftp-password-test") -> dict:
    return {
        "name": "IK Test",
        "country": "SE",
        "enabled": enabled,
        "rfForeningsnummer": "12345",
        "organisationNumber": ORGNR,
        "rfGuid": str(uuid.uuid4()),
        "sftpHost": "127.0.0.1",
        "sftpPort": srv.port,
        "sftpUsername": srv.username,
        "sftpHostKey": srv.host_key_line,
        "sftpPasswordSecret": password_secret,
    }


def register_club(club_id: str, srv, **kw):
    from shared.clubs import ClubIn, put_club

    club, _ = put_club(club_id, ClubIn.model_validate(club_body(srv, **kw)))
    return club


@contextmanager
def sftp_server(root: Path) -> Iterator:
    from devtools.sftp_server import SftpServer

    with SftpServer(root, username="rfclub", password=SFTP_PASSWORD) as srv:
        yield srv


def xml_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.xml"))


def still_pending(records) -> set[tuple[str, str]]:
    """The records a club's next run sends again, as ``("person" | "activity", id)``: what a delta
    run selects (:meth:`ClubRecords.select`), which reads only the records still marked dirty.
    Also checks that every dirty marker left (``counts()["pendingChanges"]``) is one of them."""
    sel = records.select(full_load=False, today=datetime.now(UTC).date())
    out = {("person", p.external_id) for p in sel.persons}
    out |= {("activity", a.activity_id) for a in sel.activities + sel.deletes}
    assert records.counts()["pendingChanges"] == len(out), "a dirty marker that names nothing to send"
    return out


# ---- reading export files: assert on elements, not on the text -----------------------------------
def xml_root(source: Path | str | bytes) -> Any:
    """An export file parsed (lxml): a file on the SFTP server, or a preview's ``xml`` text."""
    from lxml import etree

    if isinstance(source, Path):
        source = source.read_bytes()
    elif isinstance(source, str):
        source = source.encode("utf-8")  # the text declares its encoding: parse it as bytes
    return etree.fromstring(source)


def persons_by_id(root: Any) -> dict[str, Any]:
    """The file's ``Persons/Person`` elements by ExternalIdentification, in file order."""
    persons = root.findall("Persons/Person")
    by_id = {p.findtext("ExternalIdentification"): p for p in persons}
    assert len(by_id) == len(persons), "a person twice in one file"
    return by_id


def activities_by_id(root: Any) -> dict[str, Any]:
    """The file's ``Activities/Activity`` elements by ActivityId, in file order."""
    activities = root.findall("Activities/Activity")
    by_id = {a.findtext("ActivityId"): a for a in activities}
    assert len(by_id) == len(activities), "an activity twice in one file"
    return by_id


def participant_ids(element: Any) -> list[str]:
    """PersonId of every participant under ``element`` (one activity, or a whole file)."""
    return [pid.text for pid in element.iterfind(".//Participants/Participant/PersonId")]
