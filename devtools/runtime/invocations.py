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
"""

from __future__ import annotations

import base64
import json
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
