"""Helpers shared by test modules (conftest.py files are not importable by name: several exist)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

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


# Chunking settings of each strategy as ES's chunker tests use them on blank input (WordBoundaryChunkerTests
# testEmptyString/testWhitespace, EmbeddingRequestChunkerTests testBlankInput_*/testWhitespaceInput_*,
# RecursiveChunkerTests testChunkEmptyInput, NoopChunker), and blank texts: ES gives each one chunk, the
# whole input, and embeds that text as it embeds any input.
BLANK_CHUNKING: dict[str, dict[str, object]] = {
    "word-10-5": {"strategy": "word", "max_chunk_size": 10, "overlap": 5},
    "word-100-10": {"strategy": "word", "max_chunk_size": 100, "overlap": 10},
    "sentence-250-1": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1},
    "sentence-20-0": {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 0},
    "recursive-plaintext": {"strategy": "recursive", "max_chunk_size": 10},
    "recursive-markdown": {"strategy": "recursive", "max_chunk_size": 10, "separator_group": "markdown"},
    "recursive-custom": {"strategy": "recursive", "max_chunk_size": 10, "separators": [" ", "\\s+"]},
    "none": {"strategy": "none"},
}
BLANK_TEXTS = ["", " ", "   ", "\n\n", "\t \u3000\u2028", "\r\n"]
