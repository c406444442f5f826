"""The nightly fan-out and the export worker against Azurite's tables and queues and the real SFTP
server (the handlers called directly; tests/test_queue_poller.py and tests/test_idrott_api.py run
them through Microsoft's runtime)."""

from __future__ import annotations

import itertools
import json
import logging
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.config import get_settings
from shared.idrott import fanout, ledger, nights, poison, slots, worker
from shared.idrott.models import Activity, Person
from shared.idrott.store import ClubRecords
from shared.idrott.workitem import WorkItem, parse_work_item
from shared.queues import poison_name
from tests.idrott_support import activity, person, register_club, xml_files
from tests.support import run_in_threads

NIGHT_AT = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)  # 02:00 in Stockholm
NIGHT = date(2026, 12, 2)


@pytest.fixture
def srv(rf_sftp, queues):
    return rf_sftp


def _seed(club_id: str) -> None:
    rec = ClubRecords(club_id)
    rec.upsert_persons([Person.model_validate(person(f"{club_id}-p{i}", serial=i + 1)) for i in range(3)])
    rec.upsert_activities([Activity.model_validate(activity("a1", [f"{club_id}-p{i}" for i in range(3)]))])


def _queue():
    return fanout.export_queue()


def _poison():
    from shared.queues import get_queue_store

    return get_queue_store().queue(poison_name(get_settings().IDROTTONLINE_EXPORT_QUEUE))


def _items(queue) -> list[WorkItem]:
    """Every visible item of ``queue`` (peeked, left in place)."""
    return [item for m in queue.peek() if (item := parse_work_item(m.content)) is not None]


def _work_off(now=lambda: NIGHT_AT) -> dict[str, str]:
    """Deliver every visible export message to the worker as the host would (delete on success)."""
    outcomes: dict[str, str] = {}
    q = _queue()
    while batch := q.receive(32, visibility_timeout=60):
        for msg in batch:
            club = json.loads(msg.content).get("clubId", "?") if msg.content.startswith("{") else "?"
            try:
                outcomes[club] = worker.handle_work_item(
                    msg.content, message_id=msg.id, dequeue_count=msg.dequeue_count, now=now
                )
            except worker.ExportRunFailed:
                outcomes[club] = "raised"
                continue  # the host would make it visible again after visibilityTimeout
            q.delete(msg)
    return outcomes


# --- the timer ------------------------------------------------------------------------------------
def test_the_timer_enqueues_one_item_per_enabled_swedish_club_and_exports_nothing(srv):
    for cid in ("c1", "c2"):
        register_club(cid, srv)
        _seed(cid)
    register_club("off", srv, enabled=False)
    done = fanout.fan_out(now=lambda: NIGHT_AT)
    assert sorted(done.enqueued) == ["c1", "c2"] and done.night == NIGHT
    items = _items(_queue())
    assert sorted(i.club_id for i in items) == ["c1", "c2"]
    assert {(i.reason, i.night) for i in items} == {("timer", NIGHT)}
    assert xml_files(srv.root) == []  # the timer only fans out
    assert {r["RowKey"]: r["status"] for r in nights.list_night(NIGHT)} == {"c1": "queued", "c2": "queued"}


_examples = itertools.count()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(firings=st.lists(st.sampled_from(["timer", "work"]), min_size=1, max_size=5))
def test_a_timer_that_fires_again_never_exports_a_club_twice_a_night(srv, firings):
    """Invariant: whatever the interleaving of timer firings and worker deliveries within one night,
    each club is exported exactly once that night and ends with a roll-call row saying so."""
    from shared.clubs import get_club, put_club

    n = next(_examples)
    old = [c.club_id for c in fanout_clubs()]
    for cid in old:  # clubs of earlier examples: disabled, so they are not rolled again
        club = get_club(cid)
        assert club is not None
        put_club(cid, club.model_copy(update={"enabled": False}))
    clubs = [f"x{n}a", f"x{n}b"]
    for cid in clubs:
        register_club(cid, srv)
        _seed(cid)
    night = NIGHT + timedelta(days=n)
    at = NIGHT_AT + timedelta(days=n)
    for step in [*firings, "timer", "work"]:
        if step == "timer":
            fanout.fan_out(now=lambda: at)
        else:
            _work_off(now=lambda: at)
    runs = [r for cid in clubs for r in ledger.list_runs(cid)]
    assert sorted(r.club_id for r in runs) == clubs and {r.status for r in runs} == {"succeeded"}
    assert {r["RowKey"]: r["status"] for r in nights.list_night(night)} == dict.fromkeys(clubs, "succeeded")


