"""One error map (issue 10): the exception tree in ``shared.problems`` is the code's, and storage
being unavailable is a 503 with ``Retry-After``, never a 500.

- The tree in the docstring of :mod:`shared.problems` lists every exception class defined in
  ``shared/`` (found by reading the source, so no module has to be importable) under its real
  bases and module, and docs/architecture.md gives each one's outcome.
- ``TransientStorageError`` leaving an HTTP handler is 503 ``storage-unavailable`` with
  ``Retry-After``: through the real runtime with Table Storage pointed at a closed port, on every
  kind of route that reads storage first. The body says nothing about the storage account.
- The mapping costs the liveness probe nothing: ``shared.http`` still imports neither the storage
  adapter nor an Azure SDK, and mapping the storage error loads no Azure SDK either.
- ``Problem``'s ``type_slug`` is keyword-only.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import shared.problems
from shared.http import STORAGE_RETRY_AFTER_SECONDS, ApiRequest, dispatch
from shared.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE, Problem

ROOT = Path(__file__).resolve().parents[1]
_BUILTIN_EXCEPTIONS = {
    name for name, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, BaseException)
}


# --- the tree -------------------------------------------------------------------------------------
def _drawn_tree() -> dict[str, tuple[str | None, list[str]]]:
    """``name → (module, bases)`` from the tree in ``shared.problems``' docstring."""
    doc = shared.problems.__doc__ or ""
    block = doc.split("its subclasses::\n\n", 1)[1].split("\n\n", 1)[0]
    line_re = re.compile(r"^    (?P<guides>(?:│   |    )*)(?P<branch>[├└]── )?(?P<name>\w+)(?:\s+(?P<rest>\S.*))?$")
    out: dict[str, tuple[str | None, list[str]]] = {}
    stack: list[tuple[str, str | None]] = []  # (name, module) per depth
    for line in block.splitlines():
        m = line_re.match(line)
        assert m, f"tree line not understood: {line!r}"
        depth = len(m["guides"]) // 4 + (1 if m["branch"] else 0)
        name, rest = m["name"], m["rest"] or ""
        also = re.fullmatch(r"\(also (?P<names>[\w, ]+)\)", rest)
        module = None if also or not rest else rest
        if depth == 0:
            assert name in _BUILTIN_EXCEPTIONS and not rest, line
            stack = [(name, None)]
            continue
        parent, parent_module = stack[depth - 1]
        module = module or parent_module
        if name in _BUILTIN_EXCEPTIONS:
            assert module is None, f"{name} is a builtin: {line!r}"
        else:
            assert module, f"no module for {name}"
            extra = [n.strip() for n in also["names"].split(",")] if also else []
            assert name not in out, f"{name} drawn twice"
            out[name] = (module, [parent, *extra])
        del stack[depth:]
        stack.append((name, module))
    return out


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ast.unparse(node)


def _defined_exceptions() -> dict[str, tuple[str, list[str]]]:
    """``name → (module, bases)`` of every exception class defined at module level in shared/."""
    classes: dict[str, list[tuple[str, list[str]]]] = {}
    for path in sorted((ROOT / "shared").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef):
                classes.setdefault(node.name, []).append((module, [_base_name(b) for b in node.bases]))
    found: dict[str, tuple[str, list[str]]] = {}
    grew = True
    while grew:
        grew = False
        for name, defs in classes.items():
            for module, bases in defs:
                if name in found or not any(b in _BUILTIN_EXCEPTIONS or b in found for b in bases):
                    continue
                assert len(defs) == 1, f"exception class name {name} is defined twice: {defs}"
                found[name] = (module, bases)
                grew = True
    return found


def test_the_tree_lists_every_exception_class_with_its_bases_and_module() -> None:
    drawn, defined = _drawn_tree(), _defined_exceptions()
    missing = sorted(set(defined) - set(drawn))
    stale = sorted(set(drawn) - set(defined))
    assert not missing, f"draw these in the tree of shared/problems.py (and docs/architecture.md): {missing}"
    assert not stale, f"no longer defined in shared/, remove from the tree: {stale}"
    wrong = {n: (drawn[n], defined[n]) for n in defined if drawn[n] != defined[n]}
    assert not wrong, f"drawn (module, bases) differ from the code: {wrong}"
    assert len(defined) >= 28


def test_the_architecture_doc_has_the_same_tree_and_an_outcome_for_every_class() -> None:
    doc = shared.problems.__doc__ or ""
    tree, rest = doc.split("its subclasses::\n\n", 1)[1].split("\n\n", 1)
    outcomes = rest.split("\n\n", 2)[2]
    listed = set(re.findall(r"^    (\w+) ", outcomes, re.MULTILINE))
    arch = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = arch.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    doc_tree = section.split("```text\n", 1)[1].split("\n```", 1)[0]
    assert doc_tree == "\n".join(line.removeprefix("    ") for line in tree.splitlines()), (
        "docs/architecture.md (## Errors) must show the tree of shared/problems.py as it is"
    )
    in_table = re.findall(r"^\| `(\w+)`", section, re.MULTILINE)
    names = list(_drawn_tree())
    assert set(names) - listed == set(), "classes of the tree without an outcome in shared/problems.py"
    assert in_table == names, "docs/architecture.md (## Errors): one table row per class, in the tree's order"


