"""A local stand-in for the Functions host (the real one cannot be installed here).

It indexes the app exactly once with ``app.get_functions()``, then dispatches:
- HTTP: routes, methods and auth levels from each function's trigger binding, under the
  ``/api`` prefix; keys from the ``x-functions-key`` header or ``?code=``. Like Azure, a missing
  or wrong key answers 401 with no body and an unknown route 404; ``function`` level accepts the
  function key or the master key, ``admin`` only the master key;
- any other trigger: :meth:`LocalHost.invoke` calls the function with the given bindings, as the
  host would (plus ``context`` when the function declares it).

``serve()`` puts it behind a threaded HTTP server on loopback for ``make run``.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func

log = logging.getLogger("devtools.host")

DEFAULT_FUNCTION_KEY = "local-function-key"
DEFAULT_MASTER_KEY = "local-master-key"
ROUTE_PREFIX = "/api"


@dataclass
class _Context(func.Context):
    _invocation_id: str
    _function_name: str
    _retry: Any = None

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return os.getcwd()

    @property
    def thread_local_storage(self) -> Any:
        return threading.local()

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return self._retry


@dataclass
class HttpRoute:
    name: str
    route: str
    methods: tuple[str, ...]
    auth_level: str
    pattern: re.Pattern
    param_name: str
    fn: Callable[..., Any]


@dataclass
class FunctionInfo:
    name: str
    fn: Callable[..., Any]
    bindings: list[dict[str, Any]]
    trigger: dict[str, Any]

    @property
    def wants_context(self) -> bool:
        return "context" in inspect.signature(self.fn).parameters


def _route_regex(route: str) -> re.Pattern:
    out = ""
    pos = 0
    for m in re.finditer(r"{(\*?)([A-Za-z_][A-Za-z0-9_]*)(\?)?(?::([^}]*))?}", route):
        out += re.escape(route[pos:m.start()])
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
    app: Any
    function_key: str = field(default_factory=lambda: os.environ.get("IDRETTSBRO_FUNCTION_KEY", DEFAULT_FUNCTION_KEY))
    master_key: str = field(default_factory=lambda: os.environ.get("IDRETTSBRO_MASTER_KEY", DEFAULT_MASTER_KEY))

    def __post_init__(self) -> None:
        self.functions: dict[str, FunctionInfo] = {}
        self.routes: list[HttpRoute] = []
        for f in self.app.get_functions():  # once per app object (platform notes §3)
            bindings = json.loads(f.get_function_json())["bindings"]  # enums rendered as strings
            trigger = next(b for b in bindings if b.get("type", "").endswith("Trigger"))
            info = FunctionInfo(f.get_function_name(), f.get_user_function(), bindings, trigger)
            self.functions[info.name] = info
            if trigger["type"] == "httpTrigger":
                route = trigger.get("route") or info.name
                self.routes.append(HttpRoute(
                    info.name, route, tuple(m.upper() for m in (trigger.get("methods") or ["GET", "POST"])),
                    str(trigger.get("authLevel", "function")).lower(), _route_regex(route),
                    trigger["name"], info.fn))
        # literal segments win over parameters, as in ASP.NET routing
        self.routes.sort(key=lambda r: (-len(re.sub(r"{[^}]*}", "", r.route)), r.route))

    # -- HTTP ---------------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        if not path.lower().startswith(ROUTE_PREFIX + "/"):
            return None
        rel = path[len(ROUTE_PREFIX) + 1:].strip("/")
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

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                body: bytes | str | None = None, json_body: Any = None,
                key: str | None = "function") -> func.HttpResponse:
        """Send one request through routing, key checks and the registered function.

        ``key``: ``"function"`` / ``"master"`` use the configured keys, ``None`` sends none, any
        other string is sent as is.
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
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        found = self.match(method, parts.path)
        if found is None:
            return func.HttpResponse(status_code=404)
        route, route_params = found
        presented = next((v for k, v in headers.items() if k.lower() == "x-functions-key"), None) or params.get("code")
        if not self.authorized(route.auth_level, presented):
            return func.HttpResponse(status_code=401)
        full_url = url if parts.scheme else f"http://127.0.0.1:7071{url}"
        req = func.HttpRequest(method.upper(), full_url, headers=headers, params=params,
                               route_params=route_params, body=body or b"")
        kwargs: dict[str, Any] = {route.param_name: req}
        if "context" in inspect.signature(route.fn).parameters:
            kwargs["context"] = _Context(str(uuid.uuid4()), route.name)
        try:
            return route.fn(**kwargs)
        except Exception:  # what the host does with an escaped exception
            log.exception("function %s raised", route.name)
            return func.HttpResponse(status_code=500)

    # -- other triggers -----------------------------------------------------------------
    def invoke(self, name: str, **bindings: Any) -> Any:
        """Call function ``name`` with its trigger/input bindings as keyword arguments."""
        info = self.functions[name]
        if info.wants_context and "context" not in bindings:
            bindings["context"] = _Context(str(uuid.uuid4()), name)
        return info.fn(**bindings)

    def function_of_type(self, trigger_type: str) -> list[FunctionInfo]:
        return [f for f in self.functions.values() if f.trigger["type"] == trigger_type]

    # -- serving ------------------------------------------------------------------------
    def serve(self, host: str = "127.0.0.1", port: int = 7071) -> ThreadingHTTPServer:
        """Start a threaded HTTP server (daemon thread); returns it (call ``shutdown()``)."""
        local = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                res = local.request(self.command, self.path, headers=dict(self.headers.items()),
                                    body=body, key=None)
                payload = res.get_body() or b""
                self.send_response(res.status_code)
                names = set()
                for k, v in res.headers.items():
                    names.add(k.lower())
                    if k.lower() not in ("content-length", "transfer-encoding"):
                        self.send_header(k, v)
                if res.mimetype and "content-type" not in names:
                    self.send_header("Content-Type", f"{res.mimetype}; charset={res.charset or 'utf-8'}")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def __getattr__(self, name: str) -> Any:
                # every method (QUERY, PROPFIND, …) reaches the router: unknown → 404, as the host answers
                if name.startswith("do_"):
                    return self._handle
                raise AttributeError(name)

            def log_message(self, fmt: str, *args: Any) -> None:
                log.info("%s %s", self.command, self.path.split("?")[0])

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="local-host", daemon=True).start()
        return server
