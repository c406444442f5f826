"""NIF errors: the exceptions the NIF client raises, and how NIF's error answers become them.

Catch at the level you can act on::

    NifError                      anything that went wrong talking to NIF
    ├── NifUnavailable            transport error, HTTP 5xx/502, or NIF rejected our credentials
    │   └── NifTimeout            connect/read/write/pool timeout
    ├── NifRejected               HTTP 4xx with NIF's business code (``nif_code``) when it gave one
    └── NifContractError          a 2xx response that failed parsing or model validation

The HTTP layer maps them: NifRejected → 4xx problem carrying ``nifCode``, NifTimeout → 504,
NifUnavailable / NifContractError → 502. Messages never contain tokens or keys.

**Error bodies** (pure, no I/O): NIF doesn't document its error body, so :func:`parse_nif_error`
finds a code and a message in any plausible shape. A :class:`NifRejected` message is what a
caller may see: our sentence for a known NIF code, else NIF's own message when it is short and
structured (:func:`public_nif_message`), else our sentence with the HTTP status
(:func:`rejection_message`). NIF's raw body is never passed on.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from shared.logs import redact
from shared.nif import lenient_json

if TYPE_CHECKING:
    import httpx

PUBLIC_MESSAGE_MAX = 200  # NIF's own message is shown to callers only up to this length


class NifError(Exception):
    """Base class; ``status`` is NIF's HTTP status when there was a response."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class NifUnavailable(NifError):
    """NIF could not be reached or failed (5xx), or refused our credentials (401 after refresh)."""


class NifTimeout(NifUnavailable):
    """NIF did not answer in time. For a POST the outcome is unknown: it may have been applied."""


class NifRejected(NifError):
    """NIF refused the request with a 4xx; ``nif_code`` is NIF's code (e.g. 1007) if it sent one."""

    def __init__(self, message: str, *, status: int, nif_code: int | None = None) -> None:
        super().__init__(message, status=status)
        self.nif_code = nif_code


class NifContractError(NifError):
    """NIF answered 2xx, but the body is not what the contract says."""


# --- error bodies -------------------------------------------------------------------------------

_CODE_KEYS = ("nifCode", "code", "errorCode", "errorcode", "statusCode", "Code", "ErrorCode")
_MESSAGE_KEYS = ("message", "Message", "errorMessage", "detail", "title", "responseMessage", "error")
_CODE_IN_TEXT = re.compile(r"\b([13]\d{3})\b")


def parse_nif_error(content: bytes | str) -> tuple[int | None, str | None]:
    """(NIF code, message) from an error body of any plausible shape.

    NIF doesn't document its error body. Accepted: ``{"code": 1007, "message": ...}`` (the
    sandbox), ``errorCode``/``nifCode``/``statusCode`` spellings, ``{"error": {...}}``,
    ``{"errors": [{...}]}``, a bare number, or text containing a 1xxx/3xxx code.
    """
    code, message, _structured = _parse_error(content)
    return code, message


def _parse_error(content: bytes | str) -> tuple[int | None, str | None, bool]:
    """(code, message, whether the message came from a JSON error object's message field)."""
    text = content.decode("utf-8", "replace") if isinstance(content, (bytes, bytearray)) else content
    try:
        data: Any = lenient_json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        data = None
    code, message = find_code(data)
    structured = message is not None
    if code is None and (data is None or isinstance(data, str)):
        match = _CODE_IN_TEXT.search(text)
        code = int(match.group(1)) if match else None
        message = message or (text.strip()[:300] or None)
    return code, message, structured


def public_nif_message(message: str | None) -> str | None:
    """NIF's own message as a caller may see it, or None.

    The rule: only a message taken from a JSON error body's message field (the caller checks
    that), at most ``PUBLIC_MESSAGE_MAX`` characters, printable on one line, no markup (``<``,
    ``>``), and nothing in it that the redactor would touch (a registered secret such as the
    subscription key, a JWT, ``key=value`` secrets, a personnummer). Anything else is dropped
    whole rather than shown half-redacted.
    """
    if not message:
        return None
    text = message.strip()
    if not text or len(text) > PUBLIC_MESSAGE_MAX or "<" in text or ">" in text:
        return None
    if not text.isprintable():
        return None
    return text if redact(text) == text else None


def rejection_message(status: int, code: int | None, nif_message: str | None) -> str:
    """What a caller may read about a NIF rejection: our sentence for a code we know, NIF's
    message when :func:`public_nif_message` allows it, else our sentence with the status/code."""
    from shared.nif.rules import NIF_MESSAGES

    if code is not None and code in NIF_MESSAGES:
        return NIF_MESSAGES[code]
    shown = public_nif_message(nif_message)
    if shown:
        return shown
    if code is not None:
        return f"NIF rejected the request with code {code}."
    return f"NIF rejected the request (HTTP {status})."


def _as_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 1000 else None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) == 4:
        return int(value.strip())
    return None


def find_code(data: Any, depth: int = 0) -> tuple[int | None, str | None]:
    if depth > 3:
        return None, None
    if isinstance(data, int):
        return _as_code(data), None
    if isinstance(data, list):
        for item in data:
            code, message = find_code(item, depth + 1)
            if code is not None:
                return code, message
        return None, None
    if not isinstance(data, dict):
        return None, None
    message = next((str(data[k]) for k in _MESSAGE_KEYS if isinstance(data.get(k), (str, int))), None)
    for key in _CODE_KEYS:
        code = _as_code(data.get(key))
        if code is not None:
            return code, message
    for key in ("error", "errors", "Error", "Errors"):
        if key in data:
            code, inner = find_code(data[key], depth + 1)
            if code is not None:
                return code, inner or message
    return None, message


def error_from_response(resp: httpx.Response) -> NifError:
    status = resp.status_code
    if status >= 500:
        return NifUnavailable(f"NIF answered HTTP {status}", status=status)
    code, message, structured = _parse_error(resp.content)
    if status in (401, 403):
        return NifUnavailable(f"NIF refused our credentials (HTTP {status})", status=status)
    if code is None and status not in (400, 404, 409, 422):
        return NifUnavailable(f"NIF answered HTTP {status}", status=status)
    return NifRejected(rejection_message(status, code, message if structured else None), status=status, nif_code=code)