def fanout_clubs():
    from shared.clubs import list_enabled_clubs

    return list_enabled_clubs("SE")


def test_a_club_that_cannot_be_enqueued_never_stops_the_others(srv, monkeypatch, caplog):
    """Clubs are enqueued several at a time: one whose roll-call claim fails is logged and named,
    every other club gets exactly one item, and the next firing enqueues the one that failed."""
    clubs = [f"c{i}" for i in range(1, 21)]
    for cid in clubs:
        register_club(cid, srv)
    real_claim = nights.claim

    def claim(night, club_id, **kw):
        if club_id == "c7":
            raise OSError("storage refused the claim")
        return real_claim(night, club_id, **kw)

    monkeypatch.setattr(nights, "claim", claim)
    with caplog.at_level(logging.ERROR), pytest.raises(fanout.EnqueueFailed):
        fanout.fan_out(now=lambda: NIGHT_AT)
    assert "export.enqueue_failed club_id=c7" in caplog.text
    items = sorted(i.club_id for i in _items(_queue()))
    assert items == sorted(c for c in clubs if c != "c7")
    monkeypatch.setattr(nights, "claim", real_claim)
    again = fanout.fan_out(now=lambda: NIGHT_AT)
    assert again.enqueued == ["c7"] and sorted(again.already) == sorted(c for c in clubs if c != "c7")
    assert sorted(i.club_id for i in _items(_queue())) == sorted(clubs)


def test_a_claim_the_timer_did_not_send_is_sent_by_the_next_firing(srv):
    register_club("c1", srv)
    nights.claim(NIGHT, "c1", now=lambda: NIGHT_AT)  # the timer died after the claim
    assert fanout.fan_out(now=lambda: NIGHT_AT + timedelta(minutes=1)).already == ["c1"]
    assert _items(_queue()) == []
    later = fanout.fan_out(now=lambda: NIGHT_AT + fanout.RESEND_AFTER + timedelta(seconds=1))
    assert later.enqueued == ["c1"] and [i.club_id for i in _items(_queue())] == ["c1"]


def test_the_timer_writes_a_clubs_row_only_for_a_club_rolled_for_the_first_time(srv, monkeypatch):
    """``firstNight`` is written once per club: a later night's fan-out writes no ``clubs`` row for
    the clubs it already knows, only for a club registered since."""
    register_club("c1", srv)
    fanout.fan_out(now=lambda: NIGHT_AT)
    register_club("c2", srv)
    table = nights._table()
    writes: list[tuple[str, str]] = []
    for name in ("insert", "upsert", "update"):
        real = getattr(table, name)

        def spy(entity, *a, _real=real, **k):
            writes.append((entity["PartitionKey"], entity["RowKey"]))
            return _real(entity, *a, **k)

        monkeypatch.setattr(table, name, spy)
    monkeypatch.setattr(nights, "_table", lambda: table)
    tomorrow = NIGHT + timedelta(days=1)
    assert sorted(fanout.fan_out(now=lambda: NIGHT_AT + timedelta(days=1)).enqueued) == ["c1", "c2"]
    assert [w for w in writes if w[0] == nights.CLUBS_PARTITION] == [(nights.CLUBS_PARTITION, "c2")]
    rows = nights.club_rows()
    assert (rows["c1"]["firstNight"], rows["c2"]["firstNight"]) == (NIGHT.isoformat(), tomorrow.isoformat())


# --- the worker -----------------------------------------------------------------------------------
def test_the_worker_exports_one_club_per_message_and_records_the_night(srv):
    for cid in ("c1", "c2"):
        register_club(cid, srv)
        _seed(cid)
    fanout.fan_out(now=lambda: NIGHT_AT)
    assert _work_off() == {"c1": "succeeded", "c2": "succeeded"}
    assert len(xml_files(srv.root)) == 2
    rows = {r["RowKey"]: r for r in nights.list_night(NIGHT)}
    assert {k: r["status"] for k, r in rows.items()} == {"c1": "succeeded", "c2": "succeeded"}
    assert all(r["batchId"] and r["attempts"] == 1 for r in rows.values())
    assert nights.overdue(["c1", "c2"], NIGHT + timedelta(days=2), 2) == []  # lastOkNight advanced to NIGHT
    late = nights.overdue(["c1", "c2"], NIGHT + timedelta(days=3), 2)
    assert [(o.club_id, o.last_ok_night, o.nights) for o in late] == [("c1", NIGHT, 2), ("c2", NIGHT, 2)]


