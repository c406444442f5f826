"""The personnummer index in bucket rows (:mod:`shared.idrott.pnrindex`), against Azurite.

The invariants, checked after every call: no two persons (aliases aside) of a club share a
personnummer; the index names each person's personnummer as that person's; every bucket row
holds only digests of its own bucket. A stored record is what was sent; a refused one leaves the
club as it was.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared.idrott import rows
from shared.idrott.models import Person
from shared.idrott.pnrindex import BUCKETS, HOLDERS, bucket_of, pnr_key
from shared.idrott.store import ClubRecords
from shared.lifecycle import reset_process_state
from shared.tables_contract import Op
from tests.idrott_support import person, pnr

IDS = ["a", "b", "c", "d", "e"]
SERIALS = [1, 3, 5]


def _buckets(rec: ClubRecords) -> dict[str, dict[str, str]]:
    flt, params = rows.key_range(rows.I)
    return {
        r["RowKey"][len(rows.I) :]: r[HOLDERS] for r in rec.t.query(flt, parameters=params, partition_key=rec.club_id)
    }


def _persons(rec: ClubRecords) -> dict[str, dict]:
    return {p.external_id: {"data": p.data, "moved_to": p.moved_to} for p in rec.all_persons()}


def _check_invariants(rec: ClubRecords) -> None:
    people = [p for p in rec.all_persons() if not p.moved_to and p.data.get("personnummer")]
    shared = [n for n, k in Counter(p.data["personnummer"] for p in people).items() if k > 1]
    assert not shared, "two persons of the club hold one personnummer"
    buckets = _buckets(rec)
    assert all(bucket_of(d) == name for name, holders in buckets.items() for d in holders)
    index = {d: x for holders in buckets.values() for d, x in holders.items()}
    for p in people:
        assert index.get(pnr_key(rec.club_id, p.data["personnummer"])) == p.external_id


call = st.lists(
    st.tuples(st.sampled_from(IDS), st.sampled_from(SERIALS), st.none() | st.sampled_from(IDS)),
    min_size=1,
    max_size=4,
    unique_by=lambda t: t[0],
)


@example(calls=[[("c", 1, None)], [("a", 1, "c"), ("b", 1, "c")]])  # two re-keys of one id: the first wins
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(call, min_size=1, max_size=5))
def test_any_sequence_of_calls_keeps_one_person_per_personnummer(storage, sensitive, calls):
    """Random calls over five ids and three personnummer, with re-keys: after every call the
    invariants hold, every person not refused is stored as sent and a refused one changed nothing."""
    sensitive.add(*(pnr(2012, 3, 14, s) for s in SERIALS))
    rec = ClubRecords("c" + uuid.uuid4().hex[:10])
    for persons in calls:
        before = _persons(rec)
        sent = [
            Person.model_validate(
                {**person(x, serial=s)} | ({"replacesExternalId": old} if old not in (None, x) else {})
            )
            for x, s, old in persons
        ]
        refused = {r.position for r in rec.upsert_persons(sent)}
        after = _persons(rec)
        # rows a stored record of the call may change: its own and the one it re-keys
        touched = {q.external_id for q in sent} | {
            q.replaces_external_id for j, q in enumerate(sent) if j not in refused
        }
        for i, p in enumerate(sent):
            if i in refused:
                assert after.get(p.external_id) == before.get(p.external_id)
                if p.replaces_external_id and p.replaces_external_id not in touched:
                    assert after.get(p.replaces_external_id) == before.get(p.replaces_external_id)
            else:
                assert after[p.external_id]["data"]["personnummer"] == p.personnummer
                assert after[p.external_id]["moved_to"] == ""
        _check_invariants(rec)


def _in_one_bucket(n: int) -> list[str]:
    """``n`` valid personnummer of one bucket of club ``big``."""
    found: dict[str, list[str]] = {}
    day = date(2010, 1, 1)
    while True:
        for serial in range(1, 1000, 2):
            number = pnr(day.year, day.month, day.day, serial)
            same = found.setdefault(bucket_of(pnr_key("big", number)), [])
            same.append(number)
            if len(same) == n:
                return same
        day += timedelta(days=1)


def test_a_bucket_with_more_persons_than_a_transaction_holds(storage, sensitive):
    """150 new persons of one bucket in one call (a transaction holds 100 operations): all stored,
    the bucket written in turns."""
    numbers = _in_one_bucket(150)
    sensitive.add(*numbers)
    rec = ClubRecords("big")
    sent = [Person.model_validate({**person(f"p{i}"), "personnummer": n}) for i, n in enumerate(numbers)]
    assert rec.upsert_persons(sent) == []
    assert len(_persons(rec)) == 150 and len(_buckets(rec)) == 1
    _check_invariants(rec)


def test_concurrent_calls_for_one_club_all_land(storage, sensitive):
    """Six calls of 40 different persons each at once meet on the same buckets: each transaction
    that meets another's write is decided again on fresh reads, and every person is stored."""
    from tests.support import run_in_threads

    batches = [[person(f"w{w}-{i}", year=2000 + w, serial=2 * i + 1) for i in range(40)] for w in range(6)]
    sensitive.add(*(p["personnummer"] for b in batches for p in b))
    refusals: dict[int, list] = {}

    def write(w: int) -> None:
        refusals[w] = ClubRecords("c1").upsert_persons([Person.model_validate(p) for p in batches[w]])

    run_in_threads(write, 6)
    assert refusals == {w: [] for w in range(6)}
    rec = ClubRecords("c1")
    assert len(_persons(rec)) == 240
    _check_invariants(rec)


