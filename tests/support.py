"""Helpers shared by test modules (conftest.py files are not importable by name: several exist)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from elser_cluster import PostgresServer
from elser_server.model.checkpoint import BertConfig, tiny_vocab, wordpiece_tokenizer, write_random_checkpoint

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


@dataclass(frozen=True)
class PgDatabase:
    """A fresh database owned by role `elser`: `url` has no password, `password_file` holds it."""

    server: PostgresServer
    name: str
    url: str
    password: str
    password_file: Path

    @property
    def url_with_password(self) -> str:
        return self.url.replace("elser@", f"elser:{self.password}@", 1)
