"""Every .bicep and .bicepparam file parses (no Bicep compiler here: tree-sitter-bicep + pycep).

These catch syntax errors (unterminated strings, braces, bad tokens), not semantic ones (undefined
identifiers, wrong property names); tests/test_infra_templates.py adds the structural checks we
can make ourselves. `bicep build` / what-if must run in a pipeline that has the Bicep CLI.
"""

from __future__ import annotations

import pytest

from devtools import infra_check as ic

BICEP = ic.bicep_files()
BICEPPARAM = ic.bicepparam_files()


def _id(path):
    return str(path.relative_to(ic.INFRA))


def test_the_expected_files_exist():
    names = {_id(p) for p in BICEP + BICEPPARAM}
    assert {"main.bicep", "main.bicepparam", "dev.bicepparam", "prod.bicepparam"} <= names, names
    assert len(BICEP) >= 5, names


@pytest.mark.parametrize("path", BICEP, ids=_id)
def test_bicep_parses_with_tree_sitter(path):
    assert ic.tree_sitter_errors(path.read_text()) == []


@pytest.mark.parametrize("path", BICEP, ids=_id)
def test_bicep_parses_with_pycep(path):
    doc = ic.parse_bicep(path)
    assert doc.get("resources") or doc.get("modules"), f"{path.name}: no resources or modules"


@pytest.mark.parametrize("path", BICEPPARAM, ids=_id)
def test_bicepparam_parses(path):
    text = path.read_text()
    assert ic.tree_sitter_errors(ic.bicepparam_as_bicep(text)) == []
    parsed = ic.parse_bicepparam(path)  # pycep raises on a syntax error
    assert parsed["using"] and parsed["params"]


@pytest.mark.parametrize(
    "broken",
    [
        "param a string = 'unterminated\n",
        "resource r 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'x'\n",
        "var x = {\n  a: 'b'\n}}\n",
    ],
)
def test_the_parsers_do_reject_broken_bicep(broken):
    """Guard against a checker that silently accepts everything."""
    ts_errors = ic.tree_sitter_errors(broken)
    try:
        ic.pycep_parse_text(broken)
        pycep_ok = True
    except Exception:  # noqa: BLE001 - any failure to parse is what this checks
        pycep_ok = False
    assert ts_errors or not pycep_ok
