"""Architecture rules of docs/architecture.md, checked on the source text (AST only, no imports).

Each test names the rule it guards; each failure message says what to change. Known violations in
code that is still being finished are listed in ``KNOWN_*`` below with the file and the fix; the
tests fail when such an entry disappears so the list never goes stale (delete the entry then).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# --- the pure core ----------------------------------------------------------------------------
#: Modules holding the rules (validation, delta merge, XML, delta selection, LOK prognosis, NIF
#: rules). They and every ``shared`` module they import (even lazily) import no Azure SDK, no
#: HTTP client and no SSH library.
PURE_CORE = (
    "shared/problems.py",
    "shared/nif/rules.py",
    "shared/nif/models.py",
    "shared/nif/lenient_json.py",
    "shared/idrott/personnummer.py",
    "shared/idrott/models.py",
    "shared/idrott/elements.py",
    "shared/idrott/delta.py",
    "shared/idrott/lok.py",
    "shared/idrott/xmlwriter.py",
    "shared/idrott/xmlrecords.py",
    "shared/idrott/idset.py",
    "shared/idrott/clock.py",
    "shared/jsonsafe.py",
    "shared/textsize.py",
    "shared/tables_contract.py",
)
#: The queue's pure modules (shared/nif/queue/__init__.py marks envelope, entities and merge as
#: pure; journal only builds rows from an envelope). Listed only if present.
PURE_QUEUE = (
    "shared/nif/queue/envelope.py",
    "shared/nif/queue/entities.py",
    "shared/nif/queue/merge.py",
    "shared/nif/queue/journal.py",
    "shared/nif/queue/rows.py",
    "shared/nif/queue/links.py",
)
FORBIDDEN_IN_CORE = ("azure", "httpx", "paramiko", "asyncssh")
#: Heavy libraries the pure core may use, but only imported inside the function that needs them.
LAZY_ONLY_IN_CORE = ("lxml",)

# --- functions/ -------------------------------------------------------------------------------
#: Standard-library modules a blueprint module may import at module level (cheap, no I/O).
STDLIB_BASICS = {"__future__", "typing", "importlib", "logging", "collections", "dataclasses", "enum", "functools"}
#: Non-stdlib imports allowed at module level in functions/ (besides azure.functions and functions.*).
FUNCTIONS_EXTRA: dict[str, set[str]] = {}
#: An import of the handler, the call, at most one more statement.
MAX_GLUE_STATEMENTS = 3

# --- settings ---------------------------------------------------------------------------------
# functions/_glue.py reads AUTH_MODE once while the host indexes the app: the HTTP auth levels are
# fixed there, and Settings would load pydantic at import (docs/security.md, "Keys and tokens").
ENV_READERS = {"shared/config.py", "shared/secrets.py", "functions/_glue.py"}
#: Known reads of the environment outside Settings: {(path, line): what to do}.
KNOWN_ENV_READS: dict[tuple[str, int], str] = {}

# --- import-time work -------------------------------------------------------------------------
#: Calls that must not run at import time in shared/ (I/O, settings reads, client creation).
IMPORT_TIME_CALLS = {
    "get_settings",
    "get_table_store",
    "get_secret_store",
    "get_client",
    "get_processor",
    "TableServiceClient",
    "TableClient",
    "SecretClient",
    "DefaultAzureCredential",
    "ManagedIdentityCredential",
    "ServiceBusClient",
    "SSHClient",
    "Transport",
    "SFTPClient",
    "connect",
    "Client",
    "AsyncClient",
    "HTTPTransport",
    "open",
    "urlopen",
}
#: Modules whose attributes may not be called at import time at all (``paramiko.anything()``).
IMPORT_TIME_MODULES = {"httpx", "paramiko", "asyncssh", "requests", "socket"}


# --- helpers ----------------------------------------------------------------------------------
def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def py_files(*folders: str) -> list[Path]:
    out: list[Path] = []
    for folder in folders:
        out.extend(p for p in sorted((ROOT / folder).rglob("*.py")) if "__pycache__" not in p.parts)
    return out


@functools.cache
def tree_of(path: str) -> ast.Module:
    return ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=path)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """Collects (module, line, lazy) for every import that can run, skipping TYPE_CHECKING blocks."""

    def __init__(self) -> None:
        self.found: list[tuple[str, int, bool]] = []
        self._depth = 0

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for stmt in node.orelse:
                self.visit(stmt)
            return
        self.generic_visit(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, node.lineno, self._depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:  # relative import: not used in this code base, resolve to the package anyway
            raise AssertionError(f"relative import at line {node.lineno}: use an absolute `shared...` import")
        module = node.module or ""
        self.found.append((module, node.lineno, self._depth > 0))
        # `from shared.nif import models` imports shared.nif.models
        for alias in node.names:
            candidate = f"{module}.{alias.name}"
            if _module_path(candidate):
                self.found.append((candidate, node.lineno, self._depth > 0))


def imports_of(path: str) -> list[tuple[str, int, bool]]:
    visitor = _Imports()
    visitor.visit(tree_of(path))
    return visitor.found


def _module_path(module: str) -> str | None:
    base = module.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if (ROOT / candidate).is_file():
            return candidate
    return None


def _top(module: str) -> str:
    return module.split(".")[0]


def import_closure(start: str) -> dict[str, str]:
    """Every project module ``start`` can import (lazily too) → the chain that reaches it."""
    chains = {start: start}
    todo = [start]
    while todo:
        current = todo.pop()
        for module, _line, _lazy in imports_of(current):
            if _top(module) not in ("shared", "functions"):
                continue
            path = _module_path(module)
            # `import shared.nif.models` also runs the packages' __init__ modules
            parts = module.split(".")
            packages = [_module_path(".".join(parts[:i])) for i in range(1, len(parts))]
            for target in [p for p in packages if p] + ([path] if path else []):
                if target not in chains:
                    chains[target] = f"{chains[current]} -> {target}"
                    todo.append(target)
    return chains


def module_level_nodes(tree: ast.Module) -> Iterator[ast.AST]:
    """Nodes executed at import: everything except function bodies (decorators and defaults run)."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            stack.extend(node.decorator_list)
            stack.extend(node.args.defaults)
            stack.extend(d for d in node.args.kw_defaults if d is not None)
            continue
        if isinstance(node, ast.Lambda):
            stack.extend(node.args.defaults)
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


