"""Streaming writer of IdrottOnline import files (file model v1), split under a size limit.

What each record becomes in XML is :mod:`shared.idrott.xmlrecords`; this module decides which
file it goes into.

Memory stays flat as the club grows: records are consumed one at a time from iterables and
written with ``lxml.etree.xmlfile`` into two spool files on disk (one for ``Person`` elements,
one for ``Activity`` elements). What is held in memory is the set of person ids already in the
*current* file (bounded by ``max_file_bytes``, not by the club; 16 bytes an id,
:mod:`shared.idrott.idset`) and the per-file offsets.

**Splitting and self-contained files.** Persons come first (the ``persons`` iterable: changed
persons, or everybody on a first run), then activities. Each activity is written together with
every participant not yet in the current file (looked up with ``person_lookup``), as one unit.
After each unit the spool files are flushed and the exact file size is known; if the unit made
the file exceed ``max_file_bytes`` it is rolled back (spool truncated), the file is closed and
the unit is written again into a fresh file. So every file is under the limit and every
``PersonId`` in a file resolves to a ``Person`` in that same file (a person can therefore appear
in several files of a run: harmless, IdrottOnline upserts by id).

**FileCount.** It is only known after the last unit. Because the content sits in the spool
files, the final files are assembled at the end: header (with the real ``FileSequence`` /
``FileCount``) + the file's byte range of each spool + closing tags, copied in 64 KiB chunks through one buffer
into ``open_file(sequence)`` while the SHA-256 is computed. The size check during writing uses
a header with a 6-digit placeholder count, an upper bound, so the real file is never larger.

**A record that cannot be sent** (``on_skip``). Without ``on_skip`` the writer raises
:class:`RecordTooLarge` / :class:`UnresolvedParticipant` / the element's ``ValueError``. With it,
such a unit (a person, or an activity with the participants it needs) is rolled back, reported
as ``on_skip(kind, record_id, exc)`` and left out; the run goes on with the next unit, so one bad
record never holds back the others. :func:`shared.idrott.xsd.single_record_documents` splits a
written file into one-record documents, so a caller can find which records an XSD refusal is about.

lxml is imported inside the functions (cold start).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from shared.idrott import elements
from shared.idrott.idset import IdSet
from shared.idrott.xmlrecords import RunHeader, activity_element, file_name, header_bytes, person_element

if TYPE_CHECKING:  # pragma: no cover
    from lxml.etree import xmlfile
    from lxml.etree._serializer import _IncrementalFileWriter  # a name of the stubs only

__all__ = [
    "PLACEHOLDER_COUNT",
    "FileInfo",
    "RecordTooLarge",
    "UnresolvedParticipant",
    "write_run",
    "write_run_to_dir",
]

#: Widest FileSequence/FileCount we reserve room for: the header is measured with it while writing.
PLACEHOLDER_COUNT = 999_999
#: Copy buffer for assembling files (a 1 MiB one was most of what a 10 MB file's run grew by).
_COPY_CHUNK = 1 << 16


class RecordTooLarge(ValueError):
    """One activity with its participants (or one person) does not fit in ``max_file_bytes``."""


class UnresolvedParticipant(ValueError):
    """An activity's participant is neither in the current file nor found by ``person_lookup``."""

    def __init__(self, activity_id: str, person_id: str) -> None:
        super().__init__(f"activity {activity_id}: participant {person_id} does not resolve to a person")
        self.activity_id = activity_id
        self.person_id = person_id


@dataclass(frozen=True, slots=True)
class FileInfo:
    name: str
    sequence: int
    count: int
    size: int
    sha256: str
    persons: int  # Person elements in the file (a person may repeat across files)
    activities: int  # Activity elements with OptionType=Insert
    deletes: int  # Activity elements with OptionType=Delete
    batch_id: str = ""


PersonLookup = Callable[[str], Any] | Mapping[str, Any]
#: ``on_skip(kind, record_id, exc)``: ``kind`` is ``"person"`` or ``"activity"``; ``exc`` says why
#: (:class:`RecordTooLarge`, :class:`UnresolvedParticipant`, or the ``ValueError`` building the
#: element raised, e.g. lxml refusing a text). Other exceptions (a writer bug) still fail the run.
SkipHandler = Callable[[str, str, Exception], None]


# --- the run ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    sequence: int
    p_range: tuple[int, int] = (0, 0)
    a_range: tuple[int, int] = (0, 0)
    persons: int = 0
    activities: int = 0
    deletes: int = 0


