"""Tokens, keys, passwords and national identity numbers never reach a log line.

Two layers: ``shared.logs`` redacts every record at creation (whatever handler is attached), and
the autouse ``_log_guard`` fixture in conftest.py fails any test whose captured logs still contain
a JWT, a personnummer, a fødselsnummer or a registered secret value, so every scenario of the
suite is checked, not only this file.
"""

from __future__ import annotations

import json
import logging

import pytest

from shared.logs import JsonFormatter, log_context, redact, register_secret

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1bmlxdWVfbmFtZSI6IkhpdGVzaFBhcnQyIiwiQ2x1YklkIjoiMTk0MzAifQ."
    "YXZwmdSMhmxldBew48Ii1BbZAXgGwXAfUPuEbV40c8"
)


@pytest.mark.parametrize(
    "text,secret",
    [
        (f"token={JWT}", JWT),
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        ("Ocp-Apim-Subscription-Key: 0123456789abcdef", "0123456789abcdef"),
        ("conn AccountKey=Zm9vYmFyYmF6cXV4;EndpointSuffix=x", "Zm9vYmFyYmF6cXV4"),
        ("Endpoint=sb://x/;SharedAccessKeyName=r;SharedAccessKey=c2VjcmV0c2VjcmV0", "c2VjcmV0c2VjcmV0"),
        ('{"password": "hunter2hunter2"}', "hunter2hunter2"),
        ("person 19811218-9876 added", "19811218-9876"),
        ("person 198112189876 added", "198112189876"),
        ("person 811218-9876 added", "811218-9876"),
        ("old person 121212+1212", "121212+1212"),
        ("samordningsnummer 19701063-2391", "19701063-2391"),
        ("fnr 01017012345 in body", "01017012345"),
        ("d-number 41017012345", "41017012345"),
    ],
)
def test_redact(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out and "[REDACTED]" in out


@pytest.mark.parametrize(
    "text",
    [
        "club 19430 branch 827527",
        "sequence 12345678901234567",
        "traceId 7AC07206-471E-4015-9ED7-E6DB55ED7201",
        "2026-11-24T02:00:00",
    ],
)
def test_ordinary_ids_survive(text: str) -> None:
    assert redact(text) == text


def test_registered_secret_values_are_redacted() -> None:
    register_secret("sftp-password-Xyz123")
    assert "Xyz123" not in redact("login with sftp-password-Xyz123 failed")


def test_records_are_redacted_for_every_handler(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("shared.test")
    with caplog.at_level(logging.INFO):
        logger.info("fetched %s for %s", JWT, "19811218-9876")
        try:
            raise ValueError(f"bad token {JWT}")
        except ValueError:
            logger.exception("failed")
    text = caplog.text
    assert JWT not in text and "19811218-9876" not in text
    assert "[REDACTED]" in text


def test_json_formatter_redacts_fields_and_carries_correlation_ids() -> None:
    logger = logging.getLogger("shared.test.json")
    captured: list[logging.LogRecord] = []

    class H(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record)

    h = H()
    logger.addHandler(h)
    try:
        with log_context(invocation_id="inv-9", club_id="19430", trace_id="t-1"):
            logger.warning("membership sent", extra={"fields": {"pnr": "19811218-9876", "club": 19430}})
    finally:
        logger.removeHandler(h)
    line = json.loads(JsonFormatter().format(captured[0]))
    assert line["invocation_id"] == "inv-9" and line["club_id"] == "19430" and line["trace_id"] == "t-1"
    assert line["fields"] == {"pnr": "[REDACTED]", "club": 19430}


def test_guard_detects_leaks(sensitive) -> None:
    """The guard itself must be able to fail: it flags raw values in a rendered record."""
    sensitive.add("raw-secret-value-123")
    assert sensitive.findings("x raw-secret-value-123 y")
    assert "JWT" in sensitive.findings(JWT)
    assert "personnummer" in sensitive.findings("19811218-9876")
    assert "fødselsnummer" in sensitive.findings("01017012345")
    assert sensitive.findings("club 19430 traceId 7AC07206") == []
