"""Entry point: split a text with an endpoint's chunking settings into chunks with offsets in both units."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial

from elser_server.core.chunking.recursive import recursive_chunks
from elser_server.core.chunking.segment import Text, Words
from elser_server.core.chunking.sentence import sentence_chunks
from elser_server.core.chunking.separators import DEADLINE_REASON, SeparatorClock
from elser_server.core.chunking.settings import ChunkingSettings, Strategy
from elser_server.core.chunking.word import word_chunks
from elser_server.core.errors import deadline_exceeded


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


def chunk(
    text: str,
    settings: ChunkingSettings,
    *,
    separator_budget_s: float | None = None,
    deadline: float | None = None,
) -> list[Chunk]:
    """Split `text` exactly as ES's chunker for `settings` does; chunks are in input order.

    Settings must come from `parse_chunking_settings` (validated). Every strategy gives an empty text one
    empty chunk `[0, 0)` and a text without words one chunk covering it, as ES does. The recursive strategy's
    separators match for `separator_budget_s` of CPU time in all, and not past `deadline`
    (`time.monotonic()`); when either runs out the call raises ES's 400 or the deadline's `ElserError`. Run
    it off the event loop: `chunk_off_loop`."""
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
        clock = SeparatorClock(separator_budget_s, deadline)
        spans = recursive_chunks(t, settings.separators or (), size, clock)
    return [Chunk(t.to_cp(s), t.to_cp(e), s, e) for s, e in spans]


async def chunk_off_loop(
    executor: Executor,
    text: str,
    settings: ChunkingSettings,
    *,
    separator_budget_s: float | None,
    deadline: float,
) -> list[Chunk]:
    """`chunk` in `executor`, answered by `deadline` at the latest: past it this raises the deadline's
    `ElserError` at once, and the thread, no longer awaited, stops within the same time of CPU."""
    job = asyncio.get_running_loop().run_in_executor(
        executor, partial(chunk, text, settings, separator_budget_s=separator_budget_s, deadline=deadline)
    )
    try:
        return await asyncio.wait_for(job, max(deadline - time.monotonic(), 0))
    except TimeoutError:
        raise deadline_exceeded(DEADLINE_REASON) from None
