"""Cold start through Microsoft's runtime: ``python -m bench.bench_cold_start`` (reports; exits 0 unless it crashes).

Each sample is a fresh process (``sys.executable``, cwd = the app directory, an environment of
only PATH, HOME, LANG, SYSTEMROOT, TMPDIR and PYTHONPATH = the repository) that starts
``azure-functions-runtime`` through our driver (:class:`devtools.runtime.driver.RuntimeDriver`:
worker init, which imports and indexes ``function_app.py``, then the functions metadata request and
one load request per function) and sends one ``GET /api/health`` through
:class:`devtools.host.LocalHost` (routing, the runtime's invocation, the response). Two apps:

- ours: the repository's ``function_app.py`` (every blueprint registered). No app settings are set,
  so health answers 503 (configuration missing) after reading the settings; with Table Storage
  configured it would also import the Tables SDK and ping the account (I/O, not measured here);
- one-function: a temporary directory whose ``function_app.py`` defines one anonymous ``health``
  HTTP function answering 200, indexed by the same runtime in its own process.

Cold start = runtime import + worker init (the runtime imports ``azure.functions`` for its binding
registry, then imports and indexes ``function_app``: this runtime indexes during init) + metadata and
load requests + the first request, each phase timed inside the child with
``time.perf_counter``. Target: ours / one-function <= 1.5 (heavy imports deferred to first use).
What only our local harness does is timed but left out of that sum: importing the driver and
compiling ``worker_protocol.proto`` with grpcio-tools (the host's proxy worker ships compiled
protos) and importing ``devtools.host`` (done after the runtime has started, so that
``azure.functions`` is first imported inside worker init, as on Azure). "import + index
function_app" (inside worker init; the runtime's ``index_function_app`` wrapped with a timer) is
what the old import-time figure measured, now with ``azure.functions`` already loaded. The parent also times each
process from spawn to the first response, interpreter start and harness included (the child's
``perf_counter`` stamps share the parent's clock: CLOCK_MONOTONIC on Linux).

The two apps alternate (ours, one-function, ours, ...) after one warm-up each (bytecode caches are
written, as on a deployed app), so that drift on a shared machine hits both alike; figures are
medians of ``BENCH_COLD_N`` samples each (default 15), the ratio is of the medians.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

N = int(os.environ.get("BENCH_COLD_N", "15"))
TARGET = 1.5
ROOT = Path(__file__).resolve().parent.parent
_MARK = "BENCH_COLD_START "  # prefix of the child's one result line on stdout

ONE_FUNCTION_APP = """\
import azure.functions as func

