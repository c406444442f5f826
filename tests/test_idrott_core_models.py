"""Intake models: every validation rule of the reference, with field paths."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.idrott.bulk import check_participants_resolve, validate_bulk
from shared.idrott.models import Activity, ClubExportInfo, Person
from tests.test_idrott_core_personnummer import pnr

TODAY = date(2024, 5, 20)
MALE = pnr("20100315", "231")
FEMALE = pnr("20100315", "242")
T0 = datetime(2024, 3, 1, 17, 0, tzinfo=UTC)


def person(**over):
    d = {
        "externalId": "p-1",
        "personnummer": MALE,
        "firstName": "Sven",
        "lastName": "Svensson",
        "gender": "male",
        "sports": [{"sportId": 10, "isActive": True}],
    }
    d.update(over)
    return {k: v for k, v in d.items() if v is not ...}


def activity(**over):
    d = {
        "activityId": "a-1",
        "typeId": 1,
        "name": "Träning P10",
        "startTime": T0.isoformat(),
        "endTime": (T0 + timedelta(minutes=60)).isoformat(),
        "sportId": 10,
        "venueName": "Hallen",
        "participants": [{"personId": "p-1", "leader": False, "disabled": False}],
    }
    d.update(over)
    return {k: v for k, v in d.items() if v is not ...}


def errors(model, data):
    ok, errs = validate_bulk(model, [data], today=TODAY)
    assert not ok
    return {path: msg for _, path, msg in errs}


def test_valid_person_normalised_and_birth_date_derived():
    p = Person.model_validate(person(personnummer=MALE.replace("-", "")), context={"today": TODAY})
    assert p.personnummer == MALE
    assert p.birth_date == date(2010, 3, 15)
    assert MALE not in repr(p)  # personal data stays out of repr()
    assert p.model_dump(by_alias=True)["firstName"] == "Sven"


def test_snake_case_accepted_too():
    p = Person(
        external_id="x", personnummer=MALE, first_name="A", last_name="B", gender="male", sports=[{"sport_id": 1}]
    )
    assert p.sports[0].is_active is True


def test_personnummer_whitespace_path_and_message():
    e = errors(Person, person(personnummer=MALE + " "))
    assert "whitespace" in e["personnummer"]
    assert MALE not in e["personnummer"]


def test_gender_digit_mismatch():
    e = errors(Person, person(personnummer=FEMALE, gender="male"))
    assert "gender digit" in e["gender"]


def test_birth_date_mismatch():
    e = errors(Person, person(birthDate="2010-03-16"))
    assert "birthDate" in e["birthDate"]


def test_foreign_person_needs_birth_date_and_nationality_not_se():
    e = errors(Person, person(personnummer=...))
    assert set(e) == {"birthDate", "nationality"}
    e = errors(Person, person(personnummer=..., birthDate="2010-01-01", nationality="SE"))
    assert "SE" in e["nationality"]
    p = Person.model_validate(person(personnummer=..., birthDate="2010-01-01", nationality="NO"))
    assert p.personnummer is None and p.nationality == "NO"


@pytest.mark.parametrize("nat", ["no", "NOR", "N1"])
def test_nationality_alpha2(nat):
    assert "nationality" in errors(Person, person(nationality=nat))


@pytest.mark.parametrize("field", ["firstName", "lastName", "gender"])
def test_names_and_gender_required(field):
    assert field in errors(Person, person(**{field: ...}))


def test_blank_name_and_control_chars():
    assert "firstName" in errors(Person, person(firstName="   "))
    assert "control character" in errors(Person, person(lastName="A\x01B"))["lastName"]


def test_gender_values():
    assert "gender" in errors(Person, person(gender="M"))


def test_sports_at_least_one_and_unique():
    assert "sports" in errors(Person, person(sports=[]))
    assert "once" in errors(Person, person(sports=[{"sportId": 1}, {"sportId": 1}]))["sports"]
    assert "sports.0.sportId" in errors(Person, person(sports=[{"sportId": 0}]))


@pytest.mark.parametrize("bad", ["", "a b", "a/b", "x" * 65, "-a", "ä"])
def test_external_id_charset(bad):
    assert "externalId" in errors(Person, person(externalId=bad))


def test_external_id_64_ok():
    assert Person.model_validate(person(externalId="A" * 64)).external_id == "A" * 64


def test_unknown_field_refused():
    assert "extraField" in errors(Person, person(extraField=1))


def test_naive_datetimes_refused():
    assert "changedAt" in errors(Person, person(changedAt="2024-01-01T10:00:00"))


def test_contact():
    p = Person.model_validate(
        person(
            contact={"email": "a@b.se", "mobilePhone": "+46 70-123 45 67", "postalCode": "123 45", "countryCode": "SE"}
        )
    )
    assert p.contact.mobile_phone.startswith("+46")
    assert "contact.email" in errors(Person, person(contact={"email": "nope"}))


def test_valid_activity():
    a = Activity.model_validate(activity())
    assert a.participants[0].person_id == "p-1"


def test_end_after_start():
    e = errors(Activity, activity(endTime=T0.isoformat()))
    assert "after" in e["endTime"]


@pytest.mark.parametrize("t", [0, 10])
def test_type_id_range(t):
    assert "typeId" in errors(Activity, activity(typeId=t))


@pytest.mark.parametrize("field", ["name", "venueName", "startTime", "sportId"])
def test_activity_required(field):
    assert field in errors(Activity, activity(**{field: ...}))


def test_participants_at_least_one_and_unique():
    assert "participants" in errors(Activity, activity(participants=[]))
    dup = [{"personId": "p-1"}, {"personId": "p-1"}]
    assert "twice" in errors(Activity, activity(participants=dup))["participants"]


def test_check_participants_resolve():
    acts = [
        Activity.model_validate(activity()),
        Activity.model_validate(activity(participants=[{"personId": "p-1"}, {"personId": "ghost"}])),
    ]
    assert check_participants_resolve(acts, {"p-1"}) == [
        (1, "participants.1.personId", "personId ghost is not a person of this club")
    ]


def test_bulk_reports_index_and_keeps_valid():
    ok, errs = validate_bulk(Person, [person(), person(externalId="p 2"), person(externalId="p-3")], today=TODAY)
    assert [i for i, _ in ok] == [0, 2]
    assert errs[0][0] == 1 and errs[0][1] == "externalId"


def test_club_export_info():
    c = ClubExportInfo.model_validate(
        {
            "clubId": "club-1",
            "applicationId": "idrettsbro",
            "organisationGuid": "5a0b7e2c-1234-4abc-8def-0123456789ab",
            "organisationNumber": "802000-0009",
            "rfAssociationNumber": "12345",
            "exportContacts": True,
        }
    )
    assert c.export_contacts
    with pytest.raises(ValidationError) as exc:
        ClubExportInfo(
            club_id="c",
            application_id="a",
            organisation_guid="nope",
            organisation_number="802000-0007",
            rf_association_number="1",
        )
    locs = {e["loc"][0] for e in exc.value.errors()}
    assert {"organisation_guid", "organisation_number"} <= locs