# --- (a) the pure core ------------------------------------------------------------------------
def _pure_modules() -> list[str]:
    return [p for p in PURE_CORE + PURE_QUEUE if (ROOT / p).is_file()]


@pytest.mark.parametrize("module", _pure_modules())
def test_pure_core_imports_no_sdk_http_or_ssh(module: str) -> None:
    problems = []
    for path, chain in import_closure(module).items():
        for imported, line, lazy in imports_of(path):
            if _top(imported) in FORBIDDEN_IN_CORE:
                where = "inside a function" if lazy else "at module level"
                problems.append(f"{path}:{line} imports {imported} {where} (reached via {chain})")
    assert not problems, (
        f"{module} is pure core (docs/architecture.md: no azure/httpx/paramiko/asyncssh). Move the I/O to an "
        "adapter (shared/tables.py, shared/nif/client.py, shared/sftp.py, shared/secrets.py) and pass data in:\n  "
        + "\n  ".join(problems)
    )


@pytest.mark.parametrize("module", _pure_modules())
def test_pure_core_imports_heavy_libraries_lazily(module: str) -> None:
    eager = [
        f"{module}:{line} imports {m} at module level"
        for m, line, lazy in imports_of(module)
        if _top(m) in LAZY_ONLY_IN_CORE and not lazy
    ]
    assert not eager, "Import lxml inside the function that needs it (keeps cold start low):\n  " + "\n  ".join(eager)


def test_pure_core_list_is_current() -> None:
    missing = [p for p in PURE_CORE if not (ROOT / p).is_file()]
    assert not missing, f"pure-core modules moved or removed; update PURE_CORE in {__file__}: {missing}"


# --- (b) functions/ is glue -------------------------------------------------------------------
FUNCTION_MODULES = [rel(p) for p in py_files("functions")]


def _allowed_in_functions(module: str, path: str) -> bool:
    return (
        module == "azure.functions"
        or _top(module) == "functions"
        or _top(module) in STDLIB_BASICS
        or module in FUNCTIONS_EXTRA.get(path, set())
    )


@pytest.mark.parametrize("path", FUNCTION_MODULES)
def test_functions_import_only_glue_at_module_level(path: str) -> None:
    bad = [
        f"{path}:{line} imports {m}"
        for m, line, lazy in imports_of(path)
        if not lazy and not _allowed_in_functions(m, path)
    ]
    assert not bad, (
        "functions/ modules import only azure.functions, typing, functions._glue and stdlib basics at module "
        "level; import the handler from shared/ inside the function body instead (as lazy, and followable):\n  "
        + "\n  ".join(bad)
    )


