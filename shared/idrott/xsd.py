"""Validate an import file against ``schema/import_v1.xsd`` plus the rules XSD 1.0 cannot say.

``validate_file(path_or_bytes)`` returns ``None`` or raises :class:`InvalidExportFile` whose
``errors`` are ``"line N: message"`` strings (no file content beyond what libxml2 quotes of
element names and values; personnummer patterns are never echoed by our own checks).
The compiled schema is cached for the process (reset hook via ``shared.lifecycle`` when present).
The whole file is parsed (bounded by IDROTTONLINE_MAX_FILE_BYTES, not by the club size).
lxml is imported on first use.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from shared.idrott import elements as E
from shared.lifecycle import on_reset

__all__ = ["InvalidExportFile", "reset_schema_cache", "schema_path", "validate_file"]

SCHEMA_PATH = Path(__file__).with_name("schema") / "import_v1.xsd"


class InvalidExportFile(ValueError):
    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        shown = "; ".join(self.errors[:5]) + (f" (+{len(self.errors) - 5} more)" if len(self.errors) > 5 else "")
        super().__init__(f"import file does not validate: {shown}")


def schema_path() -> Path:
    return SCHEMA_PATH


@functools.cache
def _schema() -> Any:
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))


def reset_schema_cache() -> None:
    _schema.cache_clear()


on_reset(reset_schema_cache)


def _parse(source: str | os.PathLike[str] | bytes) -> Any:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=False)
    try:
        if isinstance(source, (bytes, bytearray)):
            return etree.fromstring(bytes(source), parser).getroottree()
        return etree.parse(os.fspath(source), parser)
    except etree.XMLSyntaxError as exc:
        raise InvalidExportFile([f"line {exc.lineno}: not well-formed XML: {exc.msg}"]) from None


def validate_file(path_or_bytes: str | os.PathLike[str] | bytes) -> None:
    """Raise :class:`InvalidExportFile` unless the document is a valid v1 import file."""
    doc = _parse(path_or_bytes)
    schema = _schema()
    if not schema.validate(doc):
        raise InvalidExportFile([f"line {e.line}: {e.message}" for e in schema.error_log])
    errors = _semantic_errors(doc.getroot())
    if errors:
        raise InvalidExportFile(errors)


def _semantic_errors(root: Any) -> list[str]:
    errors: list[str] = []
    seq = int(root.findtext(E.FILE_SEQUENCE))
    count = int(root.findtext(E.FILE_COUNT))
    if seq > count:
        errors.append(f"{E.FILE_SEQUENCE} {seq} is greater than {E.FILE_COUNT} {count}")
    for person in root.iterfind(f"{E.PERSONS}/{E.PERSON}"):
        if person.find(E.PERSONAL_IDENTITY_NUMBER) is None:
            nat = person.findtext(E.NATIONALITY)
            pid = person.findtext(E.EXTERNAL_IDENTIFICATION)
            if nat is None:
                errors.append(
                    f"line {person.sourceline}: person {pid}: {E.NATIONALITY} required without {E.PERSONAL_IDENTITY_NUMBER}"
                )
            elif nat == "SE":
                errors.append(
                    f"line {person.sourceline}: person {pid}: {E.NATIONALITY} SE needs a {E.PERSONAL_IDENTITY_NUMBER}"
                )
    for act in root.iterfind(f"{E.ACTIVITIES}/{E.ACTIVITY}"):
        option = act.findtext(E.OPTION_TYPE)
        is_short = act.find(E.TYPE_ID) is None
        aid = act.findtext(E.ACTIVITY_ID)
        if option == E.OPTION_DELETE and not is_short:
            errors.append(
                f"line {act.sourceline}: activity {aid}: a Delete carries only {E.ACTIVITY_ID}, {E.OPTION_TYPE}, {E.ORGANISATION_NUMBER}"
            )
        elif option == E.OPTION_INSERT and is_short:
            errors.append(f"line {act.sourceline}: activity {aid}: an Insert needs the whole activity")
        elif not is_short and act.findtext(E.END_TIME) <= act.findtext(E.START_TIME):
            errors.append(f"line {act.sourceline}: activity {aid}: {E.END_TIME} must be after {E.START_TIME}")
    return errors
