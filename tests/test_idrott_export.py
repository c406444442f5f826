"""Export orchestration against Azurite and the real asyncssh SFTP server."""

from __future__ import annotations

import logging
import threading
from datetime import UTC

import pytest

from shared import sftp
from shared.idrott import export, ledger, lock, state
from shared.idrott.models import Activity, Person
from shared.idrott.store import ClubRecords
from tests.idrott_support import (
    SFTP_PASSWORD,
    activities_by_id,
    activity,
    participant_ids,
    person,
    persons_by_id,
    register_club,
    still_pending,
    xml_files,
    xml_root,
)
from tests.support import run_in_threads, wait_for


@pytest.fixture
def srv(rf_sftp):
    return rf_sftp


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setattr(sftp, "RETRY_BACKOFF_SECONDS", (0.0,))


def _seed(club_id: str, n_persons: int = 4) -> ClubRecords:
    rec = ClubRecords(club_id)
    persons = [person(f"p{i}", serial=i + 1, female=bool(i % 2)) for i in range(n_persons)]
    persons.append(person("lead", year=1990, serial=77, first="Leo"))
    rec.upsert_persons([Person.model_validate(p) for p in persons])
    rec.upsert_activities([Activity.model_validate(activity("a1", [f"p{i}" for i in range(n_persons)], leader="lead"))])
    return rec


def test_first_run_full_load_then_nothing(srv):
    club = register_club("club1", srv)
    _seed("club1")
    r = export.export_club(club, trigger="test")
    assert r.status == "succeeded", r.error
    assert r.full_load and r.persons == 5 and r.activities == 1 and r.deletes == 0
    files = xml_files(srv.root)
    assert [f.name for f in files] == [f["name"] for f in r.files]
    assert r.files[0]["uploaded"] and r.files[0]["size"] == files[0].stat().st_size
    assert not list(srv.root.glob("*.part"))
    r2 = export.export_club(club, trigger="test")
    assert r2.status == "empty" and not r2.full_load
    runs = ledger.list_runs("club1")
    assert [x.status for x in runs] == ["empty", "succeeded"]  # newest first


def test_a_delta_run_logs_in_while_it_prepares_its_files(srv, monkeypatch):
    """A delta run with changes opens its connection before it writes its files (the server's
    login delay overlaps the run's own work), and the upload uses that one connection."""
    club = register_club("club1", srv)
    rec = _seed("club1")
    assert export.export_club(club).status == "succeeded"  # the full load
    before = srv.connections
    rec.upsert_persons([Person.model_validate(person("p1", serial=2, female=True, first="Ebba"))])
    srv.auth_latency = 0.3
    logging_in: list[bool] = []
    real_build = export.build_files

    def build_files(*a, **kw):
        logging_in.append(wait_for(lambda: srv.connections == before + 1))
        return real_build(*a, **kw)

    monkeypatch.setattr(export, "build_files", build_files)
    r = export.export_club(club)
    assert (r.status, r.persons) == ("succeeded", 1), r.error
    assert logging_in == [True] and srv.connections == before + 1
    assert wait_for(lambda: not srv._conns)


def test_a_delta_run_with_many_changes_connects_when_its_files_are_ready(srv, monkeypatch):
    """Above ``CONNECT_AHEAD_MAX_MARKERS`` the preparation is long, so the connection would idle
    through it: such a run connects after its files are written, as a full load does."""
    club = register_club("club1", srv)
    rec = _seed("club1")
    assert export.export_club(club).status == "succeeded"
    before = srv.connections
    rec.upsert_persons(
        [Person.model_validate(person(f"p{i}", serial=i + 1, female=bool(i % 2), first="Ny")) for i in (0, 1)]
    )
    monkeypatch.setattr(export, "CONNECT_AHEAD_MAX_MARKERS", 1)
    ahead: list[object] = []
    real_connecting = sftp.Connecting
    monkeypatch.setattr(sftp, "Connecting", lambda *a, **kw: ahead.append(a) or real_connecting(*a, **kw))
    r = export.export_club(club)
    assert (r.status, r.persons) == ("succeeded", 2), r.error
    assert ahead == [] and srv.connections == before + 1
    monkeypatch.setattr(export, "CONNECT_AHEAD_MAX_MARKERS", 2)  # at the cap: ahead again
    rec.upsert_persons(
        [Person.model_validate(person(f"p{i}", serial=i + 1, female=bool(i % 2), first="Nyare")) for i in (0, 1)]
    )
    assert export.export_club(club).status == "succeeded"
    assert len(ahead) == 1 and srv.connections == before + 2