app = func.FunctionApp()


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok", status_code=200)
"""

#: Phases summed into the cold-start figure, in order (seconds, from the child).
COLD_PHASES = ("runtime_import", "worker_init", "metadata_load", "first_request")
#: Harness-only phases (timed, not summed).
HARNESS_PHASES = ("driver_setup", "host_import")


# -- child: one fresh process -------------------------------------------------------------------------
def child(app_dir: Path) -> dict[str, Any]:
    """Start the runtime over ``app_dir``, send ``GET /api/health``; the phase times (s) and stamps."""
    entered = time.perf_counter()
    from devtools.runtime.driver import RuntimeDriver

    class TimedDriver(RuntimeDriver):
        """Stamps when each lifecycle request (init, metadata, the last load) was answered."""

        def __init__(self, app_dir: Path) -> None:
            super().__init__(app_dir)
            self.answered: dict[str, float] = {}

        def _call(self, coro_fn: Any, name: str, message: Any, *, init: bool = False, timeout: float = 60.0) -> Any:
            res = super()._call(coro_fn, name, message, init=init, timeout=timeout)
            self.answered[name] = time.perf_counter()
            return res

    driver = TimedDriver(app_dir)  # compiles the protos
    setup_done = time.perf_counter()
    from azure_functions_runtime import handle_event  # as the proxy worker does

    runtime_imported = time.perf_counter()
    indexing: list[float] = []
    index_function_app = handle_event.index_function_app

    def timed_index(function_path: str) -> Any:  # import function_app + app.get_functions()
        started = time.perf_counter()
        try:
            return index_function_app(function_path)
        finally:
            indexing.append(time.perf_counter() - started)

    handle_event.index_function_app = timed_index
    driver.start()
    started = time.perf_counter()
    init_done = driver.answered["worker_init_request"]
    from devtools.host import LocalHost

    host_imported = time.perf_counter()
    res = LocalHost(driver=driver).request("GET", "/api/health", key=None)
    responded = time.perf_counter()
    module_file = Path(sys.modules["function_app"].__file__ or "").resolve()
    if module_file.parent != app_dir.resolve():
        raise RuntimeError(f"indexed {module_file}, not {app_dir}/function_app.py")
    driver.stop()
    return {
        "entered": entered,
        "responded": responded,
        "status": res.status_code,
        "functions": len(driver.functions),
        "phases": {
            "driver_setup": setup_done - entered,
            "runtime_import": runtime_imported - setup_done,
            "worker_init": init_done - runtime_imported,
            "indexing": sum(indexing),
            "metadata_load": started - init_done,
            "host_import": host_imported - started,
            "first_request": responded - host_imported,
        },
    }


# -- parent ----------------------------------------------------------------------------------------
def _env(tmp: Path) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT")
    return {k: v for k, v in os.environ.items() if k in keep} | {"PYTHONPATH": str(ROOT), "TMPDIR": str(tmp)}


def sample(app_dir: Path, tmp: Path) -> dict[str, Any]:
    """One fresh process over ``app_dir``: the child's figures plus the parent's process times (s)."""
    import subprocess

    cmd = [sys.executable, "-m", "bench.bench_cold_start", "--child", str(app_dir)]
    spawned = time.perf_counter()
    proc = subprocess.run(cmd, check=False, cwd=app_dir, env=_env(tmp), capture_output=True, text=True)
    exited = time.perf_counter()
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_MARK)]
    if proc.returncode or not lines:
        raise RuntimeError(f"cold-start child over {app_dir} failed (exit {proc.returncode}):\n{proc.stderr}")
    out: dict[str, Any] = json.loads(lines[-1][len(_MARK) :])
    out["phases"] |= {
        "interpreter": out["entered"] - spawned,  # interpreter start + this module's import
        "to_response": out["responded"] - spawned,
        "to_exit": exited - spawned,
    }
    out["cold"] = sum(out["phases"][p] for p in COLD_PHASES)
    return out


def _med(samples: list[dict[str, Any]], key: str) -> float:
    import statistics

    return float(statistics.median(s["cold"] if key == "cold" else s["phases"][key] for s in samples)) * 1000


def _split(samples: list[dict[str, Any]]) -> str:
    m = {k: _med(samples, k) for k in (*COLD_PHASES, "indexing")}
    return (
        f"runtime import {m['runtime_import']:.1f} + worker init {m['worker_init']:.1f} "
        f"(import + index function_app {m['indexing']:.1f}) + metadata/load {m['metadata_load']:.1f} "
        f"+ first GET /api/health {m['first_request']:.1f}"
    )


def main() -> int:
    import tempfile
    from importlib.metadata import version

    with tempfile.TemporaryDirectory(prefix="idrettsbro-bench-cold-") as work:
        one_app, tmp = Path(work) / "app", Path(work) / "tmp"  # tmp: the driver's compiled protos land there
        one_app.mkdir()
        tmp.mkdir()
        (one_app / "function_app.py").write_text(ONE_FUNCTION_APP)
        apps = {"ours": ROOT, "one": one_app}
        for app_dir in apps.values():  # warm-up: fills the bytecode caches
            sample(app_dir, tmp)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in apps}
        for _ in range(N):
            for name, app_dir in apps.items():
                runs[name].append(sample(app_dir, tmp))

    ours, one = runs["ours"], runs["one"]
    cold_o, cold_b = _med(ours, "cold"), _med(one, "cold")
    ratio = cold_o / cold_b
    proc_o, proc_b = _med(ours, "to_response"), _med(one, "to_response")

    def span(samples: list[dict[str, Any]]) -> str:
        return f"{min(s['cold'] for s in samples) * 1000:.0f}-{max(s['cold'] for s in samples) * 1000:.0f}"

    print(
        f"cold start through azure-functions-runtime {version('azure-functions-runtime')} (median of {N} alternating fresh processes each, "
        f"{os.cpu_count()} CPUs), ms:"
    )
    print(
        f"  ours ({ours[0]['functions']} functions, health {ours[0]['status']}): {cold_o:.1f} (range {span(ours)}) "
        f"= {_split(ours)}"
    )
    print(f"  one-function app (health {one[0]['status']}): {cold_b:.1f} (range {span(one)}) = {_split(one)}")
    print(f"  ratio {ratio:.2f} (target <= {TARGET}: {'MET' if ratio <= TARGET else 'NOT MET'})")
    print(
        f"  whole process, spawn to first response: ours {proc_o:.1f}, one-function {proc_b:.1f}, "
        f"ratio {proc_o / proc_b:.2f} (interpreter start {_med(ours, 'interpreter'):.1f} / "
        f"{_med(one, 'interpreter'):.1f}; to exit {_med(ours, 'to_exit'):.1f} / {_med(one, 'to_exit'):.1f})"
    )
    print(
        f"  (harness, not in the ratio) driver import + proto compile {_med(ours, 'driver_setup'):.1f} / "
        f"{_med(one, 'driver_setup'):.1f}, devtools.host import {_med(ours, 'host_import'):.1f} / "
        f"{_med(one, 'host_import'):.1f}"
    )
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(_MARK + json.dumps(child(Path(sys.argv[2]))), flush=True)
        sys.exit(0)
    sys.exit(main())
