"""Play the Functions host's proxy worker in front of Microsoft's Python runtime (``azure-functions-runtime``).

On Python 3.13+ the host ships a thin proxy worker (gRPC transport, logging) that hands every
request to the execution runtime through five coroutines: ``worker_init_request``,
``functions_metadata_request``, ``function_load_request``, ``invocation_request`` and
``function_environment_reload_request``. Each takes an object with ``name``, ``request`` (a
``StreamingMessage``) and ``properties``; on init the properties carry the protocol module and the
host address. This module does exactly that, on an event loop of its own in a daemon thread, so
that tests and ``make run`` call our functions through the same engine Azure runs.

The runtime keeps its state in module globals (the function registry, the protocol module), so a
process has one driver: :func:`get_driver` returns it. Every message crosses the wire format once
(``SerializeToString`` / ``FromString``), so only what protobuf can carry reaches the runtime.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from devtools.runtime import protos as _protos

log = logging.getLogger("devtools.runtime")

HOST_VERSION = "4.1037.0"  # the Functions host release whose source the invocation rules were read from
#: What the host (not the worker) advertises at init. The runtime reads only a data-cache flag from it.
HOST_CAPABILITIES: dict[str, str] = {}
#: How long one invocation may take before the driver gives up waiting (host.json functionTimeout).
INVOCATION_TIMEOUT_S = 600.0


class RuntimeStartError(Exception):
    """The runtime answered a lifecycle request (init, indexing, load) with a failure."""


class InvocationFailed(Exception):
    """The function raised: what the host sees as a failed invocation (Service Bus then abandons)."""

    def __init__(self, function: str, exception: Any) -> None:
        self.function = function
        self.message = exception.message
        self.type_name = exception.message.split(":", 1)[0]  # the runtime sends "<ExceptionType>: <text>"
        self.stack_trace = exception.stack_trace
        super().__init__(f"{function}: {exception.message}")


@dataclass
class _Request:
    """What the proxy worker passes to each runtime coroutine."""

    name: str
    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IndexedFunction:
    """One function as the runtime indexed it (``RpcFunctionMetadata``)."""

    function_id: str
    name: str
    bindings: tuple[dict[str, Any], ...]  # raw bindings, as the host reads them (function.json shape)

    @property
    def trigger(self) -> dict[str, Any]:
        return next(b for b in self.bindings if str(b.get("type", "")).endswith("Trigger"))


class RuntimeDriver:
    """Start the runtime over ``app_dir`` (``function_app.py``), index it, load every function, invoke."""

    def __init__(self, app_dir: Path) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.protos: ModuleType = _protos.load()
        self.capabilities: dict[str, str] = {}
        self.functions: dict[str, IndexedFunction] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="functions-runtime", daemon=True)
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> RuntimeDriver:
        if self._started:
            return self
        if str(self.app_dir) not in sys.path:
            sys.path.insert(0, str(self.app_dir))
        import azure_functions_runtime as runtime

        self._runtime = runtime
        self._thread.start()
        runtime.start_threadpool_executor()
        p = self.protos
        init = p.StreamingMessage(
            request_id=_rid(),
            worker_init_request=p.WorkerInitRequest(
                host_version=HOST_VERSION,
                capabilities=HOST_CAPABILITIES,
                worker_directory=str(Path(runtime.__file__).parent),
                function_app_directory=str(self.app_dir),
            ),
        )
        res = self._call(runtime.worker_init_request, "worker_init_request", init, init=True)
        self._check(res.result, "worker init")
        self.capabilities = dict(res.capabilities)
        meta = p.StreamingMessage(
            request_id=_rid(),
            functions_metadata_request=p.FunctionsMetadataRequest(function_app_directory=str(self.app_dir)),
        )
        res = self._call(runtime.functions_metadata_request, "functions_metadata_request", meta)
        self._check(res.result, "indexing")
        for fm in res.function_metadata_results:
            if fm.HasField("status"):
                self._check(fm.status, f"indexing {fm.name}")
            load = p.StreamingMessage(
                request_id=_rid(), function_load_request=p.FunctionLoadRequest(function_id=fm.function_id, metadata=fm)
            )
            loaded = self._call(runtime.function_load_request, "function_load_request", load)
            self._check(loaded.result, f"loading {fm.name}")
            bindings = tuple(json.loads(raw) for raw in fm.raw_bindings)
            self.functions[fm.name] = IndexedFunction(fm.function_id, fm.name, bindings)
        self._started = True
        log.debug("runtime %s indexed %d functions", getattr(runtime, "__name__", ""), len(self.functions))
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._runtime.stop_threadpool_executor()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._started = False

    # -- invocation -----------------------------------------------------------------------------
    def invoke(
        self,
        name: str,
        input_data: list[Any],
        trigger_metadata: dict[str, Any] | None = None,
        *,
        invocation_id: str | None = None,
    ) -> Any:
        """Send one ``InvocationRequest``; returns the ``InvocationResponse`` (raises ``InvocationFailed``)."""
        fn = self.functions[name]
        p = self.protos
        inv = p.InvocationRequest(
            invocation_id=invocation_id or str(uuid.uuid4()),
            function_id=fn.function_id,
            input_data=input_data,
            trigger_metadata=trigger_metadata or {},
            trace_context=p.RpcTraceContext(trace_parent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"),
            retry_context=p.RetryContext(),
        )
        msg = p.StreamingMessage(request_id=_rid(), invocation_request=inv)
        res = self._call(self._runtime.invocation_request, "invocation_request", msg, timeout=INVOCATION_TIMEOUT_S)
        if res.result.status != p.StatusResult.Success:
            raise InvocationFailed(name, res.result.exception)
        return res

    # -- internals ------------------------------------------------------------------------------
    def _call(self, coro_fn: Any, name: str, message: Any, *, init: bool = False, timeout: float = 60.0) -> Any:
        wire = type(message).FromString(message.SerializeToString())  # only what the wire can carry
        props = {"protos": self.protos, "host": "127.0.0.1:0"} if init else {}
        future = asyncio.run_coroutine_threadsafe(coro_fn(_Request(name, wire, props)), self._loop)
        res = future.result(timeout=timeout)
        return type(res).FromString(res.SerializeToString())

    def _check(self, status: Any, what: str) -> None:
        if status.status != self.protos.StatusResult.Success:
            raise RuntimeStartError(f"{what} failed: {status.exception.message}\n{status.exception.stack_trace}")


def _rid() -> str:
    return uuid.uuid4().hex


_DRIVER: RuntimeDriver | None = None
_DRIVER_LOCK = threading.Lock()


def get_driver(app_dir: Path | None = None) -> RuntimeDriver:
    """The process's one driver over ``app_dir`` (default: the repository root), started on first use."""
    global _DRIVER
    with _DRIVER_LOCK:
        wanted = Path(app_dir or Path(__file__).resolve().parents[2]).resolve()
        if _DRIVER is None:
            _DRIVER = RuntimeDriver(wanted).start()
        elif _DRIVER.app_dir != wanted:
            raise RuntimeError(f"the runtime already indexed {_DRIVER.app_dir}; one app per process")
        return _DRIVER
