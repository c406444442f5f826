"""Journal rows: every delivered message, raw, before anything else (row building is pure).

Key: ``PartitionKey = sequence_number // 1000`` (17 digits), ``RowKey = sequence_number``
(20 digits). The broker's sequence number is stable across redeliveries, so a redelivered
message maps onto the same row (idempotent insert), consecutive messages share a partition (a
batch journals in one transaction), and a partition scan returns messages in queue order.
Without a sequence number (never from Service Bus) the message id is the key, partition ``msgid``.

The raw body is kept whole in ``Body`` (text for a UTF-8 body, which is cheaper to store, else
binary), written through tables opened with ``chunked=True``: the adapter splits a value longer
than one property holds into pieces (:mod:`shared.tables_contract`). One entity holds at most
1 MiB, so the row keeps the first :data:`SEGMENT_UNITS` UTF-16 code units of text (an emoji takes
two, :mod:`shared.textsize`) or :data:`SEGMENT_BYTES` of binary, ~840 KB; each further segment of
that size is a ``NifJournalOverflow`` row (``PartitionKey = <pk>-<rk>``, ``RowKey = b00001``…,
``Chunk``), written before the journal row. Message properties longer than
:data:`PROPS_IN_ROW_UNITS` (Service Bus allows 64 KB of them, more once JSON escapes them) go to
overflow rows ``p00000``… the same way, so a journal row can always be written, whatever the
message carries. Both decisions depend on the message alone, so the quarantine row built from the
same message finds the same overflow rows.

Rows written before the adapter chunked values (``Body00``… in the row, 14 of them, then overflow
rows ``000014``…; spilled properties in ``m00000``…) are still read: :func:`raw_from_journal`
tells the layouts apart by ``Meta`` (``segs`` now, ``chunks`` then). Their overflow rows use other
RowKeys, so a redelivered message written again in the current layout never reads them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from shared.nif.queue.envelope import Envelope, PoisonMessage, RawMessage, parse_envelope
from shared.textsize import CHUNK_UNITS, text_chunks, utf16_units

#: One segment: what the journal row (and each overflow row) holds of a body. 14 property pieces
#: of the adapter (30 000 units / 60 000 bytes each) leave room in the 1 MiB entity for ``Meta``.
SEGMENT_UNITS = 14 * CHUNK_UNITS
SEGMENT_BYTES = 14 * 60_000
#: Message properties (with user properties and content type, as JSON) kept in ``Meta``; longer
#: ones go to overflow rows.
PROPS_IN_ROW_UNITS = 60_000
SEQ_PARTITION = 1_000
#: Keys of ``Meta`` that move to overflow rows when they are too long for the row.
_SPILLED = ("props", "user", "ctype")
#: The earlier layout (read only): 14 chunks ``Body00``… in the row.
_LEGACY_IN_ROW = 14


def journal_keys(raw: RawMessage) -> tuple[str, str]:
    if raw.sequence_number is not None:
        return f"{raw.sequence_number // SEQ_PARTITION:017d}", raw.journal_key
    return "msgid", raw.journal_key


def body_segments(body: bytes) -> tuple[str, list[str] | list[bytes]]:
    """``("text", [str…])`` for UTF-8 bodies, else ``("binary", [bytes…])``: at least one segment
    (empty for an empty body), each at most :data:`SEGMENT_UNITS` / :data:`SEGMENT_BYTES`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "binary", [body[i : i + SEGMENT_BYTES] for i in range(0, len(body), SEGMENT_BYTES)]
    return "text", text_chunks(text, SEGMENT_UNITS) or [""]


def needs_overflow(row: dict[str, Any]) -> bool:
    """Whether reading ``row`` back needs its ``NifJournalOverflow`` rows."""
    meta = _meta(row)
    if "segs" in meta:
        return int(meta["segs"]) > 1 or bool(meta.get("propsRows"))
    return int(meta.get("chunks") or 0) > _LEGACY_IN_ROW or bool(meta.get("propsChunks"))


