"""Property: any interleaving, with duplicates, of the same per-entity streams ends in the same
projections (in-memory store with the adapter's interface; a smaller run on Azurite)."""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.memtables import MemoryTableStore
from shared.nif.queue import entities as E
from shared.nif.queue.envelope import raw_from_functions
from shared.nif.queue.processor import QueueProcessor
from tests.queue_support import T0, journaled, projection_snapshot, sb_message

ROWS = [
    ("TpPerson", 1001),
    ("TpPerson", 1002),
    ("TpMembership", 2001),
    ("TpPersonContactInformation", 3001),
    ("ToSport", 207),
]
FIELDS = ["a", "b", "c", "personId", "isDeleted"]
TABLES = [*E.PROJECTION_TABLES.values(), E.MERGE_TABLE]


def assert_live_links_present(store) -> None:
    """Links are an index (stale entries allowed, the reader checks them): every link implied by
    a row's current state must exist."""
    from shared.nif.queue.links import link_rows
    from shared.nif.queue.rows import entity_to_state

    links = set(projection_snapshot(store, [E.LINKS_TABLE])[E.LINKS_TABLE])
    for entity in ("TpMembership", "TpActiveMembership", "TpPersonContactInformation"):
        for r in store.table(E.PROJECTION_TABLES[entity]).query():
            state = entity_to_state(r, entity)
            for link in link_rows(entity, state.object_id, E.links_of(entity, state.data)):
                assert (link["PartitionKey"], link["RowKey"]) in links


value = st.one_of(st.none(), st.integers(0, 3), st.sampled_from(["x", "y"]))
change = st.tuples(st.sampled_from([1, 2, 3, 9]), st.dictionaries(st.sampled_from(FIELDS), value, max_size=3))
streams = st.lists(st.tuples(st.sampled_from(range(len(ROWS))), change), min_size=1, max_size=25)


def build(stream):
    """Messages with globally increasing sequence numbers (the order NIF enqueued them)."""
    items = []
    for seq, (row_ix, (ct, body)) in enumerate(stream, start=1):
        entity, oid = ROWS[row_ix]
        if entity != "TpPerson" and "personId" in body and body["personId"] is not None:
            body = {**body, "personId": 1001 + (hash(str(body["personId"])) % 2)}
        item = {
            "properties": {"ObjectId": oid, "EntityName": entity, "ChangeType": ct},
            "body": None if ct == 3 and not body else body,
        }
        items.append((seq, item))
    return items


def deliver(store, items, order, chunks, redeliver):
    proc = QueueProcessor(store, confirm=lambda *a, **k: False)
    msgs = []
    for ix in order:
        seq, item = items[ix]
        count = 2 if redeliver.get(ix) else 1
        msgs.append(sb_message(item, seq, delivery_count=count, enqueued=T0 + timedelta(seconds=seq)))
    pos = 0
    for size in chunks:
        if pos >= len(msgs):
            break
        chunk = msgs[pos : pos + size]
        pos += size
        if len(chunk) == 1:
            proc.process(raw_from_functions(chunk[0]))
        else:
            proc.process_batch([raw_from_functions(m) for m in chunk])
    for m in msgs[pos:]:
        proc.process(raw_from_functions(m))
    return store


def model(items):
    store = MemoryTableStore()
    return deliver(store, items, list(range(len(items))), [1] * len(items), {})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams, data=st.data())
def test_interleavings_with_duplicates_end_in_the_same_projections(stream, data) -> None:
    items = build(stream)
    expected = projection_snapshot(model(items), TABLES)
    order = list(range(len(items)))
    order = data.draw(st.permutations(order))
    dups = data.draw(st.lists(st.sampled_from(range(len(items))), max_size=len(items)))
    order = order + dups  # duplicates, delivered later (redelivery)
    chunks = data.draw(st.lists(st.integers(1, 12), min_size=1, max_size=20))
    got = deliver(MemoryTableStore(), items, order, chunks, {ix: True for ix in dups})
    assert projection_snapshot(got, TABLES) == expected
    assert_live_links_present(got)
    journal = list(got.table(E.JOURNAL_TABLE).query())
    assert sorted(int(r["RowKey"]) for r in journal) == [s for s, _ in items]


def test_same_property_on_azurite(storage) -> None:
    rng = random.Random(7)
    stream = []
    for _ in range(60):
        ct = rng.choice([1, 2, 2, 3, 9])
        body = {f: rng.choice([None, 1, 2, "x"]) for f in rng.sample(FIELDS[:3], rng.randint(0, 3))}
        stream.append((rng.randrange(len(ROWS)), (ct, body)))
    items = build(stream)
    expected = projection_snapshot(model(items), TABLES)
    order = list(range(len(items)))
    rng.shuffle(order)
    dups = [rng.randrange(len(items)) for _ in range(15)]
    deliver(storage, items, order + dups, [rng.randint(1, 20) for _ in range(20)], {i: True for i in dups})
    assert projection_snapshot(storage, TABLES) == expected
    assert_live_links_present(storage)
    assert len(journaled(storage)) == len(items)
