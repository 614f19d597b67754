"""Entry point: split a text with an endpoint's chunking settings into chunks with offsets in both units."""

from __future__ import annotations

from dataclasses import dataclass

from elser_server.core.chunking.recursive import recursive_chunks
from elser_server.core.chunking.segment import Text, Words
from elser_server.core.chunking.sentence import sentence_chunks
from elser_server.core.chunking.settings import ChunkingSettings, Strategy
from elser_server.core.chunking.word import word_chunks


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk of an input. `start`/`end` index the Python `str` (Unicode code points);
    `start_utf16`/`end_utf16` are the same span in UTF-16 code units, as Elasticsearch reports offsets."""

    start: int
    end: int
    start_utf16: int
    end_utf16: int

    def text(self, source: str) -> str:
        """This chunk's text, given the string that was chunked."""
        return source[self.start : self.end]


def chunk(text: str, settings: ChunkingSettings) -> list[Chunk]:
    """Split `text` exactly as ES's chunker for `settings` does; chunks are in input order.

    Settings must come from `parse_chunking_settings` (validated). Every strategy gives an empty text one
    empty chunk `[0, 0)` and a text without words one chunk covering it, as ES does."""
    t = Text(text)
    spans: list[tuple[int, int]]
    size = settings.max_chunk_size or 0
    if settings.strategy is Strategy.NONE:
        spans = [(0, t.length)]
    elif settings.strategy is Strategy.WORD:
        words = Words(t.ustr)
        spans = [(s, e) for s, e, _ in word_chunks(words.ends, t.length, size, settings.overlap or 0)]
    elif settings.strategy is Strategy.SENTENCE:
        spans = sentence_chunks(t.ustr, size, bool(settings.sentence_overlap))
    else:
        spans = recursive_chunks(t, settings.separators or (), size)
    return [Chunk(t.to_cp(s), t.to_cp(e), s, e) for s, e in spans]
