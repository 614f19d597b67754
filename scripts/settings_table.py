"""Print the Markdown table of every `elser-server` setting, generated from the settings class.

`--update FILE` rewrites the table between the settings-table markers of FILE instead (README.md;
tests/deploy/test_settings_doc.py fails when that copy is stale).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from elser_server.settings import Settings
from pydantic_core import PydanticUndefined

START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"


def _default(value: Any) -> str:
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_table() -> str:
    env_prefix = Settings.model_config.get("env_prefix", "")
    rows = [
        "| flag | environment variable | default | description |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:
            # implicit flags: the switch and its negation, no value
            flag = f"{flag}` / `--no-{flag[2:]}"
        env = (env_prefix + name).upper()
        rows.append(f"| `{flag}` | `{env}` | {_default(field.default)} | {_cell(field.description or '')} |")
    return "\n".join(rows) + "\n"


def update(path: Path, table: str) -> None:
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{path}: no {START} … {END} markers")
    path.write_text(pattern.sub(lambda _: f"{START}\n{table}{END}", text, count=1), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--update", type=Path, metavar="FILE", help="rewrite the table between the markers")
    args = parser.parse_args()
    table = settings_table()
    if args.update is None:
        print(table, end="")
    else:
        update(args.update, table)


if __name__ == "__main__":
    main()
