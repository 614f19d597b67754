"""One request's view of a started deployment: tokenize texts (inline when short, else on the tokenize pool)
and embed them through the deployment's queue, with the request's deadline and row options."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from elser_server.core.deployment import Deployment
from elser_server.core.queue import RowOptions
from elser_server.core.types import Priority, SparseEmbedding
from elser_server.runtime.tokenizer import Encoding, Tokenizer

INLINE_TOKENIZE_CHARS = 2000  # ≈ 20 µs of tokenization: a thread hop would cost more than the work


@dataclass(frozen=True)
class Embedder:
    deployment: Deployment
    tokenizer: Tokenizer
    row_options: RowOptions
    deadline: float  # time.monotonic() value
    pool: Executor

    async def tokenize(self, texts: Sequence[str]) -> list[Encoding]:
        if sum(len(t) for t in texts) <= INLINE_TOKENIZE_CHARS:
            return self.tokenizer.encode_batch(texts)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self.tokenizer.encode_batch, list(texts))

    async def embed(self, texts: Sequence[str], priority: Priority) -> list[SparseEmbedding]:
        """Embeddings in input order. Cancelling the caller drops its queued work."""
        encodings = await self.tokenize(texts)
        rows = await self.deployment.embed(
            encodings, priority=priority, deadline=self.deadline, options=self.row_options
        )
        return [
            SparseEmbedding(r.token_ids, r.weights, e.is_truncated, len(e.ids), r.tokens)
            for r, e in zip(rows, encodings, strict=True)
        ]