def test_a_new_person_costs_about_one_write(storage, sensitive, monkeypatch):
    """A call of 1 000 new persons writes each record once plus at most one row per bucket
    (was: a record and an index row each)."""
    people = [person(f"p{i}", year=1990 + i // 500, serial=2 * (i % 500) + 1) for i in range(1000)]
    sensitive.add(*(p["personnummer"] for p in people))
    rec = ClubRecords("c1")
    written: list[int] = []
    submit = rec.t.submit

    def counting(ops):
        ops = list(ops)
        written.append(len(ops))
        return submit(ops)

    monkeypatch.setattr(rec.t, "submit", counting)
    assert rec.upsert_persons([Person.model_validate(p) for p in people]) == []
    assert 1000 < sum(written) <= 1000 + BUCKETS  # no dirty markers before the first full load
    _check_invariants(rec)


def test_the_earlier_layout_is_rebuilt_as_buckets(storage, sensitive):
    """A club indexed one row per personnummer (``N|``) gets buckets on its next intake, the old
    rows deleted, and the personnummer it held stay held."""
    a, b = person("a1", serial=3), person("b1", serial=5)
    sensitive.add(a["personnummer"], b["personnummer"])
    rec = ClubRecords("c1")
    assert rec.upsert_persons([Person.model_validate(a), Person.model_validate(b)]) == []
    # turn the club back into the earlier layout
    for name in _buckets(rec):
        rec.t.delete("c1", rows.I + name)
    rec.t.delete("c1", rows.PNR_BUCKETS_META)
    rec.t.submit(
        [Op("upsert", {"PartitionKey": "c1", "RowKey": rows.PNR_INDEX_META, "built_at": "x"})]
        + [
            Op("upsert", {"PartitionKey": "c1", "RowKey": rows.N + pnr_key("c1", p["personnummer"]), "external_id": x})
            for p, x in ((a, "a1"), (b, "b1"))
        ]
    )
    reset_process_state()  # a new worker
    rec = ClubRecords("c1")
    (refusal,) = rec.upsert_persons([Person.model_validate({**a, "externalId": "a2"})])
    assert (refusal.status, refusal.existing_id) == (409, "a1")
    left = {r["RowKey"] for r in rec.t.query(partition_key="c1", select=["RowKey"])}
    assert not {k for k in left if k.startswith(rows.N)} and rows.PNR_INDEX_META not in left
    assert rows.PNR_BUCKETS_META in left
    _check_invariants(rec)


def test_an_earlier_layout_row_gone_meanwhile_does_not_stop_the_rebuild(storage, sensitive, monkeypatch):
    """Two first intakes after the upgrade both rebuild; the slower one's batch of deletes meets
    rows the other already deleted. The rebuild still finishes and the intake is stored."""
    a = person("a1", serial=3)
    sensitive.add(a["personnummer"])
    rec = ClubRecords("c1")
    rec.t.submit(
        [
            Op("upsert", {"PartitionKey": "c1", "RowKey": rows.PNR_INDEX_META, "built_at": "x"}),
            Op(
                "upsert",
                {"PartitionKey": "c1", "RowKey": rows.N + pnr_key("c1", a["personnummer"]), "external_id": "a1"},
            ),
        ]
    )
    query = rec.t.query

    def with_a_row_deleted_meanwhile(flt=None, **kw):
        found = list(query(flt, **kw))
        if kw.get("parameters", {}).get("lo") == rows.N[0]:
            found.append({"RowKey": rows.N + "gone", "_etag": "x"})
        return iter(found)

    monkeypatch.setattr(rec.t, "query", with_a_row_deleted_meanwhile)
    assert rec.upsert_persons([Person.model_validate(a)]) == []
    left = {r["RowKey"] for r in query(partition_key="c1", select=["RowKey"])}
    assert not {k for k in left if k.startswith(rows.N)} and rows.PNR_BUCKETS_META in left
    _check_invariants(rec)