def test_a_run_with_nothing_to_send_leaves_no_connection_open(srv):
    """No dirty marker: no connection at all. A marker that names an unchanged record: the
    connection opened ahead is closed unused, and nothing reaches the server."""
    from shared.idrott.rows import P

    club = register_club("club1", srv)
    rec = _seed("club1")
    assert export.export_club(club).status == "succeeded"
    files, before = sorted(p.name for p in srv.root.iterdir()), srv.connections
    assert export.export_club(club).status == "empty" and srv.connections == before
    unchanged = rec.t.get("club1", P + "p1")
    rec.t.submit([rec._marker(P, "p1", unchanged["exported_hash"])])
    r = export.export_club(club)
    assert r.status == "empty" and srv.connections == before + 1
    assert wait_for(lambda: not srv._conns)
    assert sorted(p.name for p in srv.root.iterdir()) == files
    assert rec.dirty_markers() == []


def test_delta_sends_only_change_with_referenced_persons(srv):
    club = register_club("club1", srv)
    rec = _seed("club1")
    assert export.export_club(club).status == "succeeded"
    changed = person("p1", serial=2, female=True, first="Ebba")
    rec.upsert_persons([Person.model_validate(changed)])
    r = export.export_club(club)
    assert (r.status, r.persons, r.activities) == ("succeeded", 1, 0)
    # an activity change carries its participants (unchanged persons) for a self-contained file
    rec.upsert_activities([Activity.model_validate(activity("a2", ["p0", "p2"], leader="lead"))])
    r = export.export_club(club)
    assert (r.status, r.persons, r.activities) == ("succeeded", 0, 1)
    root = xml_root(max(srv.root.glob("*.xml")))
    assert set(activities_by_id(root)) == {"a2"}
    assert set(persons_by_id(root)) == {"p0", "p2", "lead"} == set(participant_ids(root))


def test_same_content_again_is_not_resent(srv):
    club = register_club("club1", srv)
    rec = _seed("club1")
    export.export_club(club)
    rec.upsert_persons([Person.model_validate(person("p0", serial=1))])  # identical content
    assert export.export_club(club).status == "empty"
    assert rec.dirty_markers() == []


def test_left_member_and_deleted_activity(srv):
    club = register_club("club1", srv)
    rec = _seed("club1")
    export.export_club(club)
    assert rec.mark_person_left("p2")
    assert rec.delete_activity("a1")
    r = export.export_club(club)
    assert (r.status, r.persons, r.deletes) == ("succeeded", 1, 1)
    newest = xml_root(max(srv.root.glob("*.xml"), key=lambda p: p.stat().st_mtime_ns))
    (left,) = persons_by_id(newest).values()
    assert left.findtext("ExternalIdentification") == "p2"
    assert [s.text for s in newest.iter("IsActive")] == ["false"]  # p2's one sport, inactive; nothing else
    assert [(a.findtext("ActivityId"), a.findtext("OptionType")) for a in activities_by_id(newest).values()] == [
        ("a1", "Delete")
    ]
    assert export.export_club(club).status == "empty"


def test_never_exported_tombstones_are_not_sent(srv):
    club = register_club("club1", srv)
    rec = _seed("club1")
    rec.upsert_persons([Person.model_validate(person("gone", serial=40))])
    rec.mark_person_left("gone")
    r = export.export_club(club)
    assert r.persons == 5  # "gone" is not in the first load


