"""IdSet (shared.idrott.idset): the export's compact per-file id set behaves as a set of str."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.idrott import idset
from shared.idrott.idset import IdSet

IDS = st.text(st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), IDS), max_size=300), small=st.integers(2, 8))
def test_behaves_like_a_set(ops, small):
    """Invariant: for any sequence of adds and lookups (with runs and filter growth forced early by
    a tiny run size), ``add`` answers whether the id was new and ``in`` answers whether it was
    added, exactly as a Python set does."""
    saved = idset._RECENT
    idset._RECENT = small
    try:
        ids, model = IdSet(b"test"), set()
        for is_add, value in ops:
            if is_add:
                assert ids.add(value) is (value not in model)
                model.add(value)
            else:
                assert (value in ids) is (value in model)
        assert len(ids) == len(model)
        assert all(v in ids for v in model)
    finally:
        idset._RECENT = saved


def test_many_ids_and_misses():
    """Past several runs and filter growths (10 000 ids), every id is found and no other is."""
    ids = IdSet()
    values = [f"person-{i:06d}" for i in range(10_000)]
    assert all(ids.add(v) for v in values)
    assert all(v in ids for v in values)
    assert not any(ids.add(v) for v in values)
    assert not any(f"other-{i}" in ids for i in range(10_000))
    assert 42 not in ids  # not a str


def test_salts_hash_differently():
    assert IdSet(b"a")._digest("x") != IdSet(b"b")._digest("x")
