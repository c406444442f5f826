"""Envelope of a NIF queue message: pure parsing and poison classification (no Azure SDK).

A message reaches this module as a :class:`RawMessage`, built from whatever delivered it: the
Functions worker's ``azure.functions.servicebus.ServiceBusMessage``, the azure-servicebus SDK's
``ServiceBusReceivedMessage`` (dead-letter drain), a journal row (rebuild, quarantine replay) or
the sandbox outbox. The adapters below use duck typing, so this module imports no SDK.

Properties (reference 6.1, seed): ``ObjectId`` (int), ``EntityName`` (string), ``ChangeType``
(1 Added, 2 Modified, 3 Deleted, 9 Informational). Values may arrive as ``str``, ``bytes`` or
``int`` (the AMQP SDK hands out bytes keys and values); property names are matched
case-insensitively. A message that can never be applied raises :class:`PoisonMessage`.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from shared import jsonsafe

__all__ = [
    "ChangeType",
    "Envelope",
    "PoisonMessage",
    "RawMessage",
    "normalise_entity_name",
    "parse_envelope",
    "raw_batch_from_functions",
    "raw_from_functions",
    "raw_from_sdk",
    "version_of",
]


#: NIF's ids are positive; Table Storage keeps integers as Edm.Int64.
MAX_OBJECT_ID = 2**63 - 1
#: NIF's entity names are short identifiers; an unknown one becomes a table partition key (1 KiB).
MAX_ENTITY_NAME = 100


class ChangeType(enum.IntEnum):
    ADDED = 1
    MODIFIED = 2
    DELETED = 3
    INFORMATIONAL = 9


class PoisonMessage(ValueError):
    """The message can never be applied (quarantine it, then complete it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RawMessage:
    """What we keep of a delivered message: enough to journal, replay and apply it."""

    message_id: str
    sequence_number: int | None
    enqueued_time_utc: datetime | None
    delivery_count: int | None
    application_properties: dict[str, Any]
    body: bytes
    user_properties: dict[str, Any] = field(default_factory=dict)
    content_type: str | None = None

    @property
    def journal_key(self) -> str:
        """Idempotency key: the broker's sequence number (stable across redeliveries), else the
        message id."""
        if self.sequence_number is not None:
            return f"{self.sequence_number:020d}"
        return "m-" + _safe_key(self.message_id or "")


@dataclass(frozen=True)
class Envelope:
    """A parsed, applicable message."""

    raw: RawMessage
    object_id: int
    entity_name: str  # as received (trimmed)
    entity: str  # canonical name for known entities, normalised name for unknown ones
    known: bool
    change_type: ChangeType
    body: dict[str, Any]
    version: str  # sortable; see version_of()

    @property
    def message_id(self) -> str:
        return self.raw.message_id

    @property
    def sequence_number(self) -> int | None:
        return self.raw.sequence_number


# --- entity names -------------------------------------------------------------------------

#: The 11 entities of reference 6.3, in the spelling used as canonical name.
KNOWN_ENTITIES: tuple[str, ...] = (
    "TpMembership",
    "TpActiveMembership",
    "TpPerson",
    "TpPersonContactInformation",
    "ToOrg",
    "ToOrgTerminationReason",
    "ToOrgType",
    "ToSport",
    "TpMembershipPeriod",
    "Tp_PaymentType",
    "Tp_PaymentStatus",
)
_BY_FOLDED = {name.replace("_", "").lower(): name for name in KNOWN_ENTITIES}


def normalise_entity_name(name: str) -> tuple[str, bool]:
    """``(canonical, known)``: case and underscores are ignored (``Tp_Person`` == ``TpPerson``).

    Unknown names come back folded to lower case without underscores, so differently spelled
    copies of one unknown entity still share a partition of the generic table.
    """
    folded = re.sub(r"[\s_]", "", name).lower()
    if folded in _BY_FOLDED:
        return _BY_FOLDED[folded], True
    return folded, False


# --- property decoding --------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return str(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = _text(value)
    if text is None:
        return None
    text = text.strip()
    if re.fullmatch(r"[+-]?[0-9]{1,19}", text):
        return int(text)
    return None


def _props(raw: Mapping[Any, Any] | None) -> dict[str, Any]:
    """Keys decoded to str; values left as delivered."""
    out: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        k = _text(key)
        out[k if k is not None else "0x" + bytes(key).hex()] = value  # a key that is not UTF-8 is kept, as hex
    return out


def _prop(props: Mapping[str, Any], name: str) -> Any:
    if name in props:
        return props[name]
    lower = name.lower()
    for key, value in props.items():
        if key.strip().lower() == lower:
            return value
    return None


def version_of(raw: RawMessage) -> str:
    """Sortable version of a change: enqueued time (µs), then sequence number.

    Enqueued time first because sequence numbers of partitioned queues carry the partition in
    their top bits and are not comparable across partitions; the sequence number breaks ties.
    """
    enq = raw.enqueued_time_utc
    micros = 0
    if enq is not None:
        if enq.tzinfo is None:
            enq = enq.replace(tzinfo=UTC)
        delta = enq - datetime(1970, 1, 1, tzinfo=UTC)
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    seq = raw.sequence_number if raw.sequence_number is not None else 0
    return f"{micros:017d}.{seq:020d}"


def parse_envelope(raw: RawMessage) -> Envelope:
    """Parse properties and body; raise :class:`PoisonMessage` when it can never be applied."""
    props = _props(raw.application_properties)
    if not props and raw.user_properties:
        props = _props(raw.user_properties)

    raw_object_id = _prop(props, "ObjectId")
    if raw_object_id is None:
        raise PoisonMessage("missing ObjectId property")
    object_id = _int(raw_object_id)
    if object_id is None:
        raise PoisonMessage("ObjectId is not an integer")
    if not 0 <= object_id <= MAX_OBJECT_ID:  # 0 is real: NIF numbers payment types 0-4
        raise PoisonMessage(f"ObjectId is outside 0..{MAX_OBJECT_ID} (Edm.Int64, not negative)")

    entity_name = _text(_prop(props, "EntityName"))
    if entity_name is None or not entity_name.strip():
        raise PoisonMessage("missing EntityName property")
    entity_name = entity_name.strip()
    if len(entity_name) > MAX_ENTITY_NAME:
        raise PoisonMessage(f"EntityName is longer than {MAX_ENTITY_NAME} characters")
    entity, known = normalise_entity_name(entity_name)
    if not entity:
        raise PoisonMessage("EntityName is empty")

    raw_change = _prop(props, "ChangeType")
    change_int = _int(raw_change)
    if change_int is None:
        # tolerate the enum's names ("Added", "modified")
        text = (_text(raw_change) or "").strip().upper()
        if text in ChangeType.__members__:
            change = ChangeType[text]
        else:
            raise PoisonMessage("missing or non-numeric ChangeType property")
    else:
        try:
            change = ChangeType(change_int)
        except ValueError:
            raise PoisonMessage(f"ChangeType {change_int} is outside the enum (1, 2, 3, 9)") from None

    body = parse_body(raw.body, change)
    return Envelope(
        raw=raw,
        object_id=object_id,
        entity_name=entity_name,
        entity=entity,
        known=known,
        change_type=change,
        body=body,
        version=version_of(raw),
    )


def parse_body(body: bytes, change: ChangeType) -> dict[str, Any]:
    """JSON object body (strict JSON, ``shared.jsonsafe``), keys trimmed. An empty body is
    accepted only for Deleted. Anything undecodable (not UTF-8, too deep, a number of thousands of
    digits, duplicate keys) is poison: journaled and quarantined, never raised past the batch."""
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]  # a UTF-8 byte-order mark, as .NET writers sometimes emit
    if not body.strip():
        if change is ChangeType.DELETED:
            return {}
        raise PoisonMessage("empty body")
    try:
        data = jsonsafe.loads(body)
    except jsonsafe.JsonRejected as exc:
        raise PoisonMessage(f"body is not JSON: {exc}") from None
    if data is None and change is ChangeType.DELETED:
        return {}
    if not isinstance(data, dict):
        raise PoisonMessage("body is not a JSON object")
    return {str(k).strip(): v for k, v in data.items()}