def test_a_manual_export_of_every_club_names_who_asked_on_each_run(srv):
    """POST /api/idrottonline/export runs inside the caller's context: each work item carries the
    caller's attribution, and the worker (a queue invocation, no caller) stores it on the run."""
    from shared.auth.guard import _caller
    from shared.auth.policy import Caller

    for cid in ("c1", "c2"):
        register_club(cid, srv)
        _seed(cid)
    staff = Caller("token", clubs=None, admin=True, subject="staff-9", client_id="local-frontend")
    token = _caller.set(staff)
    try:
        assert sorted(fanout.enqueue_all(now=lambda: NIGHT_AT).enqueued) == ["c1", "c2"]
    finally:
        _caller.reset(token)
    who = {"actorKind": "token", "actorSubject": "staff-9", "actorClientId": "local-frontend"}
    assert [i.actor for i in _items(_queue())] == [who, who]
    assert _work_off() == {"c1": "succeeded", "c2": "succeeded"}
    for cid in ("c1", "c2"):
        (run,) = ledger.list_runs(cid)
        assert run.trigger == "manual" and run.actor == who


def test_the_timers_work_items_name_no_actor(srv):
    register_club("c1", srv)
    fanout.fan_out(now=lambda: NIGHT_AT)
    assert [i.actor for i in _items(_queue())] == [None]


def test_a_duplicate_delivery_after_success_exports_nothing(srv):
    register_club("c1", srv)
    _seed("c1")
    fanout.fan_out(now=lambda: NIGHT_AT)
    body = _queue().peek()[0].content
    assert _work_off() == {"c1": "succeeded"}
    assert worker.handle_work_item(body, message_id="again", now=lambda: NIGHT_AT) == "duplicate"
    assert len(ledger.list_runs("c1")) == 1


def test_a_failing_club_raises_for_a_retry_and_does_not_block_the_others(srv, tmp_path):
    from devtools.sftp_server import SftpServer
    from shared.clubs import ClubIn, put_club

    register_club("good", srv)
    bad = register_club("bad", srv)
    body = bad.model_dump(by_alias=True, exclude={"club_id", "created_at", "updated_at"})
    body["sftpHostKey"] = SftpServer(tmp_path / "x").host_key_line  # a key the server does not have
    put_club("bad", ClubIn.model_validate(body))
    for cid in ("good", "bad"):
        _seed(cid)
    fanout.fan_out(now=lambda: NIGHT_AT)
    assert _work_off() == {"good": "succeeded", "bad": "raised"}
    rows = {r["RowKey"]: r for r in nights.list_night(NIGHT)}
    assert rows["bad"]["status"] == "failed" and rows["bad"]["errorCode"] == "sftp-host-key-rejected"
    assert [r.status for r in ledger.list_runs("bad")] == ["failed"]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        '{"clubId": "c1"}',
        '{"clubId": "../x", "reason": "timer", "night": "2026-12-02", "requestedAt": "2026-12-02T01:00:00Z"}',
        '{"clubId": "c1", "reason": "timer", "requestedAt": "2026-12-02T01:00:00Z"}',
        "x" * 5000,
    ],
)
def test_a_message_that_is_not_a_work_item_goes_to_poison_at_once(srv, body, caplog):
    caplog.set_level(logging.ERROR)
    assert worker.handle_work_item(body, message_id="m1") == "poisoned"
    (msg,) = _poison().peek()
    assert msg.content == body
    assert "export.bad_work_item" in caplog.text


def test_an_unknown_or_disabled_club_is_skipped_on_the_roll_call(srv):
    register_club("off", srv, enabled=False)
    for cid in ("gone", "off"):
        item = WorkItem(club_id=cid, reason="timer", night=NIGHT, requested_at=NIGHT_AT)
        assert worker.handle_work_item(item.to_json(), now=lambda: NIGHT_AT) == "not-exportable"
    assert {r["RowKey"]: r["status"] for r in nights.list_night(NIGHT)} == {"gone": "skipped", "off": "skipped"}


def test_a_club_whose_lock_is_held_is_skipped_for_the_night(srv):
    from shared.idrott import lock

    register_club("c1", srv)
    _seed("c1")
    assert lock.acquire_lock("c1", "someone-else", 600)[0]
    item = WorkItem(club_id="c1", reason="timer", night=NIGHT, requested_at=NIGHT_AT)
    assert worker.handle_work_item(item.to_json(), now=lambda: NIGHT_AT) == "skipped"
    (row,) = nights.list_night(NIGHT)
    assert row["status"] == "skipped" and row["heldBy"] == "someone-else"


