"""Chunking settings: parsing/validation with ES's messages, defaults, and ES serialization order."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Strategy(enum.StrEnum):
    WORD = "word"
    SENTENCE = "sentence"
    NONE = "none"
    RECURSIVE = "recursive"


@dataclass(frozen=True)
class ChunkingSettings:
    strategy: Strategy
    max_chunk_size: int | None = None
    overlap: int | None = None
    sentence_overlap: int | None = None
    separators: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"strategy": self.strategy.value}
        if self.strategy is Strategy.NONE:
            return out
        out["max_chunk_size"] = self.max_chunk_size
        if self.strategy is Strategy.WORD:
            out["overlap"] = self.overlap
        elif self.strategy is Strategy.SENTENCE:
            out["sentence_overlap"] = self.sentence_overlap
        else:
            out["separators"] = list(self.separators or ())
        return out


DEFAULT_CHUNKING = ChunkingSettings(Strategy.SENTENCE, max_chunk_size=250, sentence_overlap=1)
