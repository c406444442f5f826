"""Build invocation inputs the way the Functions host builds them for a Python 3.13 worker.

Rules modelled (read in the host's source, not run; docs/runtime.md names the files):

- **Conversion of binding data** (``GrpcMessageConversionExtensions.ToRpc``): ``byte[]`` → bytes,
  ``string`` → string, ``byte[][]`` → ``collection_bytes`` (null entries dropped, empty ones kept),
  ``string[]`` → ``collection_string`` with **null and empty entries dropped** unless the worker
  advertises ``IncludeEmptyEntriesInMessagePayload`` (the Python runtime does not), ``long[]`` →
  ``collection_sint64``, anything else (``int[]``, ``DateTime[]``, dictionaries) → JSON text.
  Null values are not sent at all.
- **Trigger payload type** (``GeneralScriptBindingProvider.GetRequestedType``): ``dataType: binary``
  asks for ``byte[]``, ``string`` for ``string``, none for ``object`` (Service Bus hands the body
  over as a string then); ``cardinality: many`` makes it an array.
- **HTTP** (``ToRpcHttp``): lower-cased header names, query values that are empty are dropped,
  repeated query keys joined with ``,``, route params with a value, and the body as raw bytes
  (the runtime advertises ``RawHttpBodyBytes`` and ``RpcHttpBodyOnly``) only when the request has
  one. The runtime also advertises ``RpcHttpTriggerMetadataRemoved``, so no HTTP trigger metadata.
- **Service Bus, cardinality many**: one array per message property (``MessageIdArray``,
  ``SequenceNumberArray``, ``DeliveryCountArray``, ``EnqueuedTimeUtcArray`` as .NET UTC
  ``DateTime`` without an offset, ``ApplicationPropertiesArray``, ``UserPropertiesArray``,
  ``CorrelationIdArray``, ``ContentTypeArray``, ``SubjectArray``/``LabelArray``, ``SessionIdArray``,
  ``LockTokenArray``, …), each converted by the rules above.
- **Timer**: the ``TimerInfo`` object as JSON (``Schedule``, ``ScheduleStatus``, ``IsPastDue``).
- **Storage queue** (:func:`queue_trigger`): the body as bytes or strict UTF-8 text, ``Id``,
  ``PopReceipt``, ``QueueTrigger`` as strings, ``DequeueCount`` and the ``DateTimeOffset`` times
  as JSON, a JSON-object body's properties merged over them (ignoring case), no ``sys``.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

#: The worker capability that would keep empty entries in string collections (not advertised today).
INCLUDE_EMPTY_ENTRIES = "IncludeEmptyEntriesInMessagePayload"


# -- generic conversion (ToRpc) --------------------------------------------------------------------
def _dotnet_json(value: Any) -> Any:
    """A Python value as Newtonsoft would serialise the .NET value behind it."""
    if isinstance(value, datetime):
        return dotnet_datetime(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()  # byte[] → base64 string
    if isinstance(value, dict):
        return {str(k): _dotnet_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dotnet_json(v) for v in value]
    return value


def dotnet_datetime(value: datetime) -> str:
    """A UTC ``DateTime`` as the host serialises it into trigger metadata: ISO 8601, no offset."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds").rstrip("0").rstrip(".")


def to_rpc(protos: Any, value: Any, *, capabilities: dict[str, str], kind: str | None = None) -> Any:
    """One binding-data value as ``TypedData`` (``None`` → no entry; the caller leaves it out).

    ``kind`` names the .NET type where Python's cannot tell: ``"string[]"``, ``"byte[][]"``,
    ``"long[]"``, ``"json"``.
    """
    p = protos
    if value is None:
        return None
    if kind == "string[]":
        keep_empty = bool(capabilities.get(INCLUDE_EMPTY_ENTRIES, "").strip())
        items = [v or "" for v in value if keep_empty or v]
        return p.TypedData(collection_string=p.CollectionString(string=items))
    if kind == "byte[][]":
        return p.TypedData(collection_bytes=p.CollectionBytes(bytes=[bytes(v) for v in value if v is not None]))
    if kind == "long[]":
        return p.TypedData(collection_sint64=p.CollectionSInt64(sint64=[int(v) for v in value]))
    if kind == "json" or isinstance(value, (dict, list, tuple, datetime)):
        return p.TypedData(json=json.dumps(_dotnet_json(value), separators=(",", ":")))
    if isinstance(value, (bytes, bytearray)):
        return p.TypedData(bytes=bytes(value))
    if isinstance(value, str):
        return p.TypedData(string=value)
    if isinstance(value, float):
        return p.TypedData(double=value)
    return p.TypedData(json=json.dumps(_dotnet_json(value)))  # int, bool → ToRpcDefault (JSON)


