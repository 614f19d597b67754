"""Chunked inference (what ES's semantic_text runs): each input is split with the chunking settings and
every chunk embedded through the deployment's shared queue.

Results stream in input and chunk order, and memory stays bounded whatever the text length: chunks are
embedded in windows of CHUNK_WINDOW, and one window is always queued ahead of the one being streamed so the
allocations never idle. Windows span inputs, so twenty short inputs make two model calls, not twenty; a
failed window fails only the inputs it held.

Example (CHUNK_WINDOW 16): inputs A (3 chunks) and B (20 chunks) make windows [A0-A2, B0-B12] and
[B13-B19]; the stream is A0 A1 A2, done(A, 3), B0 … B19, done(B, 20).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

from elser_server.core.chunking.chunker import Chunk, chunk_off_loop
from elser_server.core.chunking.settings import ChunkingSettings
from elser_server.core.embedder import Embedder
from elser_server.core.errors import ElserError
from elser_server.core.types import ChunkedInputDone, ChunkEmbedding, Priority, SparseEmbedding

CHUNK_WINDOW = 16  # chunks queued at a time: small, so the first results stream out early

_Window = list[tuple[int, Chunk]]  # (input index, chunk)


async def chunked_embeddings(
    embedder: Embedder,
    inputs: Sequence[str],
    settings: ChunkingSettings,
    priority: Priority,
    separator_budget_s: float | None,
) -> AsyncIterator[ChunkEmbedding | ChunkedInputDone]:
    """`separator_budget_s`: CPU seconds recursive chunking's separator regexes get per input."""

    async def embed_window(window: _Window) -> list[SparseEmbedding]:
        return await embedder.embed([c.text(inputs[index]) for index, c in window], priority)

    async def windows() -> AsyncGenerator[_Window, None]:
        window: _Window = []
        for index, text in enumerate(inputs):
            chunks = await chunk_off_loop(
                embedder.pool,
                text,
                settings,
                separator_budget_s=separator_budget_s,
                deadline=embedder.deadline,
            )
            for c in chunks:
                window.append((index, c))
                if len(window) == CHUNK_WINDOW:
                    yield window
                    window = []
        if window:
            yield window

    source = windows()
    pending: deque[tuple[_Window, asyncio.Future[list[SparseEmbedding]]]] = deque()

    async def queue_ahead() -> None:
        while len(pending) < 2 and (window := await anext(source, None)) is not None:
            pending.append((window, asyncio.ensure_future(embed_window(window))))

    failed: dict[int, ElserError] = {}
    current, sent = 0, 0  # the input being streamed and how many of its chunks were sent
    try:
        await queue_ahead()
        while pending:
            window, future = pending.popleft()
            try:
                embeddings = await future
            except ElserError as exc:
                for index, _ in window:
                    failed.setdefault(index, exc)
            await queue_ahead()
            for position, (index, c) in enumerate(window):
                while current < index:  # inputs before this one are complete (or had no chunks)
                    yield ChunkedInputDone(current, sent, failed.get(current))
                    current, sent = current + 1, 0
                if index not in failed:
                    yield ChunkEmbedding(index, sent, c, embeddings[position])
                    sent += 1
        while current < len(inputs):
            yield ChunkedInputDone(current, sent, failed.get(current))
            current, sent = current + 1, 0
    finally:
        for _, future in pending:
            future.cancel()
        await source.aclose()
