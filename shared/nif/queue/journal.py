"""Journal rows: every delivered message, raw, before anything else (row building is pure).

Key: ``PartitionKey = sequence_number // 1000`` (17 digits), ``RowKey = sequence_number``
(20 digits). The broker's sequence number is stable across redeliveries, so a redelivered
message maps onto the same row (idempotent insert), consecutive messages share a partition (a
batch journals in one transaction), and a partition scan returns messages in queue order.
Without a sequence number (never from Service Bus) the message id is the key, partition ``msgid``.

The raw body is kept in chunks ``Body00``, ``Body01``, ... below the 64 KiB property limit
(30 000 UTF-16 code units of text for a UTF-8 body, which is how the service counts a string, so
an emoji takes two; else 60 000 bytes of binary), 14 chunks in the row (an entity holds at most
1 MiB); the rest goes to ``NifJournalOverflow`` rows (``PartitionKey = <pk>-<rk>``, ``RowKey`` =
chunk number), written before the journal row. Properties too large for the ``Meta`` column
(Service Bus allows 64 KB of them) go to overflow rows ``m000000``… the same way, so a journal
row can always be written, whatever the message carries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from shared.nif.queue.envelope import Envelope, PoisonMessage, RawMessage, parse_envelope
from shared.textsize import CHUNK_UNITS, text_chunks, utf16_units

CHUNK = 60_000  # bytes per binary chunk (a property holds at most 64 KiB)
TEXT_CHUNK = CHUNK_UNITS  # UTF-16 code units per text chunk (shared/textsize.py)
IN_ROW_CHUNKS = 14  # ~840 KB in the row (an entity holds at most 1 MiB)
SEQ_PARTITION = 1_000


def journal_keys(raw: RawMessage) -> tuple[str, str]:
    if raw.sequence_number is not None:
        return f"{raw.sequence_number // SEQ_PARTITION:017d}", raw.journal_key
    return "msgid", raw.journal_key


def body_chunks(body: bytes) -> tuple[str, list[str] | list[bytes]]:
    """``("text", [str…])`` for UTF-8 bodies (cheaper to store), else ``("binary", [bytes…])``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "binary", [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]
    return "text", text_chunks(text)


def needs_overflow(row: dict[str, Any]) -> bool:
    """Whether reading ``row`` back needs its ``NifJournalOverflow`` rows."""
    meta = row.get("Meta") or {}
    if isinstance(meta, str):
        meta = json.loads(meta)
    return int(meta.get("chunks") or 0) > IN_ROW_CHUNKS or bool(meta.get("propsChunks"))


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def journal_rows(
    raw: RawMessage, env: Envelope | None, poison: PoisonMessage | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(journal_row, overflow_rows)`` for one message.

    Columns: ``MessageId``, ``Entity`` (canonical name; ``""`` when it was poison), ``Meta``
    (JSON: sequence number, enqueued time, delivery count, application/user properties, content
    type, parsed envelope or poison reason, body length/encoding/chunks), ``Body00``… (the raw
    body). Few columns on purpose: every property costs serialisation in a batch transaction.
    """
    pk, rk = journal_keys(raw)
    encoding, chunks = body_chunks(raw.body)
    meta: dict[str, Any] = {
        "seq": raw.sequence_number,
        "enq": _iso(raw.enqueued_time_utc),
        "dc": raw.delivery_count,
        "props": dict(raw.application_properties),
        "len": len(raw.body),
        "enc": encoding,
        "chunks": len(chunks),
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
    overflow = [
        {"PartitionKey": f"{pk}-{rk}", "RowKey": f"{i:06d}", "Chunk": chunk}
        for i, chunk in enumerate(chunks[IN_ROW_CHUNKS:], start=IN_ROW_CHUNKS)
    ]
    if utf16_units(json.dumps(meta, ensure_ascii=False, separators=(",", ":"), default=str)) > TEXT_CHUNK:
        props = json.dumps(
            {"props": meta.pop("props"), "user": meta.pop("user", None)}, ensure_ascii=False, default=str
        )
        pieces = text_chunks(props)
        meta["propsChunks"] = len(pieces)
        overflow.extend(
            {"PartitionKey": f"{pk}-{rk}", "RowKey": f"m{i:05d}", "Chunk": piece} for i, piece in enumerate(pieces)
        )
    row: dict[str, Any] = {
        "PartitionKey": pk,
        "RowKey": rk,
        "MessageId": raw.message_id[:1024],  # Service Bus caps ids at 128 characters
        "Entity": env.entity if env is not None else "",
        "Meta": meta,
    }
    for i, chunk in enumerate(chunks[:IN_ROW_CHUNKS]):
        row[f"Body{i:02d}"] = chunk
    return row, overflow


def raw_from_journal(row: dict[str, Any], overflow: Iterator[dict[str, Any]] | None = None) -> RawMessage:
    """Rebuild the delivered message from its journal row (and overflow rows, in order)."""
    meta = row.get("Meta") or {}
    if isinstance(meta, str):
        meta = json.loads(meta)
    n = int(meta.get("chunks") or 0)
    parts = [row.get(f"Body{i:02d}") for i in range(min(n, IN_ROW_CHUNKS))]
    extra = sorted(overflow or [], key=lambda r: r["RowKey"])
    body_rows = [r for r in extra if not r["RowKey"].startswith("m")]
    if n > IN_ROW_CHUNKS:
        parts.extend(r["Chunk"] for r in body_rows)
    if meta.get("propsChunks"):
        spilled = json.loads("".join(r["Chunk"] for r in extra if r["RowKey"].startswith("m")))
        meta = {**meta, "props": spilled.get("props"), "user": spilled.get("user")}
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