# --- TransientStorageError → 503 + Retry-After ------------------------------------------------------
def _problem(status: int, content_type: str | None, raw: bytes) -> dict:
    assert content_type == PROBLEM_CONTENT_TYPE, content_type
    body = json.loads(raw)
    assert body["status"] == status and body["title"] and body["detail"], body
    return body


def test_dispatch_maps_transient_storage_errors_to_503_with_retry_after() -> None:
    from shared.tables import TransientStorageError

    def handler(req: ApiRequest) -> None:
        raise TransientStorageError("get Clubs: ServiceRequestError at http://127.0.0.1:1/devstoreaccount1")

    res = dispatch(handler, ApiRequest("GET", "http://h/api/clubs/x1", invocation_id="inv-1"))
    body = _problem(503, res.content_type, res.body)
    assert res.status == 503
    assert res.headers["Retry-After"] == str(STORAGE_RETRY_AFTER_SECONDS)
    assert body["type"] == PROBLEM_TYPE_BASE + "storage-unavailable"
    assert body["instance"] == "http://h/api/clubs/x1"
    assert "ServiceRequestError" not in res.body.decode() and "127.0.0.1" not in res.body.decode()


@pytest.mark.parametrize("name", ["StorageError", "Conflict"])
def test_other_storage_errors_stay_500(name: str) -> None:
    import shared.tables

    error = getattr(shared.tables, name)

    def handler(req: ApiRequest) -> None:
        raise error("refused")

    res = dispatch(handler, ApiRequest("GET", "http://h/api/x", invocation_id="inv-2"))
    body = _problem(500, res.content_type, res.body)
    assert res.status == 500 and "Retry-After" not in res.headers
    assert body["type"] == PROBLEM_TYPE_BASE + "internal" and body["invocationId"] == "inv-2"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: every connection to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


# A route of each area that reads Table Storage before anything else (and needs no other service).
STORAGE_ROUTES = [
    ("GET", "/api/clubs/x1", "master", None),
    ("PUT", "/api/idrottonline/clubs/x1/persons", "function", []),
    ("GET", "/api/idrottonline/clubs/x1/exports", "function", None),
    ("GET", "/api/nif/clubs/19428/members", "function", None),
    ("GET", "/api/nif/persons/8756934", "function", None),
    ("GET", "/api/nif/clubs/19428/membership-requests/7AC07206-471E-4D1B", "function", None),
]


@pytest.mark.parametrize("method,path,key,body", STORAGE_ROUTES, ids=[f"{m} {p}" for m, p, _, _ in STORAGE_ROUTES])
def test_storage_unavailable_is_503_with_retry_after_through_the_runtime(
    app_host, env, closed_port: int, method: str, path: str, key: str, body: object
) -> None:
    from devtools.azurite import ACCOUNT, ACCOUNT_KEY, connection_string

    conn = connection_string(closed_port)
    env.set(DATA_TABLES_CONNECTION=conn, DATA_TABLES_PREFIX="errmap", STORAGE_TIMEOUT_SECONDS=1)
    res = app_host.request(method, path, json_body=body, key=key)
    raw = res.get_body()
    problem = _problem(503, res.headers.get("Content-Type"), raw)
    assert res.status_code == 503, raw
    assert problem["type"] == PROBLEM_TYPE_BASE + "storage-unavailable"
    assert int(res.headers["Retry-After"]) == STORAGE_RETRY_AFTER_SECONDS > 0
    text = raw.decode()
    for internal in (conn, ACCOUNT_KEY, ACCOUNT, str(closed_port), "Traceback", "Error:", 'File "'):
        assert internal not in text, internal


# --- cost ------------------------------------------------------------------------------------------
_COLD = """
import json, sys
from shared.http import ApiRequest, dispatch
from shared.health import live

dispatch(live, ApiRequest("GET", "http://h/api/health"))
after_live = sorted(m for m in sys.modules if m == "azure" or m.startswith(("azure.", "shared.tables", "pydantic")))
from shared.tables import TransientStorageError

def down(req):
    raise TransientStorageError("get Clubs: ServiceRequestError")

res = dispatch(down, ApiRequest("GET", "http://h/api/clubs/x1"))
azure = sorted(m for m in sys.modules if m == "azure" or m.startswith("azure."))
print(json.dumps({"after_live": after_live, "status": res.status, "azure": azure}))
"""


def test_the_mapping_adds_nothing_to_a_cold_start() -> None:
    out = subprocess.run([sys.executable, "-c", _COLD], cwd=ROOT, capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout)
    assert seen == {"after_live": [], "status": 503, "azure": []}


# --- Problem ---------------------------------------------------------------------------------------
def test_problem_type_slug_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        Problem(409, "Conflict", "locked", "export-locked")  # type: ignore[misc]
    p = Problem(409, "Conflict", "locked", type_slug="export-locked")
    assert p.type == PROBLEM_TYPE_BASE + "export-locked" and str(p) == "locked"


def test_invalid_settings_are_a_503_that_names_them_without_their_values(app_host, env) -> None:
    """An invalid app setting is the operator's fault, not the caller's: 503 not-configured naming
    the setting, and its value (which may be a secret) appears nowhere in the answer."""
    env.set(LOCAL_TIMEZONE="Nowhere/Secretville", DATA_TABLES_CONNECTION=None)
    res = app_host.request("GET", "/api/nif/clubs/19428/token")
    body = res.get_body().decode()
    assert res.status_code == 503, body
    problem = json.loads(body)
    assert problem["type"].endswith("not-configured") and "LOCAL_TIMEZONE" in problem["detail"]
    assert "Secretville" not in body
