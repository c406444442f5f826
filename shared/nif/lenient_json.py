"""Tolerant JSON loading for NIF payloads and the examples in NIF's API document.

NIF's document (and, we assume, occasionally NIF itself) produces JSON that ``json.loads``
rejects. :func:`loads` first tries the strict parser (with raw control characters allowed
inside strings), then repairs the quirks seen in the seed document and tries again:

- ``-- NB: ...`` comments after a value (SQL-style line comments outside strings);
- a typographic closing quote (``"sports”: [``) that ends a string;
- raw line breaks inside strings (``"responseMessage": "... Club Level.<LF>It is ..."``);
- table-layout residue from the document: a trailing `` |`` on a line, and lines that are only
  ``...``/``…`` (elisions);
- a key/value pair wrapped in square brackets (``[ "token": "..." ]``) instead of braces;
- several top-level objects without the enclosing array brackets (sports, countries).

Pure: no I/O, standard library only.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["LenientJSONError", "loads"]

_TABLE_RESIDUE = re.compile(r"[ \t]*\|[ \t]*$")
_ELISION_LINE = re.compile(r"^\s*(\.\.\.|…)\s*$")
_CLOSERS = ":,}]"


class LenientJSONError(ValueError):
    """The text is not JSON, even after repairing the known quirks."""


def loads(text: str | bytes) -> Any:
    """Parse ``text`` as JSON, repairing NIF's known quirks if the strict parse fails."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8-sig", errors="replace")
    try:
        return json.loads(text, strict=False)
    except (json.JSONDecodeError, RecursionError):
        pass
    repaired = _repair(text)
    for candidate in _candidates(repaired):
        try:
            return json.loads(candidate, strict=False)
        except (json.JSONDecodeError, RecursionError):
            continue
    raise LenientJSONError("not JSON, even leniently")


def _strip_layout(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if _ELISION_LINE.match(line):
            continue
        lines.append(_TABLE_RESIDUE.sub("", line))
    return "\n".join(lines).strip()


def _repair(text: str) -> str:
    """Remove comments and fix quotes, scanning with awareness of string literals."""
    text = _strip_layout(text)
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        ch = text[i]
        if in_string:
            if ch == "\\" and i + 1 < n:
                out.append(text[i : i + 2])
                i += 2
                continue
            if ch == '"':
                in_string = False
            elif ch in "”“" and _next_significant(text, i + 1) in _CLOSERS:
                ch = '"'
                in_string = False
            out.append(ch)
            i += 1
            continue
        if ch == '"' or ch in "“”":
            in_string = True
            out.append('"')
        elif text.startswith("--", i) or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out).strip()


def _next_significant(text: str, start: int) -> str:
    for ch in text[start:]:
        if not ch.isspace():
            return ch
    return ""


def _candidates(text: str) -> list[str]:
    out = [text]
    if text.startswith("[") and text.endswith("]"):
        out.append("{" + text[1:-1] + "}")
    if text.startswith("{"):
        out.append("[" + text + "]")
    return out
