"""The row layout of ``IdrottRecords`` and the stored records read from it (no I/O here).

One table ``IdrottRecords`` (prefixed), one partition per club (``PartitionKey=<clubId>``):

=====================  ===========================================================================
RowKey                 row
=====================  ===========================================================================
``P|<externalId>``     person: intake JSON (``data``), ``hash`` (core
                       ``content_hash`` of the intake JSON), ``exported_hash`` (core
                       ``export_marker`` last uploaded, absent if never), ``active`` (False = the
                       member left: tombstone, exported as ``IsActive=false``), ``updated_at``,
                       ``left_at``, ``exported_at``
``A|<activityId>``     activity: intake JSON, ``hash``, ``exported_hash``, ``deleted`` (tombstone
                       → ``OptionType=Delete``), ``start_time`` (UTC, narrows a full load's scan
                       to the LOK period), ``updated_at``, ``exported_at``
``D|P|<id>``,          dirty markers: written in the same transaction as the record on every
``D|A|<id>``           intake write once the club's first full load has started (before it,
                       none: the full load reads the whole club); a later run reads only this
                       key range plus the records it names, never the whole club
                       (:mod:`shared.idrott.store`: the bookkeeping)
``I|<bucket>``         personnummer index (:mod:`shared.idrott.pnrindex`), 64 bucket rows: ``holders``
                       maps the digest of each personnummer in the bucket to the ``external_id``
                       of the one person holding it in the club
``M|pnr-buckets``      the index was built for the club's persons stored before it existed
``N|<digest>``,        the earlier layout of the index, one row per personnummer; replaced by the
``M|pnr-index``        buckets (and deleted) on the club's next person intake
=====================  ===========================================================================

The intake JSON is one value, ``data``, written through a table opened with ``chunked=True``: the
adapter stores a record longer than one property holds in pieces (:mod:`shared.tables_contract`).
Rows written before that carry it as ``d0..dN`` with the count ``dn``; :func:`record_data` still
reads them (a later intake write MERGEs ``data`` into such a row, which then wins).

A person row may also be an **alias** (``moved_to=<new id>``, ``active=False``): the person was
re-keyed (``replacesExternalId``); it is never exported as a person, and activities naming it
are exported with the new id.

The three shapes of a person (and of an activity), each for one job:
:class:`~shared.idrott.models.Person` is what intake accepts (the API's JSON, validated, with the
``replacesExternalId`` instruction); :class:`StoredPerson` is a stored row: that JSON plus its
export state (hashes, ``active``, ``moved_to``), what the delta selection tracks (it satisfies
:class:`shared.idrott.delta.Tracked`); :class:`~shared.idrott.xmlrecords.PersonRecord` is what
the XML writer and the LOK prognosis read (light, frozen, a member who left already has every
sport inactive).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from shared.idrott.models import Activity, Person
from shared.idrott.xmlrecords import ActivityRecord, PersonRecord

TABLE = "IdrottRecords"
P, A, D = "P|", "A|", "D|"
I = "I|"  # personnummer index buckets
PNR_BUCKETS_META = "M|pnr-buckets"
N = "N|"  # personnummer index, one row per personnummer: the earlier layout, migrated to I|
PNR_INDEX_META = "M|pnr-index"  # the earlier layout's "built" row
#: Longest id the DELETE routes look up. Ids intake accepts have at most 64 characters (ids stored
#: before full-string matching at most 65: a trailing newline); every key up to this length fits
#: Table Storage's 1 KiB even with every character escaped (``~XX`` per UTF-8 byte).
MAX_LOOKUP_ID = 80
#: Table Storage: operations per transaction.
MAX_OPS = 100
#: Validation context for records read back: limits added after a record was written (sports or
#: participants per record, the date-time range) do not make it unreadable (models._stored).
_STORED = {"stored": True}
#: The record's intake JSON (a dict; the adapter stores it as JSON text, in pieces when long).
DATA = "data"


def record_data(row: dict) -> dict:
    """The record's intake JSON: ``data``, or for a row written before, its ``d0..dN`` (``dn``)."""
    if DATA in row:
        return dict(row[DATA])
    n = int(row.get("dn") or 0)
    return json.loads("".join(row.get(f"d{i}", "") for i in range(n)))


def lookup_id_ok(value: str) -> bool:
    """Whether a DELETE route may look ``value`` up: any non-empty string up to
    :data:`MAX_LOOKUP_ID` characters that Table Storage can hold (legacy ids included)."""
    if not value or len(value) > MAX_LOOKUP_ID:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: can never have been stored
        return False
    return True


def key_range(prefix: str) -> tuple[str, dict]:
    """Filter for the RowKeys of one kind. Bounds are single letters (``P`` ≤ key < ``Q``): Azurite
    does not order punctuation ordinally (``'P|x' lt 'P}'`` is false there), letters it does."""
    lo = prefix[0]
    return "RowKey ge @lo and RowKey lt @hi", {"lo": lo, "hi": chr(ord(lo) + 1)}


@dataclass
class StoredPerson:
    """A person row: the intake JSON and its export state (module docstring: the three shapes)."""

    external_id: str
    data: dict
    content_hash: str
    exported_hash: str | None
    active: bool
    row: dict = field(repr=False, default_factory=dict)
    moved_to: str = ""  # re-keyed: an alias of that person, never exported itself

    @property
    def record_id(self) -> str:
        return self.external_id

    @property
    def tombstone(self) -> bool:
        """The member left: exported with every sport inactive."""
        return not self.active

    def model(self) -> Person:
        return Person.model_validate(self.data, context=_STORED)

    def record(self) -> PersonRecord:
        """The writer's record; a member who left has every sport ``IsActive=false``."""
        return PersonRecord.from_model(self.model(), left=not self.active)


@dataclass
class StoredActivity:
    """An activity row: the intake JSON and its export state (a deleted one is a tombstone)."""

    activity_id: str
    data: dict
    content_hash: str
    exported_hash: str | None
    deleted: bool
    exported_deleted: bool
    start_time: datetime | None  # UTC; from the JSON for rows written before the column existed
    row: dict = field(repr=False, default_factory=dict)

    @property
    def record_id(self) -> str:
        return self.activity_id

    @property
    def tombstone(self) -> bool:
        return self.deleted

    @property
    def participant_ids(self) -> tuple[str, ...]:
        return tuple(p["personId"] for p in self.data.get("participants", []))

    def model(self) -> Activity:
        return Activity.model_validate(self.data, context=_STORED)

    def record(self) -> ActivityRecord:
        return ActivityRecord.delete(self.activity_id) if self.deleted else ActivityRecord.from_model(self.model())


def person_from_row(row: dict) -> StoredPerson:
    return StoredPerson(
        row["RowKey"][len(P) :],
        record_data(row),
        row.get("hash", ""),
        row.get("exported_hash"),
        row.get("active", True) is not False,
        row,
        row.get("moved_to") or "",
    )


def activity_from_row(row: dict) -> StoredActivity:
    data = record_data(row)
    start = row.get("start_time")
    if start is None and data.get("startTime"):
        start = datetime.fromisoformat(data["startTime"])
    return StoredActivity(
        row["RowKey"][len(A) :],
        data,
        row.get("hash", ""),
        row.get("exported_hash"),
        bool(row.get("deleted")),
        bool(row.get("exported_deleted")),
        start,
        row,
    )