class _Section:
    """One xmlfile on a spool file, wrapping a file's Persons or Activities section."""

    __slots__ = ("_el_cm", "_xf", "_xf_cm", "spool", "start", "tag")

    def __init__(self, spool: BinaryIO, tag: str) -> None:
        self.spool = spool
        self.tag = tag
        self._xf: _IncrementalFileWriter | None = None

    def open(self) -> None:
        from lxml import etree

        self.start = self.spool.tell()
        self._xf_cm: xmlfile = etree.xmlfile(self.spool, encoding="utf-8")
        xf = self._xf = self._xf_cm.__enter__()
        self._el_cm: AbstractContextManager[None] = xf.element(self.tag)
        self._el_cm.__enter__()
        xf.flush()

    def _writer(self) -> _IncrementalFileWriter:
        if self._xf is None:
            raise RuntimeError(f"section {self.tag} is not open")
        return self._xf

    def write(self, el: Any) -> None:
        self._writer().write(el)

    def mark(self) -> int:
        self._writer().flush()
        return self.spool.tell()

    def rollback(self, pos: int) -> None:
        self._writer().flush()
        self.spool.seek(pos)
        self.spool.truncate()

    def close(self) -> tuple[int, int]:
        self._el_cm.__exit__(None, None, None)
        self._xf_cm.__exit__(None, None, None)
        self._xf = None
        self.spool.flush()
        return self.start, self.spool.tell()


def _resolver(person_lookup: PersonLookup | None) -> Callable[[str], Any]:
    if person_lookup is None:
        return lambda _pid: None
    if isinstance(person_lookup, Mapping):
        return person_lookup.get
    return person_lookup


def write_run(
    header: RunHeader,
    persons: Iterable[Any],
    activities: Iterable[Any],
    *,
    max_file_bytes: int,
    open_file: Callable[[int], BinaryIO],
    person_lookup: PersonLookup | None = None,
    temp_dir: str | None = None,
    on_skip: SkipHandler | None = None,
) -> list[FileInfo]:
    """Write one run as files of at most ``max_file_bytes`` each; return their :class:`FileInfo`.

    ``persons``: :class:`PersonRecord` or :class:`~shared.idrott.models.Person` to send (all
    of them on a first run, the changed ones later; a member who left has every sport
    ``is_active=False``). ``activities``: :class:`ActivityRecord` / ``Activity`` (inserts) and
    ``ActivityRecord.delete(id)``. ``person_lookup`` (mapping or callable, ``None`` when
    unknown) resolves participants that are not already in the current file.

    ``open_file(sequence)`` is called once per file, in sequence order, only after the whole
    run is planned (so ``FileCount`` is final and :func:`file_name` can name it); the writer
    writes the file and closes the returned object. Nothing is written (and ``[]`` returned)
    when there are neither persons nor activities (or every one was skipped). Raises
    :class:`UnresolvedParticipant` or :class:`RecordTooLarge` (always when the header alone
    leaves no room) unless ``on_skip`` is given: then a unit that cannot be written is left out
    and reported (module docstring). Spool files are removed in every case.
    """
    from lxml import etree

    lookup = _resolver(person_lookup)
    header_upper = len(header_bytes(header, PLACEHOLDER_COUNT, PLACEHOLDER_COUNT))
    fixed = (
        header_upper + len(f"</{elements.PERSONS}>") + len(f"</{elements.ACTIVITIES}>") + len(f"</{elements.IMPORT}>\n")
    )
    if fixed >= max_file_bytes:
        raise RecordTooLarge(f"max_file_bytes={max_file_bytes} leaves no room after the header")

    plans: list[_Plan] = []
    with tempfile.TemporaryFile(dir=temp_dir) as pspool, tempfile.TemporaryFile(dir=temp_dir) as aspool:
        psec = _Section(pspool, elements.PERSONS)
        asec = _Section(aspool, elements.ACTIVITIES)
        state: dict[str, Any] = {"plan": None, "ids": IdSet(b"writer")}

        def start_file() -> None:
            state["plan"] = _Plan(sequence=len(plans) + 1)
            state["ids"] = IdSet(b"writer")
            psec.open()
            asec.open()

        def finish_file() -> None:
            plan: _Plan = state["plan"]
            plan.p_range = psec.close()
            plan.a_range = asec.close()
            plans.append(plan)
            state["plan"] = None

        def size(pe: int, ae: int) -> int:
            return fixed + (pe - psec.start) + (ae - asec.start)

        def write_unit(unit_persons: Sequence[Any], activity: Any | None) -> bool:
            """Write a unit into the current file; False (rolled back) if it does not fit."""
            plan: _Plan = state["plan"]
            # every element is built before anything is written: a record the writer cannot
            # express (a ValueError from lxml) leaves the spool files untouched
            elements = [person_element(p, header, etree) for p in unit_persons]
            act_el = None if activity is None else activity_element(activity, header, etree)
            p0, a0 = psec.mark(), asec.mark()
            for el in elements:
                psec.write(el)
            if act_el is not None:
                asec.write(act_el)
            if size(psec.mark(), asec.mark()) <= max_file_bytes:
                ids = state["ids"]
                for p in unit_persons:
                    ids.add(p.external_id)
                plan.persons += len(unit_persons)
                if activity is not None:
                    if getattr(activity, "deleted", False):
                        plan.deletes += 1
                    else:
                        plan.activities += 1
                return True
            psec.rollback(p0)
            asec.rollback(a0)
            return False

        def empty() -> bool:
            plan: _Plan = state["plan"]
            return plan.persons == 0 and plan.activities == 0 and plan.deletes == 0

        def attempt(unit_for_file: Callable[[], Sequence[Any]], activity: Any | None, what: str) -> None:
            if state["plan"] is None:
                start_file()
            if write_unit(unit_for_file(), activity):
                return
            if empty():
                raise RecordTooLarge(f"{what} does not fit in max_file_bytes={max_file_bytes}")
            finish_file()
            start_file()
            if not write_unit(unit_for_file(), activity):
                raise RecordTooLarge(f"{what} does not fit in max_file_bytes={max_file_bytes}")

        def add(
            unit_for_file: Callable[[], Sequence[Any]], activity: Any | None, what: str, kind: str, record_id: str
        ) -> None:
            if on_skip is None:
                attempt(unit_for_file, activity, what)
                return
            try:
                attempt(unit_for_file, activity, what)
            except ValueError as exc:  # RecordTooLarge, UnresolvedParticipant, lxml refusing a text
                on_skip(kind, record_id, exc)  # rolled back (or never written): the run goes on

        try:
            for p in persons:
                if state["plan"] is not None and p.external_id in state["ids"]:
                    continue  # repeated in the input: once per file is enough

                def alone(p: Any = p) -> tuple[Any]:
                    return (p,)

                add(alone, None, f"person {p.external_id}", "person", p.external_id)

            for a in activities:
                if getattr(a, "deleted", False):
                    add(tuple, a, f"activity {a.activity_id}", "activity", a.activity_id)
                    continue

                def needed(a: Any = a) -> list[Any]:
                    ids = state["ids"]
                    out = []
                    for part in a.participants:
                        pid = part.person_id
                        if pid in ids:
                            continue
                        rec = lookup(pid)
                        if rec is None:
                            raise UnresolvedParticipant(a.activity_id, pid)
                        out.append(rec)
                    return out

                add(needed, a, f"activity {a.activity_id} with its participants", "activity", a.activity_id)
            if state["plan"] is not None:
                if empty():  # opened for a unit that was then skipped: no file
                    psec.close()
                    asec.close()
                    state["plan"] = None
                else:
                    finish_file()
        except BaseException:
            if state["plan"] is not None:
                with contextlib.suppress(Exception):  # already failing: the original error is raised
                    psec.close()
                    asec.close()
            raise

        count = len(plans)
        return [_assemble(header, plan, count, pspool, aspool, open_file) for plan in plans]


