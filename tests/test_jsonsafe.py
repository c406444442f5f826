"""Strict JSON (``shared.jsonsafe``): what it accepts round-trips, everything else is one clear refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.jsonsafe import MAX_DEPTH, JsonRejected, loads

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=30
)


@given(_values)
def test_valid_json_round_trips(value: Any) -> None:
    """Invariant: any JSON document without duplicate keys, within the depth limit, parses to itself."""
    assert loads(json.dumps(value)) == value
    assert loads(json.dumps(value, ensure_ascii=False).encode()) == value


@given(st.binary(max_size=200))
@settings(max_examples=300)
def test_any_bytes_parse_or_are_refused(data: bytes) -> None:
    """Invariant: arbitrary bytes give a value or JsonRejected, never any other exception."""
    try:
        loads(data)
    except JsonRejected as exc:
        assert str(exc)


@given(st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=5), st.data())
def test_a_duplicate_key_anywhere_is_refused(obj: dict[str, int], data: st.DataObject) -> None:
    """Invariant: repeating any key of an object, at any depth, is refused (the last one must not win)."""
    key = data.draw(st.sampled_from(sorted(obj)))
    text = json.dumps(obj)[:-1] + f", {json.dumps(key)}: 0}}"
    depth = data.draw(st.integers(0, 5))
    with pytest.raises(JsonRejected, match="duplicate key"):
        loads("[" * depth + text + "]" * depth)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 200_000])
def test_nesting_beyond_the_limit_is_refused(depth: int) -> None:
    with pytest.raises(JsonRejected, match="nested deeper"):
        loads("[" * depth + "]" * depth)
    with pytest.raises(JsonRejected):
        loads('{"a":' * depth + "1" + "}" * depth)


def test_nesting_at_the_limit_is_accepted() -> None:
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


@pytest.mark.parametrize(
    "text,reason",
    [
        ("NaN", "not a JSON number"),
        ("[Infinity]", "not a JSON number"),
        ('{"a": -Infinity}', "not a JSON number"),
        ("9" * 5000, "too many digits"),
        (b'{"x":"\xff"}', "not UTF-8"),
        ("", "Expecting value"),
    ],
)
def test_refusal_reasons(text: str | bytes, reason: str) -> None:
    with pytest.raises(JsonRejected, match=reason):
        loads(text)


def test_refusal_never_quotes_the_input() -> None:
    secret = "12345678901"  # a personnummer-like value in a broken document
    with pytest.raises(JsonRejected) as info:
        loads('{"ssn": "' + secret + '", ')
    assert secret not in str(info.value)
