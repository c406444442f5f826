"""Structured logging with correlation ids, and redaction of secrets and personal numbers.

Redaction is installed as a log-record factory, so it applies to every record of every logger,
whatever handler the Functions worker (or pytest) attaches later. It rewrites the rendered
message and pre-renders exception text, replacing:

- JWTs (NIF club tokens) and ``Bearer`` values;
- values after secret-looking keys (``password=``, ``AccountKey=``, ``Ocp-Apim-Subscription-Key:``…);
- Swedish personnummer / samordningsnummer (10 or 12 digits, with or without ``-``/``+``) and
  Norwegian fødselsnummer / D-numbers (11 digits);
- any value registered with :func:`register_secret` (subscription key, SFTP passwords, …).

Structured fields go in ``extra={"fields": {...}}``; :class:`JsonFormatter` redacts them too.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

REDACTED = "[REDACTED]"

_invocation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("invocation_id", default=None)
_trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)
_club_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("club_id", default=None)
# the HTTP caller (shared.auth): a token's subject and client id, or the key kind; never a name or e-mail
_caller_subject: contextvars.ContextVar[str | None] = contextvars.ContextVar("caller_subject", default=None)
_caller_client_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("caller_client_id", default=None)
_CONTEXT_VARS = (_invocation_id, _trace_id, _club_id, _caller_subject, _caller_client_id)

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\bbearer\s+[^\s\"',;]+")
_KEYED = re.compile(
    r"(?i)\b(password|passwd|pwd|passphrase|secret|client[_-]?secret|token|access[_-]?token|"
    r"api[_-]?key|subscription[_-]?key|ocp-apim-subscription-key|x-functions-key|authorization|"
    r"accountkey|sharedaccesskey|private[_-]?key)(\"?\s*[=:]\s*\"?)([^\s\"',;&]+)"
)
# Swedish personnummer: [CC]YYMMDD[-+]NNNN, day 01-31 or 61-91 (samordningsnummer).
# Bounded by non-alphanumerics so that digits inside hex ids (UUIDs, request ids) don't match.
_SE_PNR = re.compile(
    r"(?<![0-9A-Za-z])(?:1[89]|20)?\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]|6[1-9]|[78]\d|9[01])[-+]?\d{4}"
    r"(?![0-9A-Za-z])"
)
# Norwegian fødselsnummer / D-number: DDMMYY + 5 digits (D-number adds 4 to the first digit).
_NO_FNR = re.compile(
    r"(?<![0-9A-Za-z])(?:0[1-9]|[1-2]\d|3[01]|[4-6]\d|7[01])(?:0[1-9]|1[0-2]|[45]\d)\d{2}\d{5}(?![0-9A-Za-z])"
)

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_installed = False


def register_secret(value: str | None) -> None:
    """Redact this exact value wherever it appears in a log line (ignored if shorter than 6)."""
    if value and len(value) >= 6:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Return ``text`` with secrets and personal identity numbers replaced."""
    if not text:
        return text
    if _secrets:
        for value in sorted(_secrets, key=len, reverse=True):
            if value in text:
                text = text.replace(value, REDACTED)
    text = _JWT.sub(REDACTED, text)
    text = _BEARER.sub("Bearer " + REDACTED, text)
    text = _KEYED.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    text = _SE_PNR.sub(REDACTED, text)
    text = _NO_FNR.sub(REDACTED, text)
    return text


def redact_value(value: Any) -> Any:
    """Redact strings inside a JSON-like value."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


class _RedactedAttribute:
    """Data descriptor: ``extra={"fields": ...}`` is stored raw by ``Logger.makeRecord`` (through
    ``__dict__``), but every handler that reads ``record.fields`` gets the redacted value."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__.get(self.name)
        return None if value is None else redact_value(value)

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value


class RedactingLogRecord(logging.LogRecord):
    fields = _RedactedAttribute()


def install_redaction() -> None:
    """Install the redacting record factory once per process (cheap, no I/O)."""
    global _installed
    if _installed:
        return
    base_factory = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base_factory(*args, **kwargs)
        if type(record) is logging.LogRecord:
            record.__class__ = RedactingLogRecord
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.invocation_id = _invocation_id.get()
        record.trace_id = _trace_id.get()
        record.club_id = _club_id.get()
        record.caller_subject = _caller_subject.get()
        record.caller_client_id = _caller_client_id.get()
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


@contextlib.contextmanager
def log_context(
    *,
    invocation_id: str | None = None,
    trace_id: str | None = None,
    club_id: str | None = None,
    caller_subject: str | None = None,
    caller_client_id: str | None = None,
) -> Iterator[None]:
    """Set correlation ids for log records emitted inside the block (values left None keep theirs)."""
    tokens = []
    values = (invocation_id, trace_id, club_id, caller_subject, caller_client_id)
    for var, value in zip(_CONTEXT_VARS, values, strict=True):
        if value is not None:
            tokens.append((var, var.set(str(value))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def set_trace_id(trace_id: str | None) -> None:
    """Attach NIF's traceId to the rest of the current invocation's log records."""
    _trace_id.set(trace_id)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation ids, fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key in ("invocation_id", "trace_id", "club_id", "caller_subject", "caller_client_id"):
            value = getattr(record, key, None)
            if value:
                out[key] = value
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out["fields"] = redact_value(fields)
        if record.exc_text:
            out["exception"] = record.exc_text
        elif record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