def test_pinned_key_mismatch_fails_run_and_keeps_state(srv, tmp_path):
    from devtools.sftp_server import SftpServer

    club = register_club("club1", srv)
    _seed("club1")
    from shared.clubs import ClubIn, put_club

    body = club.model_dump(by_alias=True, exclude={"club_id", "created_at", "updated_at"})
    body["sftpHostKey"] = SftpServer(tmp_path / "other").host_key_line
    club, _ = put_club("club1", ClubIn.model_validate(body))
    r = export.export_club(club)
    assert r.status == "failed" and "HostKeyRejected" in r.error and "pins" in r.error
    assert xml_files(srv.root) == []
    assert ledger.list_runs("club1")[0].status == "failed"
    assert not state.full_load_done("club1")


def test_drop_mid_upload_then_next_run_delivers_same_records(srv, caplog):
    caplog.set_level(logging.INFO)
    club = register_club("club1", srv)
    rec = _seed("club1")
    srv.drop_connection_after(200, times=100)  # every attempt dies mid-file
    r = export.export_club(club)
    assert r.status == "failed" and "SftpTransientError" in r.error
    assert xml_files(srv.root) == []  # nothing under its final name
    runs = ledger.list_runs("club1")
    assert runs[0].status == "failed" and runs[0].error and runs[0].files[0]["uploaded"] is False
    assert not state.full_load_done("club1")
    assert "export.failed club_id=club1 " in caplog.text  # matched by the deploy guide's queries
    # exported state unchanged: all six records still pending
    assert still_pending(rec) == {("person", f"p{i}") for i in range(4)} | {("person", "lead"), ("activity", "a1")}
    assert all(p.exported_hash is None for p in rec.all_persons())
    srv.drop_connection_after(0, times=0)  # disarm
    srv.faults.remaining = 0
    r2 = export.export_club(club)
    assert r2.status == "succeeded" and r2.full_load
    assert "export.succeeded club_id=club1 " in caplog.text
    assert (r2.persons, r2.activities) == (r.persons, r.activities)
    assert [f["sha256"] for f in r2.files] != [] and xml_files(srv.root)[0].name == r2.files[0]["name"]
    assert rec.dirty_markers() == []


def test_change_during_run_goes_in_next_run(srv, monkeypatch):
    club = register_club("club1", srv)
    rec = _seed("club1")
    real_upload = sftp.upload_files

    def upload_and_change(*a, **kw):
        out = real_upload(*a, **kw)
        rec.upsert_persons([Person.model_validate(person("p3", serial=4, female=True, first="Changed"))])
        return out

    monkeypatch.setattr(sftp, "upload_files", upload_and_change)
    assert export.export_club(club).status == "succeeded"
    monkeypatch.setattr(sftp, "upload_files", real_upload)
    r = export.export_club(club)
    assert (r.status, r.persons) == ("succeeded", 1)


def test_split_files_are_self_contained(srv, env):
    env.set(SFTP_PASSWORD_TEST=SFTP_PASSWORD, IDROTTONLINE_MAX_FILE_BYTES=10_000)
    club = register_club("club1", srv)
    rec = ClubRecords("club1")
    # odd serials: 30 distinct (male) personnummer, so intake stores all 30 persons
    refused = rec.upsert_persons([Person.model_validate(person(f"p{i}", serial=2 * i + 1)) for i in range(30)])
    assert not refused
    rec.upsert_activities([Activity.model_validate(activity(f"a{i}", [f"p{i}", f"p{i + 1}"])) for i in range(0, 28, 2)])
    r = export.export_club(club)
    assert r.status == "succeeded", r.error
    assert r.persons == 30
    files = xml_files(srv.root)
    assert len(files) == len(r.files) > 1
    from lxml import etree

    batch = set()
    for f in files:
        assert f.stat().st_size <= 10_000
        root = etree.parse(str(f)).getroot()
        batch.add(root.findtext("BatchId"))
        ids = {p.findtext("ExternalIdentification") for p in root.iter("Person")}
        for pid in root.iter("PersonId"):
            assert pid.text in ids
    assert batch == {r.batch_id}


