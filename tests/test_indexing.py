"""What the Functions host would index: import function_app with an empty environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_LIST = """
import json, function_app
out = []
for f in function_app.app.get_functions():
    b = json.loads(f.get_function_json())["bindings"]
    out.append({"name": f.get_function_name(), "bindings": b})
heavy = sorted(m for m in ("httpx", "lxml", "paramiko", "azure.data.tables", "azure.servicebus", "pydantic_settings")
               if m in __import__("sys").modules)
print(json.dumps({"functions": out, "heavy": heavy}))
"""


def _index() -> dict:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}  # no app settings at all
    out = subprocess.run([sys.executable, "-c", _LIST], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    return json.loads(out.stdout)


def test_function_app_indexes_with_empty_environment() -> None:
    data = _index()
    names = [f["name"] for f in data["functions"]]
    assert len(names) == len(set(names)), "function names must be unique"
    assert "health" in names
    # every HTTP function has an explicit auth level; only health is anonymous
    for f in data["functions"]:
        trig = f["bindings"][0]
        if trig["type"] == "httpTrigger":
            assert trig["authLevel"] in ("ANONYMOUS", "FUNCTION", "ADMIN")
            assert not trig["route"].lower().startswith("admin"), "the host reserves the admin prefix"
            if trig["authLevel"] == "ANONYMOUS":
                assert f["name"] == "health"


def test_importing_the_app_defers_heavy_imports() -> None:
    assert _index()["heavy"] == []


def test_health_binding() -> None:
    health = next(f for f in _index()["functions"] if f["name"] == "health")
    assert health["bindings"][0] == {"direction": "IN", "type": "httpTrigger", "name": "req",
                                     "methods": ["GET"], "authLevel": "ANONYMOUS", "route": "health"}