def binding(protos: Any, name: str, data: Any) -> Any:
    return protos.ParameterBinding(name=name, data=data)


# -- HTTP ------------------------------------------------------------------------------------------
def http_request(
    protos: Any, *, method: str, url: str, headers: dict[str, str], route_params: dict[str, str], body: bytes
) -> Any:
    """``TypedData(http=RpcHttp)`` for one request, as ``ToRpcHttp`` fills it."""
    p = protos
    parts = urlsplit(url)
    query: dict[str, list[str]] = {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(k, []).append(v)
    http = p.RpcHttp(
        method=method.upper(),
        url=url,
        headers={k.lower(): v for k, v in headers.items()},
        query={k: ",".join(vs) for k, vs in query.items() if ",".join(vs)},
        params={k: v for k, v in route_params.items() if v is not None},
    )
    if body:
        http.body.CopyFrom(p.TypedData(bytes=body))
    return p.TypedData(http=http)


def http_response(protos: Any, data: Any) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body from the ``$return`` value of an HTTP function."""
    http = data.http
    body = http.body
    kind = body.WhichOneof("data")
    payload = b""
    if kind == "bytes":
        payload = body.bytes
    elif kind in ("string", "json"):
        payload = getattr(body, kind).encode("utf-8")
    return int(http.status_code or 200), dict(http.headers), payload


# -- Service Bus -----------------------------------------------------------------------------------
@dataclass
class BrokerMessage:
    """A Service Bus message as the broker holds it (what the extension reads from ``ServiceBusReceivedMessage``).

    ``None`` means the message does not carry that property.
    """

    body: bytes
    sequence_number: int
    message_id: str = ""
    enqueued_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    delivery_count: int = 1
    application_properties: dict[str, Any] = field(default_factory=dict)
    content_type: str | None = None
    correlation_id: str | None = None
    subject: str | None = None
    session_id: str | None = None
    reply_to: str | None = None
    to: str | None = None
    lock_token: str = ""
    time_to_live: timedelta = timedelta(days=14)

    def __post_init__(self) -> None:
        self.message_id = self.message_id or f"msg-{self.sequence_number}"
        self.lock_token = self.lock_token or f"00000000-0000-4000-8000-{self.sequence_number % 10**12:012d}"


def service_bus_batch(
    protos: Any, arg_name: str, messages: list[BrokerMessage], *, data_type: str | None, capabilities: dict[str, str]
) -> tuple[list[Any], dict[str, Any]]:
    """``input_data`` and ``trigger_metadata`` for a batch trigger (``cardinality: many``).

    ``data_type`` is the trigger binding's ``dataType`` (the host parses it ignoring case):
    ``binary`` → bodies as ``byte[][]``, otherwise as UTF-8 strings (``string[]``, subject to the
    empty-entry rule).
    """
    p = protos
    ms = messages
    if (data_type or "").lower() == "binary":
        bodies = to_rpc(p, [m.body for m in ms], capabilities=capabilities, kind="byte[][]")
    else:
        bodies = to_rpc(
            p, [m.body.decode("utf-8", errors="replace") for m in ms], capabilities=capabilities, kind="string[]"
        )

    def strings(values: list[str | None]) -> Any:
        return to_rpc(p, values, capabilities=capabilities, kind="string[]")

    metadata: dict[str, Any] = {
        "MessageIdArray": strings([m.message_id for m in ms]),
        "CorrelationIdArray": strings([m.correlation_id for m in ms]),
        "ContentTypeArray": strings([m.content_type for m in ms]),
        "SubjectArray": strings([m.subject for m in ms]),
        "LabelArray": strings([m.subject for m in ms]),
        "SessionIdArray": strings([m.session_id for m in ms]),
        "ReplyToArray": strings([m.reply_to for m in ms]),
        "ToArray": strings([m.to for m in ms]),
        "LockTokenArray": strings([m.lock_token for m in ms]),
        "SequenceNumberArray": to_rpc(p, [m.sequence_number for m in ms], capabilities=capabilities, kind="long[]"),
        "DeliveryCountArray": to_rpc(p, [m.delivery_count for m in ms], capabilities=capabilities, kind="json"),
        "EnqueuedTimeUtcArray": to_rpc(p, [m.enqueued_time for m in ms], capabilities=capabilities, kind="json"),
        "ExpiresAtUtcArray": to_rpc(
            p, [m.enqueued_time + m.time_to_live for m in ms], capabilities=capabilities, kind="json"
        ),
        "ApplicationPropertiesArray": to_rpc(
            p, [m.application_properties for m in ms], capabilities=capabilities, kind="json"
        ),
        "UserPropertiesArray": to_rpc(
            p, [m.application_properties for m in ms], capabilities=capabilities, kind="json"
        ),
    }
    return [binding(p, arg_name, bodies)], {k: v for k, v in metadata.items() if v is not None}


# -- Timer -----------------------------------------------------------------------------------------
def timer_info(
    protos: Any, arg_name: str, *, past_due: bool, last: datetime | None = None, next_: datetime | None = None
) -> list[Any]:
    """``TimerInfo`` as the timer extension serialises it."""
    now = datetime.now(UTC)
    info = {
        "Schedule": {"AdjustForDST": True},
        "ScheduleStatus": {
            "Last": (last or now - timedelta(days=1)).isoformat(),
            "Next": (next_ or now + timedelta(days=1)).isoformat(),
            "LastUpdated": now.isoformat(),
        },
        "IsPastDue": past_due,
    }
    return [binding(protos, arg_name, protos.TypedData(json=json.dumps(info)))]


# -- Storage queue ---------------------------------------------------------------------------------
class TriggerConversionFailed(Exception):
    """The host could not convert the message into the trigger's type: the invocation fails before
    it reaches the worker (the queue extension then treats it as a failed run: retry, then poison)."""


@dataclass
class QueueMessageRecord:
    """A Storage queue message as the queue extension holds it after a receive (``QueueMessage``).

    ``body`` is the payload after ``messageEncoding`` was applied (base64 decoded). ``None`` times
    mean the service did not return them.
    """

    body: bytes
    id: str
    dequeue_count: int
    pop_receipt: str
    inserted_on: datetime | None = None
    expires_on: datetime | None = None
    next_visible_on: datetime | None = None


#: ``DateTimeOffset.MaxValue``, what the extension puts in for a missing expiry or next-visible time.
DATETIMEOFFSET_MAX = "9999-12-31T23:59:59.9999999+00:00"
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")


def dotnet_datetimeoffset(value: datetime) -> str:
    """A ``DateTimeOffset`` as Newtonsoft writes it (``JsonConvert.SerializeObject``), in UTC:
    ``yyyy-MM-ddTHH:mm:ss[.FFFFFFF]+00:00`` (fraction only when not zero)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return dotnet_datetime(value) + "+00:00"


def _newtonsoft_string(value: Any) -> str | None:
    """``(string)JToken`` for a scalar of ``JObject.Parse`` (``Convert.ToString(v, InvariantCulture)``)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str) and _ISO_DATETIME.match(value):
        # JObject.Parse reads ISO date-times as DateTime (DateParseHandling.DateTime); a zone or offset
        # is turned into the server's local time, which is UTC on the platform
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC)
        return parsed.strftime("%m/%d/%Y %H:%M:%S")
    if isinstance(value, float):
        return repr(value).replace("e+", "E+").replace("e-", "E-")
    return str(value)


def _body_binding_data(text: str) -> dict[str, Any]:
    """What ``Utility.ApplyBindingData`` adds from a JSON-object body: every top-level property
    that is not an array and not null; objects as ``JObject`` (JSON text), the rest as strings."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return {}  # "[…]" also passes IsJson, but JObject.Parse throws and the host ignores it
    try:
        parsed = json.loads(stripped)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in parsed.items():
        if isinstance(value, list):
            continue
        converted = (
            json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            if isinstance(value, dict)
            else _newtonsoft_string(value)
        )
        if converted is not None:
            out[key] = ("json", converted) if isinstance(value, dict) else converted
    return out


def _set_ignoring_case(data: dict[str, Any], key: str, value: Any) -> None:
    """``bindingData[key] = value`` on the host's ``OrdinalIgnoreCase`` dictionary: an existing key
    keeps its spelling and takes the new value."""
    existing = next((k for k in data if k.lower() == key.lower()), key)
    data[existing] = value


def queue_trigger(
    protos: Any, arg_name: str, message: QueueMessageRecord, *, data_type: str | None, capabilities: dict[str, str]
) -> tuple[list[Any], dict[str, Any]]:
    """``input_data`` and ``trigger_metadata`` for a ``queueTrigger`` binding (cardinality one).

    Modelled on the Storage Queues extension (``QueueTriggerBinding.CreateBindingData``,
    ``StorageQueueMessageToStringConverter``) and the host (``WorkerFunctionInvoker.TransformInput``
    → ``Utility.ApplyBindingData``, ``ScriptInvocationContextExtensions.ToRpcInvocationRequest``):

    - the body: ``dataType: binary`` → bytes; otherwise (``string`` or none, which the host
      defaults to ``string``) strict UTF-8 text: invalid UTF-8 raises :class:`TriggerConversionFailed`;
    - ``QueueTrigger`` (the text, only when it is valid UTF-8), ``Id`` and ``PopReceipt`` as
      strings; ``DequeueCount`` (a ``long``) as JSON; ``ExpirationTime``, ``InsertionTime``,
      ``NextVisibleTime`` (``DateTimeOffset``) as JSON strings ``"…+00:00"``, a missing expiry or
      next-visible time as ``DateTimeOffset.MaxValue``, a missing insertion time as now;
    - for a string trigger whose body is a JSON object, its top-level non-array properties are
      added to the binding data and **override a built-in entry of the same name, ignoring
      case** (a body ``{"id": "x"}`` makes ``msg.id`` ``"x"``);
    - no ``sys`` entry: the host skips ``SystemBindingData`` ("isn't RPC friendly").
    """
    p = protos
    text: str | None
    try:
        text = message.body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if (data_type or "").lower() == "binary":
        data = p.TypedData(bytes=message.body)
    elif text is None:
        raise TriggerConversionFailed(f"message {message.id}: the body is not valid UTF-8 (the trigger binds a string)")
    else:
        data = p.TypedData(string=text)

    binding_data: dict[str, Any] = {}
    if text is not None:
        binding_data["QueueTrigger"] = text
    binding_data["DequeueCount"] = ("json", json.dumps(int(message.dequeue_count)))
    expires = dotnet_datetimeoffset(message.expires_on) if message.expires_on else DATETIMEOFFSET_MAX
    inserted = dotnet_datetimeoffset(message.inserted_on or datetime.now(UTC))
    visible = dotnet_datetimeoffset(message.next_visible_on) if message.next_visible_on else DATETIMEOFFSET_MAX
    binding_data["ExpirationTime"] = ("json", json.dumps(expires))
    binding_data["Id"] = message.id
    binding_data["InsertionTime"] = ("json", json.dumps(inserted))
    binding_data["NextVisibleTime"] = ("json", json.dumps(visible))
    binding_data["PopReceipt"] = message.pop_receipt
    if text is not None and (data_type or "").lower() != "binary":
        for key, value in _body_binding_data(text).items():
            _set_ignoring_case(binding_data, key, value)

    metadata: dict[str, Any] = {}
    for key, value in binding_data.items():
        if value is None:
            continue
        if isinstance(value, tuple):  # ("json", text): ToRpcDefault / JObject
            metadata[key] = p.TypedData(json=value[1])
        else:
            metadata[key] = p.TypedData(string=value)
    return [binding(p, arg_name, data)], metadata
