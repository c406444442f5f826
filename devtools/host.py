"""What the Functions host does in front of the worker (the .NET host itself cannot run here).

Everything behind the worker boundary is Microsoft's own Python runtime, driven by
:mod:`devtools.runtime.driver`: it indexes ``function_app.py``, converts each invocation into
``azure.functions`` objects, calls our function and builds the response. This module only:

- routes HTTP requests by what the runtime indexed (route templates, methods, auth levels) under
  the ``/api`` prefix, literal segments before parameters as in ASP.NET routing;
- checks keys (``x-functions-key`` header or ``?code=``): a missing or wrong key answers 401 with no
  body, an unknown route 404, as the host does; ``function`` level accepts the function or the
  master key, ``admin`` only the master key;
- turns a request, a Service Bus batch or a timer tick into an ``InvocationRequest``
  (:mod:`devtools.runtime.invocations` models the host's rules) and the response back;
- serves HTTP on loopback for ``make run`` with an access log (status and latency);
- applies the Function App's CORS (``CORS_ALLOWED_ORIGINS``): a preflight (``OPTIONS`` with
  ``Origin`` and ``Access-Control-Request-Method``) from an allowed origin answers 204 with the
  ``Access-Control-Allow-*`` headers, from any other origin 403 without them; an allowed origin's
  other requests get ``Access-Control-Allow-Origin`` on the answer.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func

from devtools.runtime import invocations as inv
from devtools.runtime.driver import IndexedFunction, InvocationFailed, RuntimeDriver, get_driver

log = logging.getLogger("devtools.host")

DEFAULT_FUNCTION_KEY = "local-function-key"
DEFAULT_MASTER_KEY = "local-master-key"
ROUTE_PREFIX = "/api"
DEFAULT_BASE_URL = "http://127.0.0.1:7071"

__all__ = ["DEFAULT_FUNCTION_KEY", "DEFAULT_MASTER_KEY", "HttpRoute", "InvocationFailed", "LocalHost"]


@dataclass
class HttpRoute:
    name: str
    route: str
    methods: tuple[str, ...]
    auth_level: str
    pattern: re.Pattern[str]
    param_name: str


def _route_regex(route: str) -> re.Pattern[str]:
    out = ""
    pos = 0
    for m in re.finditer(r"{(\*?)([A-Za-z_][A-Za-z0-9_]*)(\?)?(?::([^}]*))?}", route):
        out += re.escape(route[pos : m.start()])
        catch_all, name, optional, constraint = m.groups()
        body = r".+" if catch_all else r"[^/]+"
        if constraint and constraint.startswith("int"):
            body = r"-?\d+"
        out += f"(?P<{name}>{body})" + ("?" if optional else "")
        pos = m.end()
    out += re.escape(route[pos:])
    return re.compile("^" + out.strip("/") + "$", re.IGNORECASE)


@dataclass
class LocalHost:
    """The host's front over one :class:`RuntimeDriver` (the process's runtime by default)."""

    driver: RuntimeDriver = field(default_factory=get_driver)
    function_key: str = field(default_factory=lambda: os.environ.get("IDRETTSBRO_FUNCTION_KEY", DEFAULT_FUNCTION_KEY))
    master_key: str = field(default_factory=lambda: os.environ.get("IDRETTSBRO_MASTER_KEY", DEFAULT_MASTER_KEY))
    cors_origins: frozenset[str] = field(
        default_factory=lambda: frozenset(
            o.strip().rstrip("/") for o in os.environ.get("CORS_ALLOWED_ORIGINS", "").split(",") if o.strip()
        )
    )

    def __post_init__(self) -> None:
        self.functions: dict[str, IndexedFunction] = dict(self.driver.functions)
        self.routes: list[HttpRoute] = []
        for info in self.functions.values():
            trigger = info.trigger
            if trigger["type"] == "httpTrigger":
                route = trigger.get("route") or info.name
                methods = tuple(m.upper() for m in (trigger.get("methods") or ["GET", "POST"]))
                level = str(trigger.get("authLevel", "function")).lower()
                self.routes.append(HttpRoute(info.name, route, methods, level, _route_regex(route), trigger["name"]))
        # literal segments win over parameters, as in ASP.NET routing
        self.routes.sort(key=lambda r: (-len(re.sub(r"{[^}]*}", "", r.route)), r.route))

    # -- HTTP ---------------------------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        if not path.lower().startswith(ROUTE_PREFIX + "/"):
            return None
        rel = path[len(ROUTE_PREFIX) + 1 :].strip("/")
        for r in self.routes:
            m = r.pattern.match(rel)
            if m and method.upper() in r.methods:
                return r, {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
        return None

    def authorized(self, level: str, key: str | None) -> bool:
        if level == "anonymous":
            return True
        if level == "admin":
            return key == self.master_key
        return key in (self.function_key, self.master_key)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | str | None = None,
        json_body: Any = None,
        key: str | None = "function",
    ) -> func.HttpResponse:
        """Send one request through routing, key checks and the runtime.

        ``key``: ``"function"`` / ``"master"`` use the configured keys, ``None`` sends none, any
        other string is sent as is. ``url`` may be a path; its base is then the ``Host`` header's.
        """
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        if key == "function":
            headers.setdefault("x-functions-key", self.function_key)
        elif key == "master":
            headers.setdefault("x-functions-key", self.master_key)
        elif key is not None:
            headers.setdefault("x-functions-key", key)
        parts = urlsplit(url)
        origin = next((v for k, v in headers.items() if k.lower() == "origin"), None)
        if (
            method.upper() == "OPTIONS"
            and origin
            and any(k.lower() == "access-control-request-method" for k in headers)
        ):
            return self.preflight(origin)
        res = self._route(method, url, parts, headers, body)
        if origin and origin.rstrip("/") in self.cors_origins:
            res.headers["Access-Control-Allow-Origin"] = origin
            res.headers["Vary"] = "Origin"
        return res

    def preflight(self, origin: str) -> func.HttpResponse:
        """The platform's CORS answer to a preflight: allowed origin → 204 with the grants; else 403."""
        if origin.rstrip("/") not in self.cors_origins:
            return func.HttpResponse(status_code=403)
        return func.HttpResponse(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": "Authorization, Content-Type, x-functions-key",
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            },
        )

    def _route(
        self, method: str, url: str, parts: Any, headers: dict[str, str], body: bytes | None
    ) -> func.HttpResponse:
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        found = self.match(method, parts.path)
        if found is None:
            return func.HttpResponse(status_code=404)
        route, route_params = found
        lowered = {k.lower(): v for k, v in headers.items()}
        presented = lowered.get("x-functions-key") or params.get("code")
        if not self.authorized(route.auth_level, presented):
            return func.HttpResponse(status_code=401)
        full_url = url if parts.scheme else _base_url(lowered.get("host")) + url
        data = inv.http_request(
            self.driver.protos,
            method=method,
            url=full_url,
            headers=headers,
            route_params=route_params,
            body=body or b"",
        )
        try:
            res = self.driver.invoke(route.name, [inv.binding(self.driver.protos, route.param_name, data)])
        except InvocationFailed as exc:  # what the host does with an escaped exception
            log.error("function %s raised: %s", route.name, exc.message)
            return func.HttpResponse(status_code=500)
        status, res_headers, payload = inv.http_response(self.driver.protos, res.return_value)
        return func.HttpResponse(body=payload, status_code=status, headers=res_headers)

    # -- other triggers -------------------------------------------------------------------------
    def invoke(self, name: str, **bindings: Any) -> Any:
        """Call function ``name`` through the runtime with its trigger value, as the host would.

        - Service Bus (``cardinality: many``): a list of :class:`devtools.runtime.invocations.BrokerMessage`
          or of ``azure.functions.servicebus.ServiceBusMessage`` (taken apart into broker properties);
        - timer: an ``azure.functions.TimerRequest`` (its ``past_due``) or a bool.

        A function that raises makes this raise :class:`InvocationFailed` (``.type_name`` says which
        exception), as the host sees a failed invocation.
        """
        info = self.functions[name]
        trigger = info.trigger
        arg = trigger["name"]
        p = self.driver.protos
        value = bindings[arg]
        if trigger["type"] == "serviceBusTrigger":
            many = str(trigger.get("cardinality", "one")).lower() == "many"
            msgs = [to_broker(m) for m in (value if many else [value])]
            if not many:
                raise NotImplementedError("only batch (cardinality many) Service Bus triggers are modelled")
            input_data, metadata = inv.service_bus_batch(
                p, arg, msgs, data_type=trigger.get("dataType"), capabilities=self.driver.capabilities
            )
            return self.driver.invoke(name, input_data, metadata)
        if trigger["type"] == "timerTrigger":
            past_due = value if isinstance(value, bool) else bool(getattr(value, "past_due", False))
            return self.driver.invoke(name, inv.timer_info(p, arg, past_due=past_due))
        raise NotImplementedError(f"no invocation builder for {trigger['type']}")

    def function_of_type(self, trigger_type: str) -> list[IndexedFunction]:
        return [f for f in self.functions.values() if f.trigger["type"] == trigger_type]

    # -- serving --------------------------------------------------------------------------------
    def serve(self, host: str = "127.0.0.1", port: int = 7071) -> ThreadingHTTPServer:
        """Start a threaded HTTP server (daemon thread); returns it (call ``shutdown()``)."""
        local = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                started = time.perf_counter()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                res = local.request(self.command, self.path, headers=dict(self.headers.items()), body=body, key=None)
                payload = res.get_body() or b""
                self.send_response_only(res.status_code)
                self.send_header("Date", self.date_time_string())
                names = set()
                for k, v in res.headers.items():
                    names.add(k.lower())
                    if k.lower() not in ("content-length", "transfer-encoding"):
                        self.send_header(k, v)
                if res.mimetype and "content-type" not in names and payload:
                    self.send_header("Content-Type", f"{res.mimetype}; charset={res.charset or 'utf-8'}")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                elapsed_ms = (time.perf_counter() - started) * 1000
                log.info("%s %s %d %.1f ms", self.command, self.path.split("?")[0], res.status_code, elapsed_ms)

            def __getattr__(self, name: str) -> Any:
                # every method (QUERY, PROPFIND, …) reaches the router: unknown → 404, as the host answers
                if name.startswith("do_"):
                    return self._handle
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:  # the access log line is written above
                pass

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="local-host", daemon=True).start()
        return server


def _base_url(host_header: str | None) -> str:
    """``http://<Host>`` as the host rebuilds the request URL; the default base without one."""
    if host_header and re.fullmatch(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?", host_header):
        return f"http://{host_header}"
    return DEFAULT_BASE_URL


def to_broker(message: Any) -> inv.BrokerMessage:
    """A message as the broker holds it, from a ``BrokerMessage`` or an ``azure.functions`` ServiceBusMessage."""
    if isinstance(message, inv.BrokerMessage):
        return message
    enqueued = message.enqueued_time_utc or datetime.now(UTC)
    return inv.BrokerMessage(
        body=message.get_body(),
        sequence_number=int(message.sequence_number or 0),
        message_id=message.message_id or "",
        enqueued_time=enqueued,
        delivery_count=int(message.delivery_count or 1),
        application_properties=dict(message.application_properties or {}),
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        subject=message.subject or message.label,
        session_id=message.session_id,
        lock_token=message.lock_token or "",
    )