# --- adapters (duck-typed) ----------------------------------------------------------------


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _safe_key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:200]


def _plain(value: Any) -> Any:
    """Property value as JSON-storable (bytes → str)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        text = _text(value)
        return text if text is not None else bytes(value).hex()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def raw_from_functions(msg: Any) -> RawMessage:
    """From ``azure.functions.servicebus.ServiceBusMessage`` (what the worker hands the trigger)."""
    body = msg.get_body() if hasattr(msg, "get_body") else getattr(msg, "body", b"")
    if isinstance(body, str):
        body = body.encode("utf-8")
    return RawMessage(
        message_id=str(getattr(msg, "message_id", "") or ""),
        sequence_number=_int(getattr(msg, "sequence_number", None)),
        enqueued_time_utc=_aware(getattr(msg, "enqueued_time_utc", None)),
        delivery_count=_int(getattr(msg, "delivery_count", None)),
        application_properties={k: _plain(v) for k, v in _props(getattr(msg, "application_properties", None)).items()},
        user_properties={k: _plain(v) for k, v in _props(getattr(msg, "user_properties", None)).items()},
        body=bytes(body or b""),
        content_type=getattr(msg, "content_type", None),
    )


#: Per-message string properties we keep, and the host's trigger-metadata array each comes from.
#: The host leaves null and empty entries out of string arrays (docs/runtime.md), so an array
#: shorter than the batch cannot say which message a value belongs to.
STRING_ARRAYS: dict[str, str] = {"message_id": "MessageIdArray", "content_type": "ContentTypeArray"}


def unaligned_string_fields(metadata: Mapping[str, Any] | None, batch_size: int) -> set[str]:
    """RawMessage fields whose trigger-metadata array does not hold one entry per message."""
    if not isinstance(metadata, Mapping):
        return set()  # not delivered by the host (tests, SDK): each message carries its own values
    unaligned = set()
    for name, array in STRING_ARRAYS.items():
        values = metadata.get(array)
        if not isinstance(values, (list, tuple)) or len(values) != batch_size:
            unaligned.add(name)
    return unaligned


def raw_batch_from_functions(msgs: Sequence[Any]) -> list[RawMessage]:
    """A batch (``cardinality: many``) as RawMessages, no property attributed to another message.

    The worker hands every message the whole batch's trigger metadata and reads message ``i``'s
    string properties from entry ``i`` of each array. When the host dropped entries (a message
    without a ContentType, say), entry ``i`` belongs to a later message, so such a field is left
    unknown for the whole batch rather than guessed: the message id falls back to none (the
    journal keys on the sequence number, which travels in a numeric array the host never
    shortens) and the content type to none.
    """
    raws = [raw_from_functions(m) for m in msgs]
    if not raws:
        return raws
    unknown = unaligned_string_fields(getattr(msgs[0], "metadata", None), len(raws))
    if not unknown:
        return raws
    blank: dict[str, Any] = {"message_id": "", "content_type": None}
    return [replace(r, **{name: blank[name] for name in unknown}) for r in raws]


def sdk_body(body: Any) -> bytes:
    """An AMQP body as bytes, whatever its type, so that any message can be journaled.

    Data sections (what NIF sends) are joined; an AMQP value or sequence body (which
    ``bytes(part)`` used to choke on, stopping the dead-letter drain at that message for good) is
    kept as JSON text, which the envelope then quarantines as not applicable.
    """
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    if isinstance(body, (dict, int, float, bool)):
        return json.dumps(body, default=_plain, ensure_ascii=False).encode("utf-8", "surrogatepass")
    parts = list(body)
    if all(isinstance(p, (bytes, bytearray, memoryview)) for p in parts):
        return b"".join(bytes(p) for p in parts)
    return json.dumps(parts, default=_plain, ensure_ascii=False).encode("utf-8", "surrogatepass")


def raw_from_sdk(msg: Any) -> RawMessage:
    """From azure-servicebus ``ServiceBusReceivedMessage`` (dead-letter drain)."""
    body = sdk_body(msg.body)
    return RawMessage(
        message_id=str(_text(msg.message_id) or ""),
        sequence_number=_int(getattr(msg, "sequence_number", None)),
        enqueued_time_utc=_aware(getattr(msg, "enqueued_time_utc", None)),
        delivery_count=_int(getattr(msg, "delivery_count", None)),
        application_properties={k: _plain(v) for k, v in _props(msg.application_properties).items()},
        body=bytes(body),
        content_type=_text(getattr(msg, "content_type", None)),
    )