def test_concurrent_runs_one_skips(srv, monkeypatch, caplog):
    club = register_club("club1", srv)
    _seed("club1")
    inside, release = threading.Event(), threading.Event()
    real_upload = sftp.upload_files

    def slow_upload(*a, **kw):
        inside.set()
        assert release.wait(20)
        return real_upload(*a, **kw)

    monkeypatch.setattr(sftp, "upload_files", slow_upload)
    results = {}
    t = threading.Thread(target=lambda: results.setdefault("a", export.export_club(club)))
    t.start()
    assert inside.wait(20)
    caplog.set_level(logging.INFO, logger="shared.idrott.export")
    results["b"] = export.export_club(club)
    release.set()
    t.join(30)
    assert results["a"].status == "succeeded"
    assert results["b"].status == "skipped"
    assert "skipped" in caplog.text and "holds the export lock" in caplog.text
    assert [r.status for r in ledger.list_runs("club1")] == ["succeeded"]


def test_lock_expiry_and_takeover(storage):
    from datetime import datetime, timedelta

    etag_a, _ = lock.acquire_lock("c9", "run-a", 60)
    assert etag_a
    ok, holder = lock.acquire_lock("c9", "run-b", 60)
    assert not ok and holder.owner == "run-a"
    later = datetime.now(UTC) + timedelta(seconds=61)  # run-a's lock has expired by then
    etag_b, _ = lock.acquire_lock("c9", "run-b", 60, now=lambda: later)
    assert etag_b and etag_b != etag_a
    lock.release_lock("c9", "run-a", etag_a)  # its lease was taken over: no effect
    lock.release_lock("c9", "run-a")  # nor without the ETag (not the owner)
    ok, holder = lock.acquire_lock("c9", "run-c", 60, now=lambda: later)
    assert not ok and holder.owner == "run-b"
    lock.release_lock("c9", "run-b", etag_b)
    ok, _ = lock.acquire_lock("c9", "run-c", 60, now=lambda: later)
    assert ok  # released: free for the next run


def test_release_with_the_etag_is_one_storage_call(storage, monkeypatch):
    """Giving the lock back costs one conditional delete, not a read and a delete."""
    from shared.idrott import state

    etag, _ = lock.acquire_lock("c8", "run-a", 60)
    calls: list[str] = []
    table = state.state_table()
    for name in ("get", "delete"):
        real = getattr(table, name)
        monkeypatch.setattr(table, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    monkeypatch.setattr(state, "state_table", lambda: table)
    lock.release_lock("c8", "run-a", etag)
    assert calls == ["delete"]
    assert lock.acquire_lock("c8", "run-b", 60)[0]


def test_lock_race_exactly_one_winner(storage):
    barrier = threading.Barrier(8)
    wins = []

    def contend(i):
        barrier.wait()
        ok, _ = lock.acquire_lock("race", f"run-{i}", 60)
        if ok:
            wins.append(i)

    run_in_threads(contend, 8)
    assert len(wins) == 1


def test_invalid_file_is_refused_before_upload(srv, monkeypatch):
    club = register_club("club1", srv)
    _seed("club1")
    from shared.idrott import xmlwriter

    real = xmlwriter.header_bytes
    monkeypatch.setattr(
        xmlwriter, "header_bytes", lambda h, s, c: real(h, s, c).replace(b"<BatchId>", b"<Bogus/><BatchId>")
    )
    r = export.export_club(club)
    assert r.status == "failed" and "InvalidExportFile" in r.error
    assert xml_files(srv.root) == [] and srv.connections == 0


def test_personnummer_and_password_not_in_logs(srv, caplog, sensitive):
    caplog.set_level(logging.DEBUG)
    club = register_club("club1", srv)
    _seed("club1")
    srv.drop_connection_after(100, times=1)
    assert export.export_club(club).status == "succeeded"
    assert SFTP_PASSWORD not in caplog.text
