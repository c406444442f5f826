"""Text split to fit a Table Storage string property (``shared.textsize``) and the journal rows
built with it: whatever a message carries, its journal row can be written and read back whole."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.nif.queue.envelope import RawMessage
from shared.nif.queue.journal import journal_rows, needs_overflow, raw_from_journal
from shared.textsize import MAX_PROPERTY_BYTES, MAX_PROPERTY_UNITS, text_chunks, utf16_units

# characters outside the BMP weigh two UTF-16 units: mix them in on purpose
_text = st.text(st.characters(codec="utf-8"), max_size=300) | st.builds(
    lambda a, n, b: a + "\U0001f600" * n + b, st.text(max_size=5), st.integers(0, 40_000), st.text(max_size=5)
)


@given(_text, st.integers(2, 50))
def test_chunks_rejoin_and_fit(text: str, units: int) -> None:
    """Invariant: the pieces rejoin to the text, none is empty, none exceeds ``units`` UTF-16 units."""
    chunks = text_chunks(text, units)
    assert "".join(chunks) == text
    assert all(chunk and utf16_units(chunk) <= units for chunk in chunks)


@given(st.text(st.characters(codec="utf-8")))
def test_utf16_units_is_what_utf16_encoding_counts(text: str) -> None:
    assert utf16_units(text) == len(text.encode("utf-16-le")) // 2


def _fits(value: Any) -> bool:
    import json

    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    if isinstance(value, str):
        return utf16_units(value) <= MAX_PROPERTY_UNITS
    if isinstance(value, bytes):
        return len(value) <= MAX_PROPERTY_BYTES
    return True


_prop_values = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text


@given(
    body=st.binary(max_size=2_000) | _text.map(lambda t: t.encode("utf-8")),
    props=st.dictionaries(st.text(max_size=20), _prop_values, max_size=4),
    seq=st.integers(0, 2**62),
)
@settings(max_examples=60, deadline=None)
def test_any_message_journals_into_rows_that_fit_and_read_back(body: bytes, props: dict[str, Any], seq: int) -> None:
    """Invariant: stored as a chunked table stores them, every property of the journal row and
    its overflow rows fits the service's limits, so does each entity, and reading them back gives
    the delivered message."""
    from shared.tables_contract import MAX_ENTITY_BYTES, decode_props, encode_props, stored_size

    raw = RawMessage("m-1", seq, None, 1, props, body, content_type="application/json")
    row, overflow = journal_rows(raw, None, None)
    stored = [encode_props(r, chunked=True) for r in [row, *overflow]]
    assert all(_fits(v) for r in stored for v in r.values())
    assert all(stored_size(r) <= MAX_ENTITY_BYTES for r in stored)
    row, *overflow = (decode_props(r)[0] for r in stored)
    back = raw_from_journal(row, iter(overflow) if needs_overflow(row) else None)
    assert back.body == body and back.application_properties == props and back.sequence_number == seq


@given(st.text(max_size=50) | st.just("\U0001f600" * 40_000))
@settings(max_examples=30)
def test_intake_records_split_into_properties_that_fit(text: str) -> None:
    """Invariant: the IdrottOnline store writes a record's JSON in properties the service accepts
    (its table is chunked, and the memory store refuses what the service refuses), and reads back
    the same record."""
    from devtools.memtables import MemoryTableStore
    from shared.idrott.rows import TABLE, A
    from shared.idrott.store import ClubRecords

    rec = ClubRecords("c1", MemoryTableStore().table(TABLE, chunked=True))
    rec.t.submit(rec.record_write(A, "a1", {"description": text}))
    stored = rec.get_activity("a1")
    assert stored is not None and stored.data == {"description": text}
