"""TorchScript models made the way Elastic makes them (eland), traced once per test session and shared (the
fixtures are in tests/model/conftest.py; conftest modules are not importable by name, several exist)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from es_package import Traced

TRACING_MODULES = ("torch", "transformers", "eland")


def missing_tracing_modules() -> list[str]:
    return [m for m in TRACING_MODULES if importlib.util.find_spec(m) is None]


class EsForms:
    """The default model's weights as a Hugging Face directory, its eland trace and the other TorchScript forms
    (es_package.VARIANTS), each traced once; ES-layout repositories holding one of them."""

    def __init__(self, checkpoint: Path, root: Path) -> None:
        self.checkpoint = checkpoint
        self.root = root
        self._hf_dir: Path | None = None
        self._traced: dict[str, Traced] = {}
        self._repos: dict[str, Path] = {}

    @property
    def hf_dir(self) -> Path:
        if self._hf_dir is None:
            from es_package import hf_model_dir

            self._hf_dir = hf_model_dir(self.checkpoint, self.root / "hf")
        return self._hf_dir

    def traced(self, variant: str) -> Traced:
        if variant not in self._traced:
            from es_package import eland_trace, trace_variant

            if "eland" not in self._traced:  # every form takes eland's config and vocabulary
                self._traced["eland"] = eland_trace(self.hf_dir, self.root / "eland")
            eland = self._traced["eland"]
            self._traced[variant] = trace_variant(self.hf_dir, variant, self.root / "trace", eland)
        return self._traced[variant]

    def repository(self, variant: str) -> Path:
        """An ES-layout repository with `variant` as `.elser_model_2` (shared: copy it before changing it)."""
        if variant not in self._repos:
            from es_package import VARIANTS, write_es_entry

            repo = self.root / "repos" / variant
            write_es_entry(self.traced(variant), repo, expansion_type=VARIANTS[variant].expansion_type)
            self._repos[variant] = repo
        return self._repos[variant]

    def write(self, name: str, build: Callable[[Path], None]) -> Path:
        """A repository `name` that `build(repo_dir)` fills (once per session)."""
        if name not in self._repos:
            repo = self.root / "repos" / name
            build(repo)
            self._repos[name] = repo
        return self._repos[name]
