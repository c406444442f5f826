"""What a run remembers of what it sent (issue 11): one write per exported record, and the pending
set always matches what the server has.

Against Azurite (``storage``) and the in-process SFTP server, through ``export_club``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from shared import sftp
from shared.idrott import export
from shared.idrott.models import Activity, Person
from shared.idrott.store import ClubRecords
from shared.tables_contract import plan_batches
from tests import test_idrott_export_hardening
from tests.idrott_support import (
    activity,
    person,
    persons_by_id,
    register_club,
    still_pending,
    xml_root,
)

srv = test_idrott_export_hardening.srv  # the same fixture: Azurite, the SFTP server, no retry waits


# ---- counting what reaches storage ---------------------------------------------------------------
class _CountingTable:
    """A table that counts write operations (an operation inside a transaction counts once),
    transactions, and point reads and single writes per table (``get <table>``, ``write <table>``),
    then delegates."""

    _SINGLE = ("insert", "create", "upsert", "update", "delete")

    def __init__(self, inner: Any, counts: Counter[str], name: str) -> None:
        self._inner, self._counts, self._name = inner, counts, name

    def get(self, *a: Any, **kw: Any) -> Any:
        self._counts[f"get {self._name}"] += 1
        return self._inner.get(*a, **kw)

    def submit(self, operations):
        ops = list(operations)
        self._counts["write_ops"] += len(ops)
        self._counts["transactions"] += len(plan_batches(ops))
        return self._inner.submit(ops)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in self._SINGLE:

            def counted(*a: Any, **kw: Any) -> Any:
                self._counts["write_ops"] += 1
                self._counts["transactions"] += 1
                self._counts[f"write {self._name}"] += 1
                return attr(*a, **kw)

            return counted
        return attr


@contextmanager
def counting(monkeypatch) -> Iterator[Counter[str]]:
    """Count every write of the process-wide store (records, state, lock, ledger) while inside."""
    from shared import tables

    real = tables.get_table_store()
    counts: Counter[str] = Counter()

    class _Store:
        def table(self, name: str, *, chunked: bool = False) -> Any:
            return _CountingTable(real.table(name, chunked=chunked), counts, name)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    with monkeypatch.context() as m:
        m.setattr(tables, "get_table_store", lambda: _Store())
        yield counts


def _club(n_persons: int, n_activities: int) -> ClubRecords:
    rec = ClubRecords("club1")
    ps = [person(f"p{i}", year=2000 + i // 400, serial=2 * (i % 400) + 1) for i in range(n_persons)]
    assert rec.upsert_persons([Person.model_validate(p) for p in ps]) == []
    acts = [activity(f"a{i}", [f"p{(5 * i + k) % n_persons}" for k in range(5)]) for i in range(n_activities)]
    rec.upsert_activities([Activity.model_validate(a) for a in acts])
    return rec


def test_a_full_load_costs_about_one_write_per_exported_record(srv, monkeypatch):
    club = register_club("club1", srv)
    rec = _club(300, 60)
    with counting(monkeypatch) as counts:
        r = export.export_club(club)
    assert r.status == "succeeded", r.error
    exported = r.persons + r.activities
    assert exported == 360
    # records, plus a constant for the lock, the state and the ledger rows
    assert counts["write_ops"] / exported <= 1.1, counts
    assert counts["transactions"] <= exported / 100 + 15, counts
    assert rec.dirty_markers() == [] and still_pending(rec) == set()


def test_a_delta_run_costs_two_writes_per_changed_record_in_one_transaction(srv, monkeypatch):
    club = register_club("club1", srv)
    rec = _club(50, 5)
    assert export.export_club(club).status == "succeeded"
    changed = [Person.model_validate(person(f"p{i}", year=2000, serial=2 * i + 1, first="Ny")) for i in range(20)]
    assert rec.upsert_persons(changed) == []
    with counting(monkeypatch) as counts:
        r = export.export_club(club)
    assert (r.status, r.persons) == ("succeeded", 20)
    # per record: its exported hash and its marker's delete, in the same transaction
    assert counts["write_ops"] <= 2 * 20 + 10, counts
    assert still_pending(rec) == set()


def test_the_ledger_row_is_written_when_the_run_knows_its_files_and_at_its_end(srv, monkeypatch):
    """A run that sends one file writes its ledger row three times (running with the planned file,
    the file confirmed, the end); a run with nothing to send once, at its end."""
    from shared.idrott import ledger, state

    club = register_club("club1", srv)
    rec = _club(10, 2)
    assert export.export_club(club).status == "succeeded"
    assert rec.upsert_persons([Person.model_validate(person("p1", year=2000, serial=3, first="Ny"))]) == []
    with counting(monkeypatch) as counts:
        r = export.export_club(club)
    assert (r.status, len(r.files)) == ("succeeded", 1), r.error
    assert counts[f"write {ledger.RUNS_TABLE}"] == 3, counts
    with counting(monkeypatch) as counts:
        assert export.export_club(club).status == "empty"
    assert counts[f"write {ledger.RUNS_TABLE}"] == 1, counts
    # and no dirty marker: no CreatedAt reserved, only the lock taken and given back
    assert counts[f"write {state.STATE_TABLE}"] == 2, counts
    assert [x.status for x in ledger.list_runs("club1")] == ["empty", "succeeded", "succeeded"]


@pytest.mark.parametrize("scan_needed", [False, True])
def test_a_run_reads_the_club_state_once(srv, monkeypatch, scan_needed):
    """The state row read at the start decides whether the run reads the whole club: the
    selection does not read it again. With ``scan_needed`` set (a run that read the whole club
    died before its commit), the run still reads the whole club and clears it."""
    from shared.idrott import state

    club = register_club("club1", srv)
    rec = _club(30, 3)
    assert export.export_club(club).status == "succeeded"
    if scan_needed:
        state.state_table().upsert({"PartitionKey": "club1", "RowKey": state.STATE_ROW, "scan_needed": True})
    # a change without a marker: only a run that reads the whole club finds it
    rec.t.upsert({"PartitionKey": "club1", "RowKey": "P|p3", "exported_hash": "stale"})
    assert rec.upsert_persons([Person.model_validate(person("p1", year=2000, serial=3, first="Ny"))]) == []
    with counting(monkeypatch) as counts:
        r = export.export_club(club)
    assert r.status == "succeeded", r.error
    assert counts[f"get {state.STATE_TABLE}"] == 1, counts
    assert r.persons == (2 if scan_needed else 1)
    assert not state.read_state("club1").get("scan_needed")


# ---- the invariant under random interleavings ------------------------------------------------------
def _pending(rec: ClubRecords) -> set[tuple[str, str]]:
    """What the next run sends as changes (a marker may also name a record re-sent unchanged, so
    this does not use ``still_pending``'s check that every marker names one)."""
    from datetime import UTC, datetime

    sel = rec.select(full_load=False, today=datetime.now(UTC).date())
    return {("person", p.external_id) for p in sel.persons}


def _view(p: dict, active: bool) -> tuple[str, bool]:
    return p["firstName"], active


def _server_view(element: Any) -> tuple[str, bool]:
    active = [s.text for s in element.iter("IsActive")]
    return element.findtext("FirstName"), "true" in active


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pending_is_exactly_what_the_server_lacks_after_any_interleaving(srv, monkeypatch, seed):
    """Intake changes (new content, identical content, leaving, rejoining) and runs (succeeding,
    failing at the upload, or with a change arriving while the files are uploaded) in random
    order: after every step, a record is pending exactly when the server lacks its current
    content; a record confirmed on the server is never pending."""
    rnd = random.Random(seed)
    club = register_club("club1", srv)
    rec = ClubRecords("club1")
    ids = [f"p{i}" for i in range(8)]
    current: dict[str, tuple[dict, bool]] = {}  # id -> (intake JSON, active)
    on_server: dict[str, tuple[str, bool]] = {}  # id -> view the server last received
    real_upload = sftp.upload_files

    def intake(pid: str) -> None:
        data = person(pid, serial=2 * ids.index(pid) + 1, first=rnd.choice(["Alva", "Ebba", "Maja"]))
        assert rec.upsert_persons([Person.model_validate(data)]) == []
        current[pid] = (data, True)

    def leave(pid: str) -> None:
        if pid in current and current[pid][1]:
            assert rec.mark_person_left(pid) == "left"
            current[pid] = (current[pid][0], False)

    def run(mode: str) -> None:
        def failing(*_a: Any, **_k: Any) -> Any:
            raise sftp.SftpRefused("the server refuses (test)")

        def change_during(*a: Any, **kw: Any) -> Any:
            out = real_upload(*a, **kw)
            intake(rnd.choice(ids))  # after the files are on the server, before the commit
            return out

        with monkeypatch.context() as m:
            if mode == "fail":
                m.setattr(sftp, "upload_files", failing)
            elif mode == "change":
                m.setattr(sftp, "upload_files", change_during)
            r = export.export_club(club)
        if mode == "fail":
            assert r.status in ("failed", "empty"), r.error
            return
        assert r.status in ("succeeded", "empty"), r.error
        for f in r.files:
            assert f["uploaded"]
            for pid, el in persons_by_id(xml_root(srv.root / f["name"])).items():
                on_server[pid] = _server_view(el)

    for _ in range(30):
        step = rnd.choice(["intake", "intake", "same", "leave", "run", "run", "fail", "change"])
        pid = rnd.choice(ids)
        if step == "intake":
            intake(pid)
        elif step == "same" and pid in current and current[pid][1]:
            assert rec.upsert_persons([Person.model_validate(current[pid][0])]) == []  # identical
        elif step == "leave":
            leave(pid)
        elif step in ("run", "fail", "change"):
            run({"run": "ok"}.get(step, step))
        expected = {
            ("person", p)
            for p, (data, active) in current.items()
            if (p in on_server or active) and on_server.get(p) != _view(data, active)
        }
        assert _pending(rec) == expected, step
        confirmed = {p for p, (data, active) in current.items() if on_server.get(p) == _view(data, active)}
        assert not confirmed & {p for _, p in expected}
