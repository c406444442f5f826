"""Strict JSON for what callers and queues send us: one parser, one set of refusals.

``json.loads`` accepts more than RFC 8259 and more than the rest of the code can carry:

- duplicate object keys (the last one silently wins, so two readers may see different values);
- ``NaN`` and ``Infinity`` (not JSON; Table Storage and XML refuse them later);
- nesting as deep as the C stack allows (Python 3.13 parses 5 000 levels; pydantic, ``json.dumps``
  and our own walkers would then hit the recursion limit);
- integers of more than 4 300 digits raise a bare ``ValueError`` that is neither
  ``JSONDecodeError`` nor ``UnicodeDecodeError``.

:func:`loads` refuses all of these, and bytes that are not UTF-8, with one exception type whose
message is a sentence safe to show a caller (it never quotes the input).
"""

from __future__ import annotations

import json
from typing import Any

#: Deeper than any document the federations or our API define (NIF's deepest is about 6).
MAX_DEPTH = 64


class JsonRejected(ValueError):
    """The input is not strict JSON; ``str(exc)`` says why without quoting the input."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JsonRejected(f"duplicate key {json.dumps(key[:40])} in an object")
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise JsonRejected(f"{name} is not a JSON number")


def _too_deep(value: Any, max_depth: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def loads(data: bytes | bytearray | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse strict JSON (UTF-8 when given bytes) or raise :class:`JsonRejected`."""
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        value = json.loads(text, object_pairs_hook=_object, parse_constant=_constant)
    except JsonRejected:
        raise
    except UnicodeDecodeError as exc:
        raise JsonRejected(f"not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise JsonRejected(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise JsonRejected(f"nested deeper than {max_depth} levels") from None
    except ValueError:  # int(): more than sys.get_int_max_str_digits() digits
        raise JsonRejected("a number has too many digits") from None
    if _too_deep(value, max_depth):
        raise JsonRejected(f"nested deeper than {max_depth} levels")
    return value