def _meta(row: dict[str, Any]) -> dict[str, Any]:
    meta = row.get("Meta") or {}
    return json.loads(meta) if isinstance(meta, str) else meta


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def journal_rows(
    raw: RawMessage, env: Envelope | None, poison: PoisonMessage | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(journal_row, overflow_rows)`` for one message.

    Columns: ``MessageId``, ``Entity`` (canonical name; ``""`` when it was poison), ``Meta``
    (JSON: sequence number, enqueued time, delivery count, application/user properties, content
    type, parsed envelope or poison reason, body length/encoding/segments), ``Body`` (the raw
    body's first segment). Few columns on purpose: every property costs serialisation in a batch
    transaction. Write both lists through tables opened with ``chunked=True``.
    """
    pk, rk = journal_keys(raw)
    encoding, segments = body_segments(raw.body)
    meta: dict[str, Any] = {
        "seq": raw.sequence_number,
        "enq": _iso(raw.enqueued_time_utc),
        "dc": raw.delivery_count,
        "props": dict(raw.application_properties),
        "len": len(raw.body),
        "enc": encoding,
        "segs": len(segments),
        "at": datetime.now(UTC).isoformat(),
    }
    if raw.user_properties:
        meta["user"] = dict(raw.user_properties)
    if raw.content_type:
        meta["ctype"] = raw.content_type
    if env is not None:
        meta.update(known=env.known, objectId=env.object_id, changeType=int(env.change_type), version=env.version)
    else:
        meta["poison"] = poison.reason if poison else "unparsed"
    overflow_pk = f"{pk}-{rk}"
    overflow = [
        {"PartitionKey": overflow_pk, "RowKey": f"b{i:05d}", "Chunk": segment}
        for i, segment in enumerate(segments[1:], start=1)
    ]
    spilled = json.dumps({k: meta[k] for k in _SPILLED if k in meta}, ensure_ascii=False, default=str)
    if utf16_units(spilled) > PROPS_IN_ROW_UNITS:
        pieces = text_chunks(spilled, SEGMENT_UNITS)
        for k in _SPILLED:
            meta.pop(k, None)
        meta["propsRows"] = len(pieces)
        overflow.extend(
            {"PartitionKey": overflow_pk, "RowKey": f"p{i:05d}", "Chunk": piece} for i, piece in enumerate(pieces)
        )
    row: dict[str, Any] = {
        "PartitionKey": pk,
        "RowKey": rk,
        "MessageId": raw.message_id[:1024],  # Service Bus caps ids at 128 characters
        "Entity": env.entity if env is not None else "",
        "Meta": meta,
        "Body": segments[0],
    }
    return row, overflow


def raw_from_journal(row: dict[str, Any], overflow: Iterable[dict[str, Any]] | None = None) -> RawMessage:
    """Rebuild the delivered message from its journal row (and its overflow rows, in any order),
    written in the current layout or the earlier one (module docstring)."""
    meta = _meta(row)
    extra = {r["RowKey"]: r.get("Chunk") for r in overflow or []}
    if "segs" in meta:
        n = int(meta["segs"])
        parts = [row.get("Body"), *(extra.get(f"b{i:05d}") for i in range(1, n))]
        spilled = [extra.get(f"p{i:05d}") for i in range(int(meta.get("propsRows") or 0))]
    else:  # the earlier layout
        n = int(meta.get("chunks") or 0)
        parts = [row.get(f"Body{i:02d}") for i in range(min(n, _LEGACY_IN_ROW))]
        parts += [extra.get(f"{i:06d}") for i in range(_LEGACY_IN_ROW, n)]
        spilled = [extra[k] for k in sorted(extra) if k.startswith("m")] if meta.get("propsChunks") else []
    if spilled:
        meta = {**meta, **json.loads("".join(p or "" for p in spilled))}
    if meta.get("enc") == "binary":
        body = b"".join(bytes(p or b"") for p in parts)
    else:
        body = "".join(p or "" for p in parts).encode("utf-8")
    enq = meta.get("enq")
    return RawMessage(
        message_id=row.get("MessageId") or "",
        sequence_number=meta.get("seq"),
        enqueued_time_utc=datetime.fromisoformat(enq) if enq else None,
        delivery_count=meta.get("dc"),
        application_properties=dict(meta.get("props") or {}),
        user_properties=dict(meta.get("user") or {}),
        body=body,
        content_type=meta.get("ctype"),
    )


def classify(raw: RawMessage) -> tuple[Envelope | None, PoisonMessage | None]:
    """The envelope, or why the message is poison. Never raises: a message the parser cannot
    handle (a bug on our side included) is quarantined, so it cannot hold back its batch."""
    try:
        return parse_envelope(raw), None
    except PoisonMessage as exc:
        return None, exc
    except Exception as exc:  # noqa: BLE001 - isolation: one message must not fail the batch
        return None, PoisonMessage(f"unparseable message ({type(exc).__name__})")
