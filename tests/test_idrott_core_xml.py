"""XML v1 writer, splitting (self-contained, under the limit, numbered, one BatchId) and the XSD."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from shared.idrott import elements
from shared.idrott import xsd as xsd_module
from shared.idrott.models import Activity, Person
from shared.idrott.xmlrecords import (
    ActivityRecord,
    ContactRecord,
    ParticipantRecord,
    PersonRecord,
    RunHeader,
    SportRecord,
    file_name,
    format_datetime,
)
from shared.idrott.xmlwriter import FileInfo, RecordTooLarge, UnresolvedParticipant, write_run, write_run_to_dir
from shared.idrott.xsd import InvalidExportFile, schema_path, validate_file
from tests.test_idrott_core_personnummer import pnr

ORGNR = "802000-0009"
HEADER = RunHeader(
    application_id="idrettsbro",
    organisation_guid="5a0b7e2c-1234-4abc-8def-0123456789ab",
    organisation_number=ORGNR,
    rf_association_number="12345",
    club_id="club-1",
    batch_id="b-0001",
    created_at=datetime(2024, 3, 1, 3, 0, 5, tzinfo=timezone(timedelta(hours=1))),
    export_contacts=False,
)
T0 = datetime(2024, 3, 4, 17, 0, tzinfo=UTC)


def mk_person(i: int, *, active: bool = True, name: str = "Anna") -> PersonRecord:
    return PersonRecord(
        external_id=f"p{i}",
        first_name=name,
        last_name=f"Svensson{i}",
        gender="female",
        birth_date=date(2010, 1, 1),
        sports=(SportRecord(10, active),),
        nationality="NO",
        contact=ContactRecord(email=f"p{i}@example.se", city="Umeå"),
    )


def mk_activity(i: int, pids) -> ActivityRecord:
    return ActivityRecord(
        activity_id=f"a{i}",
        type_id=1,
        name="Träning & match",
        start_time=T0 + timedelta(days=i % 50),
        end_time=T0 + timedelta(days=i % 50, minutes=90),
        sport_id=10,
        venue_name="Hallen <A>",
        participants=tuple(ParticipantRecord(p, leader=(k == 0)) for k, p in enumerate(pids)),
    )


class Sink:
    def __init__(self):
        self.files: dict[int, bytes] = {}

    def open(self, seq):
        sink = self

        class B(io.BytesIO):
            def close(self):
                sink.files[seq] = self.getvalue()
                super().close()

        return B()


def run(persons, activities, *, header=HEADER, max_bytes=10_000_000, lookup=None):
    sink = Sink()
    infos = write_run(header, persons, activities, max_file_bytes=max_bytes, open_file=sink.open, person_lookup=lookup)
    return infos, sink.files


def check_run(infos: list[FileInfo], files: dict[int, bytes], max_bytes: int, header=HEADER):
    assert [i.sequence for i in infos] == list(range(1, len(infos) + 1))
    for info in infos:
        data = files[info.sequence]
        assert len(data) == info.size <= max_bytes
        assert hashlib.sha256(data).hexdigest() == info.sha256
        assert info.count == len(infos)
        assert info.name == file_name(header, info.sequence, info.count)
        validate_file(data)
        root = etree.fromstring(data)
        assert root.findtext(elements.BATCH_ID) == header.batch_id
        assert root.findtext(elements.FILE_SEQUENCE) == str(info.sequence)
        assert root.findtext(elements.FILE_COUNT) == str(len(infos))
        ids = {p.findtext(elements.EXTERNAL_IDENTIFICATION) for p in root.iterfind("Persons/Person")}
        refs = {p.text for p in root.iterfind("Activities/Activity/Participants/Participant/PersonId")}
        assert refs <= ids  # self-contained
        assert len(root.findall("Persons/Person")) == info.persons
        opts = [a.findtext(elements.OPTION_TYPE) for a in root.iterfind("Activities/Activity")]
        assert opts.count("Insert") == info.activities and opts.count("Delete") == info.deletes


def test_single_file_shape_exactly_as_reference():
    p = mk_person(1)
    infos, files = run([p, mk_person(2)], [mk_activity(1, ["p1", "p2"]), ActivityRecord.delete("old-1")])
    assert len(infos) == 1
    data = files[1]
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')  # the declaration, byte for byte
    root = etree.fromstring(data)
    assert root.getprevious() is None  # nothing between the declaration and the root
    assert root.tag == "Import" and dict(root.attrib) == {"Version": "1"}
    assert root.text is None  # compact: no whitespace before the first child
    assert [c.tag for c in root] == [
        "ApplicationId",
        "OrganisationGuid",
        "OrganisationIdentityNumber",
        "BatchId",
        "FileSequence",
        "FileCount",
        "CreatedAt",
        "Persons",
        "Activities",
    ]
    assert root.findtext("CreatedAt") == "2024-03-01T02:00:05"  # converted to UTC, no zone
    person = root.find("Persons/Person")
    assert [c.tag for c in person] == [
        "ExternalIdentification",
        "OptionType",
        "BirthDate",
        "FirstName",
        "LastName",
        "Gender",
        "Nationality",
        "Organisations",
    ]  # no Contact: the club does not export contacts
    assert person.findtext("OptionType") == "Update"
    org = person.find("Organisations/Organisation")
    assert [c.tag for c in org] == [
        "OptionType",
        "ExternalOrganisationIdentification",
        "OrganisationIdentityNumber",
        "Sports",
    ]
    assert org.findtext("OrganisationIdentityNumber") == ORGNR
    sport = org.find("Sports/Sport")
    assert [(c.tag, c.text) for c in sport] == [("OptionType", "Update"), ("SportID", "10"), ("IsActive", "true")]
    act, delete = root.findall("Activities/Activity")
    assert [c.tag for c in act] == [
        "ActivityId",
        "OptionType",
        "TypeId",
        "Name",
        "StartTime",
        "EndTime",
        "OrganisationNumber",
        "SportID",
        "Venue",
        "Participants",
    ]
    assert act.findtext("OptionType") == "Insert"
    assert act.findtext("StartTime") == "2024-03-05T17:00:00"
    assert act.findtext("Name") == "Träning & match" and act.findtext("Venue/VenueName") == "Hallen <A>"
    part = act.find("Participants/Participant")
    assert [(c.tag, c.text) for c in part] == [
        ("PersonId", "p1"),
        ("Leader", "true"),
        ("Disabled", "false"),
        ("AttendanceStatus", "Attendant"),
    ]
    assert [(c.tag, c.text) for c in delete] == [
        ("ActivityId", "old-1"),
        ("OptionType", "Delete"),
        ("OrganisationNumber", ORGNR),
    ]
    check_run(infos, files, 10_000_000)


def test_contact_only_when_club_exports_contacts():
    h = RunHeader(**{**{f: getattr(HEADER, f) for f in HEADER.__slots__}, "export_contacts": True})
    _infos, files = run([mk_person(1)], [], header=h)
    c = etree.fromstring(files[1]).find("Persons/Person/Contact")
    assert [(x.tag, x.text) for x in c] == [("Email", "p1@example.se"), ("City", "Umeå")]
    validate_file(files[1])


def test_member_who_left_is_inactive_not_deleted():
    p = Person.model_validate(
        {
            "externalId": "p9",
            "personnummer": pnr("20100315", "242"),
            "firstName": "A",
            "lastName": "B",
            "gender": "female",
            "sports": [{"sportId": 10}, {"sportId": 11}],
        }
    )
    rec = PersonRecord.from_model(p, left=True)
    _infos, files = run([rec], [])
    root = etree.fromstring(files[1])
    assert [s.text for s in root.iterfind(".//Sport/IsActive")] == ["false", "false"]
    assert root.findtext(".//PersonalIdentityNumber") == p.personnummer
    assert root.findtext(".//OptionType") == "Update"


def test_models_are_accepted_directly():
    p = Person.model_validate(
        {
            "externalId": "p1",
            "firstName": "A",
            "lastName": "B",
            "gender": "male",
            "birthDate": "2011-02-03",
            "nationality": "DK",
            "sports": [{"sportId": 3}],
        }
    )
    a = Activity.model_validate(
        {
            "activityId": "a1",
            "typeId": 2,
            "name": "Cup",
            "description": "x",
            "startTime": "2024-03-01T10:00:00+01:00",
            "endTime": "2024-03-01T12:00:00+01:00",
            "sportId": 3,
            "venueName": "Plan 1",
            "participants": [{"personId": "p1"}],
        }
    )
    infos, files = run([p], [a])
    check_run(infos, files, 10_000_000)
    assert etree.fromstring(files[1]).findtext(".//StartTime") == "2024-03-01T09:00:00"
    assert ActivityRecord.from_model(a).participants[0].person_id == "p1"


def test_split_self_contained_under_limit_numbered_same_batch():
    persons = [mk_person(i) for i in range(200)]
    lookup = {p.external_id: p for p in persons}
    acts = [mk_activity(i, [f"p{(i * 7 + k) % 200}" for k in range(6)]) for i in range(120)]
    acts += [ActivityRecord.delete(f"gone-{i}") for i in range(30)]
    infos, files = run(persons, acts, max_bytes=20_000, lookup=lookup)
    assert len(infos) > 5
    check_run(infos, files, 20_000)
    assert sum(i.activities for i in infos) == 120 and sum(i.deletes for i in infos) == 30
    assert sum(i.persons for i in infos) >= 200


def test_empty_run_writes_nothing():
    assert run([], []) == ([], {})


def test_deletes_only_file_has_no_persons_section():
    infos, files = run([], [ActivityRecord.delete("x")])
    root = etree.fromstring(files[1])
    assert root.find("Persons") is None and infos[0].deletes == 1
    validate_file(files[1])


def test_unresolved_participant_raises():
    with pytest.raises(UnresolvedParticipant) as exc:
        run([], [mk_activity(1, ["p1", "nobody"])], lookup={"p1": mk_person(1)})
    assert exc.value.person_id == "nobody"


def test_record_too_large():
    with pytest.raises(RecordTooLarge):
        run([mk_person(1)], [], max_bytes=1_000)
    persons = {f"p{i}": mk_person(i) for i in range(40)}
    with pytest.raises(RecordTooLarge):
        run([], [mk_activity(1, list(persons))], max_bytes=5_000, lookup=persons)


def test_naive_datetime_refused():
    with pytest.raises(ValueError, match="naive"):
        format_datetime(datetime(2024, 1, 1))


def test_write_run_to_dir(tmp_path: Path):
    persons = [mk_person(i) for i in range(50)]
    infos = write_run_to_dir(HEADER, persons, [], max_file_bytes=8_000, directory=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(i.name for i in infos)
    assert infos[0].name == f"idrettsbro_12345_20240301T020005Z_1of{len(infos)}.xml"
    for i in infos:
        validate_file(tmp_path / i.name)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_persons=st.integers(0, 40),
    acts=st.lists(st.lists(st.integers(0, 39), min_size=1, max_size=8, unique=True), max_size=30),
    n_deletes=st.integers(0, 5),
    max_bytes=st.integers(9_000, 30_000),
    names=st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"]), min_size=1, max_size=20)
    .map(str.strip)
    .filter(bool),
)
def test_split_invariants(n_persons, acts, n_deletes, max_bytes, names):
    everybody = {f"p{i}": mk_person(i, name=names) for i in range(40)}
    persons = [everybody[f"p{i}"] for i in range(n_persons)]
    activities = [mk_activity(k, [f"p{i}" for i in pids]) for k, pids in enumerate(acts)]
    activities += [ActivityRecord.delete(f"d{k}") for k in range(n_deletes)]
    infos, files = run(persons, activities, max_bytes=max_bytes, lookup=everybody)
    if not persons and not activities:
        assert infos == []
        return
    check_run(infos, files, max_bytes)
    assert sum(i.activities for i in infos) == len(acts)
    assert sum(i.deletes for i in infos) == n_deletes
    written = set()
    for data in files.values():
        written |= {p.text for p in etree.fromstring(data).iterfind("Persons/Person/ExternalIdentification")}
    assert {p.external_id for p in persons} <= written


# --- XSD ------------------------------------------------------------------------------------


def good_file() -> bytes:
    _, files = run([mk_person(1), mk_person(2)], [mk_activity(1, ["p1", "p2"]), ActivityRecord.delete("z")])
    return files[1]


def edited(edit) -> bytes:
    """The good file with one element-level ``edit(root)`` applied, written out again."""
    root = etree.fromstring(good_file())
    validate_file(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))  # unedited: valid
    edit(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def set_text(path: str, text: str):
    """An edit: the text of the first element at ``path`` (which must be there) becomes ``text``."""

    def edit(root) -> None:
        el = root.find(path)
        assert el is not None, path
        el.text = text

    return edit


def remove(path: str):
    """An edit: the first element at ``path`` (which must be there) is removed."""

    def edit(root) -> None:
        el = root.find(path)
        assert el is not None, path
        el.getparent().remove(el)

    return edit


PARTICIPANT = "Activities/Activity/Participants/Participant"


@pytest.mark.parametrize(
    "edit,needle",
    [
        (lambda root: root.set("Version", "2"), "Version"),
        (set_text(f"{PARTICIPANT}[PersonId='p2']/PersonId", "p3"), "ParticipantResolves"),
        (set_text("Persons/Person/Gender", "f"), "Gender"),
        (set_text(".//Sport/IsActive", "1"), "IsActive"),
        (set_text("Activities/Activity/StartTime", "2024-03-05T17:00:00Z"), "StartTime"),
        (set_text("Activities/Activity/TypeId", "10"), "TypeId"),
        (set_text("FileCount", "0"), "FileCount"),
        (set_text("Persons/Person/FirstName", "Anna "), "FirstName"),
        (remove("Activities/Activity/Venue/VenueName"), "Venue"),
        (set_text("Activities/Activity[OptionType='Delete']/OptionType", "Insert"), "Insert needs"),
        (remove("Persons/Person/Nationality"), "Nationality required"),
        (set_text("Persons/Person/Nationality", "SE"), "SE needs"),
        (set_text("FileSequence", "2"), "greater than"),
        # identity constraints: checked on digests while streaming, reported by the schema's own names
        (set_text("Persons/Person[ExternalIdentification='p2']/ExternalIdentification", "p1"), "PersonKey"),
        (set_text("Activities/Activity[OptionType='Delete']/ActivityId", "a1"), "ActivityKey"),
    ],
)
def test_broken_documents_refused(edit, needle):
    with pytest.raises(InvalidExportFile) as exc:
        validate_file(edited(edit))
    assert needle in str(exc.value)


def _exactly_valid(data: bytes) -> bool:
    """The verdict of the schema as written (identity constraints included) and our rules,
    on the whole document: what the streamed pass must agree with."""
    try:
        xsd_module._whole_document_check(data)
    except InvalidExportFile:
        return False
    return True


ID_EDITS = st.lists(
    st.tuples(
        st.sampled_from(
            ["Persons/Person/ExternalIdentification", "Activities/Activity/ActivityId", f"{PARTICIPANT}/PersonId"]
        ),
        st.integers(0, 30),
        st.sampled_from(["p1", "p2", "p3", "p9", "a1", "z"]),
    ),
    max_size=4,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_persons=st.integers(1, 6),
    acts=st.lists(st.lists(st.integers(1, 6), min_size=1, max_size=3, unique=True), max_size=4),
    edits=ID_EDITS,
)
def test_streamed_identity_checks_agree_with_the_schema(n_persons, acts, edits):
    """Invariant: for any file whose person, activity and participant ids are rewritten at random
    (duplicates, dangling references), the streamed pass (identity constraints checked by IdSet)
    accepts exactly the files the schema's own xs:key / xs:unique / xs:keyref accept."""
    persons = [mk_person(i) for i in range(1, n_persons + 1)]
    activities = [mk_activity(k, [f"p{i}" for i in pids if i <= n_persons] or ["p1"]) for k, pids in enumerate(acts)]
    _, files = run(persons, activities)
    root = etree.fromstring(files[1])
    for path, index, value in edits:
        found = root.findall(path)
        if found:
            found[index % len(found)].text = value
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    verdict = _exactly_valid(data)
    event(f"valid={verdict}")
    assert xsd_module._valid_streamed(data) is verdict


def test_truncated_document_refused():
    data = good_file().rstrip()
    assert data.endswith(b"</Import>")
    with pytest.raises(InvalidExportFile, match="well-formed"):
        validate_file(data.removesuffix(b"</Import>"))


def test_personnummer_pattern_in_xsd():
    def add_number(root) -> None:
        number = etree.Element("PersonalIdentityNumber")
        number.text = "20100101-123 "
        root.find("Persons/Person/BirthDate").addprevious(number)

    with pytest.raises(InvalidExportFile, match="PersonalIdentityNumber"):
        validate_file(edited(add_number))


def test_every_element_name_is_in_the_xsd():
    xs = "{http://www.w3.org/2001/XMLSchema}"
    declared = {e.get("name") for e in etree.parse(str(schema_path())).iter(f"{xs}element") if e.get("name")}
    assert elements.all_element_names() == declared
