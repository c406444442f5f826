"""How Table Storage measures a string property, and splitting text to fit (pure, stdlib only).

A string property holds at most 64 KiB, counted in UTF-16: 32 768 code units, and a character
outside the Basic Multilingual Plane (an emoji, some CJK) takes two. Splitting by Python
characters therefore lets 30 000 emoji through as 60 000 units, which the service (and Azurite)
refuses with a 400 for the whole transaction. Every chunker that stores text uses this module.
"""

from __future__ import annotations

#: UTF-16 code units one string property may hold.
MAX_PROPERTY_UNITS = 32_768
#: Bytes one binary property may hold.
MAX_PROPERTY_BYTES = 65_536
#: What our chunkers put in one property: below the limit, with room to spare.
CHUNK_UNITS = 30_000


def utf16_units(text: str) -> int:
    """Length of ``text`` as the service counts it."""
    if not text or max(text) <= "\uffff":
        return len(text)
    return len(text) + sum(1 for ch in text if ch > "\uffff")


def text_chunks(text: str, units: int = CHUNK_UNITS) -> list[str]:
    """``text`` in pieces of at most ``units`` UTF-16 code units, never splitting a character.

    ``"".join(text_chunks(t)) == t``; an empty text gives ``[]``. ``units`` is at least 2 (one
    character may need two).
    """
    if units < 2:
        raise ValueError("units must be at least 2")
    if not text or max(text) <= "\uffff":  # one unit per character: slice directly (the usual case)
        return [text[i : i + units] for i in range(0, len(text), units)]
    out: list[str] = []
    start = count = 0
    for i, ch in enumerate(text):
        width = 2 if ch > "\uffff" else 1
        if count + width > units:
            out.append(text[start:i])
            start, count = i, 0
        count += width
    out.append(text[start:])
    return out
