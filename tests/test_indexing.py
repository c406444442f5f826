"""What the runtime indexes: Microsoft's runtime over ``function_app.py`` with an empty environment.

Each check runs in a fresh interpreter, as the host starts a worker: one process drives
``azure-functions-runtime`` (worker init, functions metadata, function load for every function) and
reports what it indexed; another imports the app and reports what it declares. They must agree.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_INDEXED = """
import json, sys
from devtools.runtime.driver import get_driver
d = get_driver()
out = [{"name": f.name, "bindings": list(f.bindings)} for f in d.functions.values()]
heavy = sorted(m for m in ("httpx", "lxml", "paramiko", "azure.data.tables", "azure.servicebus", "pydantic_settings")
               if m in sys.modules)
print(json.dumps({"functions": out, "heavy": heavy}))
"""

_DECLARED = """
import json, function_app
print(json.dumps([{"name": f.get_function_name(), "bindings": json.loads(f.get_function_json())["bindings"]}
                  for f in function_app.app.get_functions()]))
"""


def _run(code: str) -> object:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}  # no app settings at all
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@functools.cache
def _indexed() -> dict:
    data = _run(_INDEXED)
    assert isinstance(data, dict)
    return data


def _by_name(functions: list[dict]) -> dict[str, list[dict]]:
    return {f["name"]: f["bindings"] for f in functions}


def test_runtime_indexes_and_loads_every_declared_function() -> None:
    indexed = _by_name(_indexed()["functions"])
    declared_list = _run(_DECLARED)
    assert isinstance(declared_list, list)
    declared = _by_name(declared_list)
    assert len(declared) == len(declared_list), "function names must be unique"
    assert sorted(indexed) == sorted(declared)
    for name, bindings in declared.items():
        # the runtime hands the host exactly the bindings the app declares (types, routes, auth
        # levels, queue names, connections, cardinality, data types, schedules)
        assert indexed[name] == bindings, name


def test_every_trigger_type_the_app_uses_is_indexed() -> None:
    types = {f["bindings"][0]["type"] for f in _indexed()["functions"]}
    assert types == {"httpTrigger", "queueTrigger", "serviceBusTrigger", "timerTrigger"}


def test_http_auth_levels_and_routes() -> None:
    for f in _indexed()["functions"]:
        trig = f["bindings"][0]
        if trig["type"] == "httpTrigger":
            assert trig["authLevel"] in ("ANONYMOUS", "FUNCTION", "ADMIN")
            assert not trig["route"].lower().startswith("admin"), "the host reserves the admin prefix"
            if trig["authLevel"] == "ANONYMOUS":
                assert f["name"] in ("health", "health_ready"), "only the health probes are anonymous"


def test_queue_and_timer_bindings() -> None:
    fns = _by_name(_indexed()["functions"])
    queue = fns["nif_queue"][0]
    assert queue == {
        "direction": "IN",
        "type": "serviceBusTrigger",
        "name": "msgs",
        "dataType": "BINARY",
        "queueName": "%NIF_QUEUE_NAME%",
        "connection": "NifServiceBus",
        "cardinality": "MANY",
    }
    timer = fns["idrott_export_timer"][0]
    assert timer["type"] == "timerTrigger" and timer["schedule"] == "%IDROTTONLINE_EXPORT_SCHEDULE%"


def test_importing_the_app_defers_heavy_imports() -> None:
    assert _indexed()["heavy"] == []


def test_health_binding() -> None:
    health = _by_name(_indexed()["functions"])["health"]
    assert health[0] == {
        "direction": "IN",
        "type": "httpTrigger",
        "name": "req",
        "methods": ["GET"],
        "authLevel": "ANONYMOUS",
        "route": "health",
    }