# --- concurrency slots ---------------------------------------------------------------------------
def test_no_more_than_capacity_workers_hold_a_slot(srv):
    """Invariant: of any number of contenders, exactly ``capacity`` get a slot while none is released."""
    got: dict[str, slots.Slot | None] = {}

    def take(i: int) -> None:
        got[f"w{i}"] = slots.acquire_slot(f"w{i}", 3, 600)

    run_in_threads(take, 10)
    held = {owner: slot for owner, slot in got.items() if slot is not None}
    assert len(held) == 3 and len({s.key for s in held.values()}) == 3 and slots.held_slots() == 3
    owner, slot = next(iter(held.items()))
    slots.release_slot(slots.Slot(slot.key, None), "not-the-owner")  # no ETag: the owner is checked
    assert slots.held_slots() == 3
    slots.release_slot(slot, owner)
    assert slots.held_slots() == 2


def test_an_expired_slot_is_taken_over(srv):
    t0 = datetime.now(UTC)
    dead = slots.acquire_slot("dead", 1, 60, now=lambda: t0)
    assert dead is not None
    assert slots.acquire_slot("alive", 1, 60, now=lambda: t0 + timedelta(seconds=30)) is None
    alive = slots.acquire_slot("alive", 1, 60, now=lambda: t0 + timedelta(seconds=61))
    assert alive is not None and alive.key == "000" and alive.etag != dead.etag
    slots.release_slot(dead, "dead")  # late: its lease was taken over, so the row is not its to delete
    assert slots.acquire_slot("third", 1, 60, now=lambda: t0 + timedelta(seconds=62)) is None
    slots.release_slot(alive, "alive")
    assert slots.acquire_slot("third", 1, 60, now=lambda: t0 + timedelta(seconds=62)) is not None


def test_a_worker_without_a_free_slot_puts_the_item_back_with_a_delay(srv, env, monkeypatch):
    env.set(IDROTTONLINE_EXPORT_CONCURRENCY=1)
    monkeypatch.setattr(worker, "DEFER_SECONDS", 1)
    register_club("c1", srv)
    assert slots.acquire_slot("busy", 1, 600) is not None
    item = WorkItem(club_id="c1", reason="timer", night=NIGHT, requested_at=NIGHT_AT)
    assert worker.handle_work_item(item.to_json(), now=lambda: NIGHT_AT) == "deferred"
    assert _queue().peek() == []  # invisible for the delay
    deadline = time.monotonic() + 10
    while not (visible := _items(_queue())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [(i.club_id, i.deferrals) for i in visible] == [("c1", 1)]


# --- overdue clubs -------------------------------------------------------------------------------
def test_a_club_without_a_good_night_for_the_limit_is_an_overdue_alert(srv, env, caplog):
    env.set(IDROTTONLINE_OVERDUE_NIGHTS=2)
    for cid in ("ok", "late", "new"):
        register_club(cid, srv)
    nights.claim(NIGHT - timedelta(days=5), "ok")
    nights.mark_ok("ok", NIGHT - timedelta(days=1))
    nights.claim(NIGHT - timedelta(days=5), "late")
    nights.mark_ok("late", NIGHT - timedelta(days=3))  # nights D-2 and D-1 went wrong
    nights.claim(NIGHT - timedelta(days=1), "new")  # first rolled last night: not overdue yet
    caplog.set_level(logging.ERROR)
    done = fanout.fan_out(now=lambda: NIGHT_AT)
    assert done.overdue == ["late"]
    assert "export.overdue club_id=late: no successful export for 2 night(s)" in caplog.text


# --- the poison queue ----------------------------------------------------------------------------
def test_poison_items_are_listed_and_requeued_by_club(srv):
    p = _poison()
    for cid in ("c1", "c2"):
        p.send(WorkItem(club_id=cid, reason="timer", night=NIGHT, requested_at=NIGHT_AT, deferrals=3).to_json())
    p.send("garbage")
    listed = poison.list_poison()
    assert listed["approximateCount"] == 3
    assert [(i.get("clubId"), i["readable"]) for i in listed["items"]] == [("c1", True), ("c2", True), (None, False)]
    assert poison.requeue_poison(["c2"]) == {"requeued": 1, "clubs": ["c2"], "kept": 2}
    assert [(i.club_id, i.deferrals) for i in _items(_queue())] == [("c2", 0)]
    assert poison.main(["list"]) == 0
