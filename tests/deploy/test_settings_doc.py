"""README.md carries the settings table generated from the settings class; it must not drift."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC = REPO_ROOT / "README.md"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "settings_table", REPO_ROOT / "scripts" / "settings_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_has_the_current_settings_table() -> None:
    script = _script()
    text = DOC.read_text(encoding="utf-8")
    match = re.search(re.escape(script.START) + r"\n(.*?)" + re.escape(script.END), text, re.DOTALL)
    assert match is not None, f"{DOC}: settings-table markers missing"
    assert match.group(1) == script.settings_table(), (
        "README.md is stale: run `.venv/bin/python scripts/settings_table.py --update README.md`"
    )


def test_table_has_a_row_per_setting() -> None:
    script = _script()
    from elser_server.settings import Settings

    rows = script.settings_table().splitlines()[2:]
    assert len(rows) == len(Settings.model_fields)
    assert all(row.count(" | ") == 3 for row in rows)
