"""Every generated configuration table in the docs matches shared.config.Settings and main.bicep.

Regenerate with `python -m devtools.settings_table --write <file>`.
"""

from __future__ import annotations

import re

import pytest

from devtools import settings_table
from devtools.infra_check import ROOT

DOCS = [ROOT / "README.md", ROOT / "docs" / "deploy.md"]
BLOCK = re.compile(re.escape(settings_table.START) + r"\n(.*?)\n" + re.escape(settings_table.END), re.DOTALL)


def test_the_deploy_doc_carries_the_table():
    assert BLOCK.search((ROOT / "docs" / "deploy.md").read_text())


@pytest.mark.parametrize("path", [p for p in DOCS if p.exists()], ids=lambda p: p.name)
def test_marked_tables_are_current(path):
    expected = settings_table.table()
    for block in BLOCK.findall(path.read_text()):
        assert block == expected, (
            f"{path.name}: configuration table is stale; run python -m devtools.settings_table --write {path.relative_to(ROOT)}"
        )


def test_every_setting_has_a_description():
    from shared.config import Settings

    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert not missing, f"Settings fields without description (the docs table needs one): {missing}"
