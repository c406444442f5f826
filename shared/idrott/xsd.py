"""Validate an import file against ``schema/import_v1.xsd`` plus the rules XSD 1.0 cannot say.

``validate_file(path_or_bytes)`` returns ``None`` or raises :class:`InvalidExportFile` whose
``errors`` are ``"line N: message"`` strings (no file content beyond what libxml2 quotes of
element names and values; personnummer patterns are never echoed by our own checks).
The compiled schema is cached for the process (reset hook via ``shared.lifecycle`` when present).
A file is validated while it is parsed (``iterparse``, each record dropped once checked), so memory
stays flat however large the file; only a file that is refused is parsed whole again, with the
schema as written, to list every error with its line.

**Identity constraints while streaming.** libxml2 keeps a table entry per ``xs:key``/``xs:unique``/
``xs:keyref`` value for the whole document: about 7 MiB for a 10 MB file, most of a big club's
export memory. The streamed pass therefore uses the schema without those three constraints and
checks them itself, persons before activities as the schema orders them, with
:class:`shared.idrott.idset.IdSet` (16 bytes an id). A refused file goes to the whole-document
check, so the error list is the schema's own."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.idrott import elements
from shared.idrott.idset import IdSet
from shared.lifecycle import on_reset

__all__ = [
    "InvalidExportFile",
    "SingleRecord",
    "reset_schema_cache",
    "schema_path",
    "single_record_documents",
    "validate_file",
]

SCHEMA_PATH = Path(__file__).with_name("schema") / "import_v1.xsd"
XS = "http://www.w3.org/2001/XMLSchema"


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


@functools.cache
def _streaming_schema() -> Any:
    """The schema without its identity constraints (module docstring), for the streamed pass."""
    from lxml import etree

    doc = etree.parse(str(SCHEMA_PATH))
    for el in list(doc.iter(*(f"{{{XS}}}{tag}" for tag in ("key", "unique", "keyref")))):
        parent = el.getparent()
        if parent is not None:
            parent.remove(el)
    return etree.XMLSchema(doc)


def reset_schema_cache() -> None:
    _schema.cache_clear()
    _streaming_schema.cache_clear()


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
    if not _valid_streamed(path_or_bytes):
        _whole_document_check(path_or_bytes)  # refused, or a digest collision: the exact verdict


def _whole_document_check(path_or_bytes: str | os.PathLike[str] | bytes) -> None:
    """The whole tree against the schema as written, then our rules: every error with its line."""
    doc = _parse(path_or_bytes)
    schema = _schema()
    if not schema.validate(doc):
        raise InvalidExportFile([f"line {e.line}: {e.message}" for e in schema.error_log])
    errors = _semantic_errors(doc.getroot())
    if errors:
        raise InvalidExportFile(errors)


def _valid_streamed(source: str | os.PathLike[str] | bytes) -> bool:
    """Whether the document is valid, checked while parsing (schema, identity constraints and our
    rules), each record dropped once checked: memory does not grow with the file. ``False`` on
    any error."""
    import io

    from lxml import etree

    stream = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray)) else os.fspath(source)
    errors: list[str] = []
    numbers: dict[str, int] = {}
    sections = {elements.PERSON: elements.PERSONS, elements.ACTIVITY: elements.ACTIVITIES}
    tags = (*sections, elements.FILE_SEQUENCE, elements.FILE_COUNT, elements.IMPORT)
    persons, activities = IdSet(b"xsd-person"), IdSet(b"xsd-activity")
    in_activities = False
    ended = False
    try:
        for _, el in etree.iterparse(
            stream, events=("end",), tag=tags, schema=_streaming_schema(), resolve_entities=False, no_network=True
        ):
            parent = el.getparent()
            if parent is None:
                ended = el.tag == elements.IMPORT  # a truncated document never gets here
            elif el.tag in sections:
                if parent.tag == sections[el.tag]:
                    if el.tag == elements.PERSON:
                        errors += _person_errors(el)
                        if in_activities or not persons.add(el.findtext(elements.EXTERNAL_IDENTIFICATION) or ""):
                            return False  # PersonKey: a repeated person (or one after the activities)
                    else:
                        in_activities = True
                        errors += _activity_errors(el)
                        if not activities.add(el.findtext(elements.ACTIVITY_ID) or ""):
                            return False  # ActivityKey: a repeated activity
                        if not all(p.text in persons for p in el.iter(elements.PERSON_ID)):
                            return False  # ParticipantResolves: a PersonId that names no Person of the file
                    el.clear()
                    while el.getprevious() is not None:
                        del parent[0]
            elif parent.getparent() is None:
                numbers[str(el.tag)] = int(el.text or 0)
    except (etree.XMLSyntaxError, ValueError):
        return False
    seq, count = numbers.get(elements.FILE_SEQUENCE, 0), numbers.get(elements.FILE_COUNT, 0)
    return ended and not errors and seq <= count


def _semantic_errors(root: Any) -> list[str]:
    errors: list[str] = []
    seq = int(root.findtext(elements.FILE_SEQUENCE))
    count = int(root.findtext(elements.FILE_COUNT))
    if seq > count:
        errors.append(f"{elements.FILE_SEQUENCE} {seq} is greater than {elements.FILE_COUNT} {count}")
    for person in root.iterfind(f"{elements.PERSONS}/{elements.PERSON}"):
        errors += _person_errors(person)
    for act in root.iterfind(f"{elements.ACTIVITIES}/{elements.ACTIVITY}"):
        errors += _activity_errors(act)
    return errors


def _person_errors(person: Any) -> list[str]:
    if person.find(elements.PERSONAL_IDENTITY_NUMBER) is not None:
        return []
    nat = person.findtext(elements.NATIONALITY)
    pid = person.findtext(elements.EXTERNAL_IDENTIFICATION)
    if nat is None:
        return [
            f"line {person.sourceline}: person {pid}: {elements.NATIONALITY} required without {elements.PERSONAL_IDENTITY_NUMBER}"
        ]
    if nat == "SE":
        return [
            f"line {person.sourceline}: person {pid}: {elements.NATIONALITY} SE needs a {elements.PERSONAL_IDENTITY_NUMBER}"
        ]
    return []


def _activity_errors(act: Any) -> list[str]:
    option = act.findtext(elements.OPTION_TYPE)
    is_short = act.find(elements.TYPE_ID) is None
    aid = act.findtext(elements.ACTIVITY_ID)
    if option == elements.OPTION_DELETE and not is_short:
        return [
            f"line {act.sourceline}: activity {aid}: a Delete carries only {elements.ACTIVITY_ID}, {elements.OPTION_TYPE}, {elements.ORGANISATION_NUMBER}"
        ]
    if option == elements.OPTION_INSERT and is_short:
        return [f"line {act.sourceline}: activity {aid}: an Insert needs the whole activity"]
    if not is_short and act.findtext(elements.END_TIME) <= act.findtext(elements.START_TIME):
        return [f"line {act.sourceline}: activity {aid}: {elements.END_TIME} must be after {elements.START_TIME}"]
    return []


@dataclass(frozen=True, slots=True)
class SingleRecord:
    kind: str  # "person" | "activity"
    record_id: str | None  # ExternalIdentification / ActivityId (None when the element has none)
    refers_to: tuple[str, ...]  # an activity's PersonIds
    document: bytes  # the file's header + this record (+ the persons an activity refers to)


def single_record_documents(source: str | os.PathLike[str] | bytes) -> tuple[bytes, list[SingleRecord]]:
    """Split an import file into one-record documents with the file's own header.

    Returns ``(header_only, records)``: ``header_only`` is the file without
    ``Persons``/``Activities``; each :class:`SingleRecord` document is the header plus one
    ``Person``, or one ``Activity`` with the file's ``Person`` elements it refers to (the XSD
    resolves every ``PersonId`` in the same file). Validating them one by one tells which records
    a refusal of the whole file is about. Parsing is safe (no entities, no network).
    """
    from copy import deepcopy

    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    if isinstance(source, (bytes, bytearray)):
        root = etree.fromstring(bytes(source), parser)
    else:
        root = etree.parse(os.fspath(source), parser).getroot()
    bare = deepcopy(root)
    for section in list(bare):
        if section.tag in (elements.PERSONS, elements.ACTIVITIES):
            bare.remove(section)

    def document(persons: Sequence[Any], activity: Any | None) -> bytes:
        doc = deepcopy(bare)
        if persons:
            ps = etree.SubElement(doc, elements.PERSONS)
            for el in persons:
                ps.append(deepcopy(el))
        if activity is not None:
            etree.SubElement(doc, elements.ACTIVITIES).append(deepcopy(activity))
        return etree.tostring(doc, encoding="UTF-8", xml_declaration=True)

    by_id: dict[str, Any] = {}
    out: list[SingleRecord] = []
    for el in root.iterfind(f"{elements.PERSONS}/{elements.PERSON}"):
        pid = el.findtext(elements.EXTERNAL_IDENTIFICATION)
        if pid is not None:
            by_id.setdefault(pid, el)
        out.append(SingleRecord("person", pid, (), document([el], None)))
    for el in root.iterfind(f"{elements.ACTIVITIES}/{elements.ACTIVITY}"):
        refs = tuple(dict.fromkeys(t for t in (p.text for p in el.iter(elements.PERSON_ID)) if t is not None))
        needed = [by_id[r] for r in refs if r in by_id]
        out.append(SingleRecord("activity", el.findtext(elements.ACTIVITY_ID), refs, document(needed, el)))
    return etree.tostring(bare, encoding="UTF-8", xml_declaration=True), out