def _copy_range(spool: BinaryIO, rng: tuple[int, int], out: BinaryIO, h: Any) -> int:
    start, end = rng
    spool.seek(start)
    left = end - start
    buf = memoryview(bytearray(min(_COPY_CHUNK, max(left, 1))))
    while left > 0:
        n = spool.readinto(buf[: min(len(buf), left)])  # type: ignore[attr-defined]  # a real file
        if not n:  # pragma: no cover
            raise OSError("spool file ended early")
        out.write(buf[:n])
        h.update(buf[:n])
        left -= n
    return end - start


def _assemble(
    header: RunHeader,
    plan: _Plan,
    count: int,
    pspool: BinaryIO,
    aspool: BinaryIO,
    open_file: Callable[[int], BinaryIO],
) -> FileInfo:
    h = hashlib.sha256()
    total = 0
    out = open_file(plan.sequence)
    try:
        head = header_bytes(header, plan.sequence, count)
        out.write(head)
        h.update(head)
        total += len(head)
        if plan.persons:
            total += _copy_range(pspool, plan.p_range, out, h)
        if plan.activities or plan.deletes:
            total += _copy_range(aspool, plan.a_range, out, h)
        tail = f"</{elements.IMPORT}>\n".encode()
        out.write(tail)
        h.update(tail)
        total += len(tail)
        out.flush()
    finally:
        out.close()
    return FileInfo(
        name=file_name(header, plan.sequence, count),
        sequence=plan.sequence,
        count=count,
        size=total,
        sha256=h.hexdigest(),
        persons=plan.persons,
        activities=plan.activities,
        deletes=plan.deletes,
        batch_id=header.batch_id,
    )


def write_run_to_dir(
    header: RunHeader,
    persons: Iterable[Any],
    activities: Iterable[Any],
    *,
    max_file_bytes: int,
    directory: str | os.PathLike[str],
    person_lookup: PersonLookup | None = None,
    on_skip: SkipHandler | None = None,
) -> list[FileInfo]:
    """:func:`write_run` into ``directory``, each file under its :func:`file_name`."""
    names: dict[int, str] = {}

    def open_file(seq: int) -> BinaryIO:
        path = os.path.join(directory, f".{header.batch_id}.{seq}.tmp")
        names[seq] = path
        return open(path, "wb")

    infos = write_run(
        header,
        persons,
        activities,
        max_file_bytes=max_file_bytes,
        open_file=open_file,
        person_lookup=person_lookup,
        temp_dir=str(directory),
        on_skip=on_skip,
    )
    for info in infos:
        os.replace(names[info.sequence], os.path.join(directory, info.name))
    return infos
