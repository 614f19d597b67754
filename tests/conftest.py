"""Shared fixtures: a tiny random BERT-MLM generated in the test run (no download), its package and repository,
and the real default model when `elser-model fetch-default models/repository` has built it."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from elser_server.model.checkpoint import BertConfig, tiny_vocab, wordpiece_tokenizer, write_random_checkpoint
from elser_server.model.convert import convert
from elser_server.model.package import ModelPackage
from elser_server.model.repository import install, publish

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REPOSITORY = REPO_ROOT / "models" / "repository"
TINY_MODEL_IDS = (".elser_model_2", ".elser_model_2_linux-x86_64")

TINY_CONFIG = BertConfig(
    vocab_size=0,  # set from the generated vocabulary
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    max_position_embeddings=512,
    type_vocab_size=2,
    layer_norm_eps=1e-12,
)


def make_tiny_checkpoint(out: Path, seed: int = 0, **variant: bool) -> Path:
    tokenizer = wordpiece_tokenizer(tiny_vocab())
    config = dataclasses.replace(TINY_CONFIG, vocab_size=tokenizer.get_vocab_size())
    return write_random_checkpoint(out, config, tokenizer, seed, **variant)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoint")


@pytest.fixture(scope="session")
def tiny_package(tiny_checkpoint: Path) -> ModelPackage:
    return convert(tiny_checkpoint, tiny_checkpoint.parent / "package", model_id=".elser_model_2")


@pytest.fixture(scope="session")
def tiny_repository(tiny_package: ModelPackage, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with the tiny model published under ELSER's ids (for server tests)."""
    repo = tmp_path_factory.mktemp("tiny-repo")
    for model_id in TINY_MODEL_IDS:
        publish(tiny_package.path, repo, model_id)
    return repo


def _installed_default(model_id: str, cache: Path) -> ModelPackage:
    if not (DEFAULT_REPOSITORY / "elser_model_2.metadata.json").is_file():
        pytest.skip(
            f"default model not built: run `elser-model fetch-default {DEFAULT_REPOSITORY.relative_to(REPO_ROOT)}`"
            " (make model)"
        )
    return ModelPackage.load(install(DEFAULT_REPOSITORY, model_id, cache))


@pytest.fixture(scope="session")
def default_package(tmp_path_factory: pytest.TempPathFactory) -> ModelPackage:
    return _installed_default(".elser_model_2", tmp_path_factory.mktemp("model-cache"))


@pytest.fixture(scope="session")
def default_int8_package(tmp_path_factory: pytest.TempPathFactory) -> ModelPackage:
    return _installed_default(".elser_model_2_int8", tmp_path_factory.mktemp("model-cache-int8"))


def shared_dir() -> Path | None:
    """shared/ sits beside the repository clone (X/main and X/shared); ELSER_SHARED_DIR overrides."""
    env = os.environ.get("ELSER_SHARED_DIR")
    candidates = ([Path(env)] if env else []) + [REPO_ROOT.parent / "shared"]
    return next((p for p in candidates if p.is_dir()), None)


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    shared = shared_dir()
    path = shared / "golden" / "splade-tiny.golden.json" if shared else None
    if path is None or not path.is_file():
        pytest.skip(
            "golden vectors not found: expected ../shared/golden/ beside the repo or $ELSER_SHARED_DIR"
        )
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
