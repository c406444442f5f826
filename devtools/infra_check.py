"""Read the Bicep templates and the code's setting names without a Bicep compiler.

Used by tests/test_infra_*.py and tests/test_settings_sync.py (never by deployed code).

- Syntax: tree-sitter-bicep (``root.has_error``) and pycep-parser (lark raises with line/column).
  Neither knows the ``.bicepparam`` assignment form ``param name = value``: for those files each
  such line is rewritten to ``var name = value`` (and the ``using`` line dropped for pycep), which
  keeps the expression syntax under test.
- Structure: pycep-parser's dict. It does not tell a string literal from an identifier, so
  :func:`resolve` looks identifiers up among the file's parameters and variables.
- Code settings: ``Settings.model_fields`` (plus env_prefix / aliases), ``BINDING_SETTINGS``,
  every ``%NAME%`` string and every ``connection=`` keyword in ``function_app.py`` and
  ``functions/*.py`` (parsed with ``ast``, never imported).
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
MAIN_BICEP = INFRA / "main.bicep"
FUNCTIONAPP_BICEP = INFRA / "modules" / "functionapp.bicep"
LOCAL_SETTINGS_EXAMPLE = ROOT / "local.settings.json.example"

_PARAM_ASSIGNMENT = re.compile(r"(?m)^(\s*)param(\s+[A-Za-z_][A-Za-z0-9_]*\s*=)")
_USING = re.compile(r"(?m)^\s*using\s+'[^']*'\s*$")
_BINDING_EXPRESSION = re.compile(r"%([A-Za-z_][A-Za-z0-9_.:-]*)%")


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def bicepparam_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicepparam"))


# --- syntax ------------------------------------------------------------------------------------
@functools.cache
def _ts_parser() -> Any:
    import tree_sitter
    import tree_sitter_bicep

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


def bicepparam_as_bicep(text: str, *, keep_using: bool = True) -> str:
    """``param x = v`` → ``var x = v`` so both parsers accept a .bicepparam file."""
    text = _PARAM_ASSIGNMENT.sub(r"\1var\2", text)
    if not keep_using:
        text = _USING.sub("", text)
    return text


def tree_sitter_errors(source: str) -> list[str]:
    """``line:col text`` of every ERROR or MISSING node (empty list = clean parse)."""
    tree = _ts_parser().parse(source.encode())
    if not tree.root_node.has_error:
        return []
    found: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            row, col = node.start_point
            snippet = node.text.decode(errors="replace")[:40] if node.text else node.type
            found.append(f"{row + 1}:{col + 1} {'MISSING ' if node.is_missing else ''}{snippet!r}")
        stack.extend(node.children)
    return sorted(found) or ["root has_error"]


def pycep_parse_text(text: str) -> dict[str, Any]:
    from pycep import BicepParser

    # pycep annotates the result as its BicepJson TypedDict; at run time it is a plain dict, and
    # callers here walk it as untyped JSON (keys and nesting the TypedDict doesn't spell out).
    return cast(dict[str, Any], BicepParser().parse(text=text))


@functools.cache
def parse_bicep(path: Path) -> dict[str, Any]:
    """pycep dict of a .bicep file (cached; raises on a syntax error)."""
    return pycep_parse_text(path.read_text())


@functools.cache
def parse_bicepparam(path: Path) -> dict[str, Any]:
    """``{"using": target, "params": {name: value}, "variables": {...}}`` of a .bicepparam file."""
    text = path.read_text()
    using = re.search(r"(?m)^\s*using\s+'([^']*)'", text)
    assigned = set(re.findall(r"(?m)^\s*param\s+([A-Za-z_][A-Za-z0-9_]*)\s*=", text))
    parsed = pycep_parse_text(bicepparam_as_bicep(text, keep_using=False))
    variables = {name: spec["value"] for name, spec in parsed.get("variables", {}).items()}
    return {
        "using": using.group(1) if using else None,
        "params": {name: variables[name] for name in assigned},
        "variables": {name: value for name, value in variables.items() if name not in assigned},
    }


# --- structure ---------------------------------------------------------------------------------
def resources(path: Path) -> dict[str, dict[str, Any]]:
    return parse_bicep(path).get("resources", {})


def resources_of_type(resource_type: str) -> list[tuple[Path, str, dict[str, Any]]]:
    """(file, symbolic name, resource) for every non-``existing`` resource of that type."""
    out = []
    for path in bicep_files():
        for name, res in resources(path).items():
            if res.get("type", "").lower() == resource_type.lower() and not res.get("existing"):
                out.append((path, name, res))
    return out


def variable(path: Path, name: str) -> Any:
    return parse_bicep(path)["variables"][name]["value"]


def param_default(path: Path, name: str) -> Any:
    return parse_bicep(path)["parameters"][name].get("default")


class Identifier(str):
    """A Bicep identifier (parameter/variable name) as opposed to a string literal."""


def resolve(path: Path, value: Any) -> Any:
    """A pycep value with parameters replaced by their default (``Identifier`` when none) and
    variables by their value; expressions (dicts) are returned unchanged."""
    doc = parse_bicep(path)
    if isinstance(value, str):
        if value in doc.get("parameters", {}):
            default = doc["parameters"][value].get("default")
            return Identifier(value) if default is None else resolve(path, default)
        if value in doc.get("variables", {}):
            return resolve(path, doc["variables"][value]["value"])
    return value


def is_identifier(path: Path, value: Any) -> bool:
    doc = parse_bicep(path)
    return isinstance(value, str) and (value in doc.get("parameters", {}) or value in doc.get("variables", {}))


def app_settings() -> dict[str, Any]:
    """The Function App's app settings: main.bicep ``appSettings`` + functionapp ``platformSettings``.

    Fails loudly if the appsettings config resource is no longer ``union(platformSettings,
    appSettings)`` (then this reader must learn the new shape).
    """
    config = resources(FUNCTIONAPP_BICEP)["appSettingsConfig"]["config"]
    assert config["name"] == "appsettings", config
    expected = {"function": {"type": "union", "parameters": {"arg_1": "platformSettings", "arg_2": "appSettings"}}}
    assert config["properties"] == expected, f"appsettings properties changed shape: {config['properties']}"
    module = parse_bicep(MAIN_BICEP)["modules"]["functionApp"]["config"]["params"]
    assert module["appSettings"] == "appSettings", "main.bicep must pass var appSettings to the app module"
    main = variable(MAIN_BICEP, "appSettings")
    platform = variable(FUNCTIONAPP_BICEP, "platformSettings")
    overlap = set(main) & set(platform)
    assert not overlap, f"settings defined twice (main.bicep appSettings and platformSettings): {sorted(overlap)}"
    return {**platform, **main}


# --- settings the code reads ---------------------------------------------------------------------
def settings_env_names() -> dict[str, str]:
    """Environment-variable name → origin for every Settings field (read dynamically)."""
    from shared.config import Settings

    prefix = Settings.model_config.get("env_prefix", "") or ""
    names: dict[str, str] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else field.alias
        env_name = alias if isinstance(alias, str) else f"{prefix}{field_name}"
        names[env_name] = f"Settings.{field_name}"
    return names


def binding_settings() -> dict[str, str]:
    from shared.config import BINDING_SETTINGS

    return {name: "BINDING_SETTINGS" for name in BINDING_SETTINGS}


def function_sources() -> list[Path]:
    return [p for p in [ROOT / "function_app.py", *sorted((ROOT / "functions").glob("*.py"))] if p.exists()]


def trigger_settings() -> tuple[dict[str, str], dict[str, str]]:
    """(``%NAME%`` expressions, ``connection=`` names) found in the function sources, each → origin."""
    expressions: dict[str, str] = {}
    connections: dict[str, str] = {}
    for path in function_sources():
        rel = path.relative_to(ROOT)
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for name in _BINDING_EXPRESSION.findall(node.value):
                    expressions.setdefault(name, f"%{name}% in {rel}:{node.lineno}")
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if (
                        kw.arg == "connection"
                        and isinstance(kw.value, ast.Constant)
                        and isinstance(kw.value.value, str)
                    ):
                        connections.setdefault(kw.value.value, f"connection={kw.value.value!r} in {rel}:{node.lineno}")
    return expressions, connections


def connection_satisfied(connection: str, provided: set[str]) -> bool:
    """A connection setting is a plain name (connection string) or a ``<name>__*`` group (identity)."""
    return connection in provided or any(name.startswith(f"{connection}__") for name in provided)


def dotted(value: Any) -> Any:
    """``a.b.c`` for a pycep property-accessor expression (other values unchanged)."""
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "property_accessor":
        ops = value["operator"]["operands"]
        return f"{dotted(ops['operand_1'])}.{dotted(ops['operand_2'])}"
    return value


def key(name: str) -> str:
    """An object key as written, without the quotes pycep keeps (``'azd-env-name'``)."""
    return name[1:-1] if len(name) >= 2 and name[0] == name[-1] == "'" else name
