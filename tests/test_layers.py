"""The layering rules (docs/architecture.md) as a test: each package imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from support import REPO_ROOT

PACKAGE = REPO_ROOT / "server" / "elser_server"

# package (relative to elser_server) -> module prefixes it must never import
FORBIDDEN = {
    "core": (
        "grpc",
        "grpc_health",
        "grpc_reflection",
        "grpc_status",
        "aiohttp",
        "google",
        "elser.",
        "elser_server.transport",
        "elser_server.observability",
        "elser_server.app",
    ),
    "transport": ("elser_server.runtime", "elser_server.model"),
    "runtime": ("elser_server.core", "elser_server.transport", "elser_server.observability"),
    "model": ("elser_server.core", "elser_server.transport", "elser_server.observability"),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
    return found


def forbidden_import(module: str, forbidden: tuple[str, ...]) -> bool:
    # "elser." forbids the elser.* gencode without matching elser_server
    return any(
        module == f.rstrip(".") or module.startswith(f if f.endswith(".") else f + ".") for f in forbidden
    )


def violations(root: Path, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        for module in sorted(imported_modules(path)):
            if any(
                module == f.rstrip(".") or module.startswith(f if f.endswith(".") else f + ".")
                for f in forbidden
            ):
                out.append(f"{path.relative_to(root)} imports {module}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(package: str) -> None:
    assert (PACKAGE / package).is_dir()
    assert violations(PACKAGE / package, FORBIDDEN[package]) == []


def test_the_rule_catches_forbidden_imports(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "import grpc\nfrom elser.v1 import types_pb2\nfrom elser_server.core.types import Endpoint\n"
    )
    assert violations(tmp_path, FORBIDDEN["core"]) == ["bad.py imports elser.v1", "bad.py imports grpc"]
    (tmp_path / "bad.py").write_text("from elser_server.runtime.backends.onnxruntime import SpladeSession\n")
    assert violations(tmp_path, FORBIDDEN["transport"]) == [
        "bad.py imports elser_server.runtime.backends.onnxruntime"
    ]