@pytest.mark.parametrize("path", FUNCTION_MODULES)
def test_function_bodies_are_glue(path: str) -> None:
    long = []
    for node in ast.walk(tree_of(path)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.decorator_list:
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # docstring
            if len(body) > MAX_GLUE_STATEMENTS:
                long.append(f"{path}:{node.lineno} {node.name} has {len(body)} statements")
    assert not long, (
        f"A function body in functions/ is at most {MAX_GLUE_STATEMENTS} statements: move the logic into a "
        "handler in shared/ and call it (HTTP: functions._glue.http(handler, req, context)):\n  " + "\n  ".join(long)
    )


@pytest.mark.parametrize("path", FUNCTION_MODULES)
def test_function_bodies_import_their_handler_from_shared(path: str) -> None:
    """Each registered function imports its handler inside the body: lazy for cold start, and a name
    an editor and the type checker can follow (no ``"module:attr"`` strings)."""
    missing = []
    for node in ast.walk(tree_of(path)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.decorator_list:
            lazy = [n for n in node.body if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("shared.")]
            strings = [
                n.value
                for n in ast.walk(node)
                if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("shared.")
            ]
            if not lazy or strings:
                missing.append(f"{path}:{node.lineno} {node.name}")
    assert not missing, "import the handler from shared/ inside the body:\n  " + "\n  ".join(missing)


def test_functions_folder_has_modules() -> None:
    assert "functions/_glue.py" in FUNCTION_MODULES, "functions/_glue.py moved; update tests/test_architecture.py"


# --- (c) devtools stays local -----------------------------------------------------------------
def _deployed_files() -> list[Path]:
    top = [p for p in sorted(ROOT.glob("*.py"))]
    return top + py_files("shared", "functions")


def test_deployed_code_never_imports_devtools() -> None:
    bad = [
        f"{rel(p)}:{line} imports {m}"
        for p in _deployed_files()
        for m, line, _lazy in imports_of(rel(p))
        if _top(m) == "devtools"
    ]
    assert not bad, (
        "devtools/ is local only and excluded by .funcignore; deployed code (function_app.py, functions/, "
        "shared/) must not import it. Move what is needed into shared/ or inject it from the test:\n  "
        + "\n  ".join(bad)
    )


# --- (d) settings are read through Settings ---------------------------------------------------
def _env_reads(path: str) -> list[int]:
    lines = []
    for node in ast.walk(tree_of(path)):
        if (
            isinstance(node, ast.Attribute)
            and _dotted(node) in ("os.environ", "os.getenv", "os.environb")
            or isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(a.name in ("environ", "getenv", "environb") for a in node.names)
        ):
            lines.append(node.lineno)
    return lines


def test_environment_is_read_only_by_settings_and_secret_store() -> None:
    found = {(rel(p), line) for p in _deployed_files() if rel(p) not in ENV_READERS for line in _env_reads(rel(p))}
    new = sorted(found - set(KNOWN_ENV_READS))
    assert not new, (
        "App settings are read through shared.config.get_settings() (add a field to Settings) and secrets "
        "through shared.secrets.get_secret_store(); os.environ/os.getenv is for those two modules only:\n  "
        + "\n  ".join(f"{p}:{line}" for p, line in new)
    )
    fixed = sorted(set(KNOWN_ENV_READS) - found)
    assert not fixed, f"fixed (or moved) - remove from KNOWN_ENV_READS in tests/test_architecture.py: {fixed}"


# --- (e) nothing at import time ---------------------------------------------------------------
@pytest.mark.parametrize("path", [rel(p) for p in py_files("shared")])
def test_shared_does_no_work_at_import(path: str) -> None:
    bad = []
    for node in module_level_nodes(tree_of(path)):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if not name:
            continue
        last, top = name.rsplit(".", 1)[-1], name.split(".")[0]
        if last in IMPORT_TIME_CALLS or (top in IMPORT_TIME_MODULES and "." in name):
            bad.append(f"{path}:{node.lineno} calls {name}(...) at import time")
    assert not bad, (
        "Nothing at import time (docs/architecture.md): create clients, read settings and open files on "
        "first use, cache them in a function and register a reset hook with shared.lifecycle.on_reset:\n  "
        + "\n  ".join(bad)
    )
