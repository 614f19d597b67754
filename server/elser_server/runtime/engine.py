"""Offline engine: tokenize, plan length-sorted batches and run them on N sessions (one per worker thread).

Used by `elser-model embed` and the benchmark; the server has its own async queue over the same parts."""

from __future__ import annotations

import queue
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from elser_server.model.package import ModelPackage
from elser_server.runtime.backends import Session, is_quantized, load_runtime
from elser_server.runtime.batching import DEFAULT_MAX_BATCH_SIZE, DEFAULT_TOKEN_BUDGET, plan_batches
from elser_server.runtime.layout import Layout
from elser_server.runtime.sparse import sparsify
from elser_server.runtime.tokenizer import Tokenizer


@dataclass(frozen=True)
class SparseEmbedding:
    ids: np.ndarray  # uint32 vocabulary ids, descending weight
    weights: np.ndarray  # float32, > 0
    is_truncated: bool
    n_tokens: int  # incl. [CLS]/[SEP], after truncation


class Engine:
    def __init__(
        self,
        package: ModelPackage | str | Path,
        num_allocations: int = 1,
        num_threads: int = 1,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        *,
        share_weights: bool = True,
        warm_up: bool = True,
        layout: Layout | None = None,
    ) -> None:
        """`layout`: backend and precision (default: onnxruntime, as the package is)."""
        if num_allocations < 1:
            raise ValueError("num_allocations must be ≥ 1")
        self.package = package if isinstance(package, ModelPackage) else ModelPackage.load(package)
        self.tokenizer = Tokenizer.from_file(self.package.tokenizer_path, self.package.max_sequence_length)
        self.token_budget = token_budget
        self.max_batch_size = max_batch_size
        if layout is None:
            layout = Layout("onnxruntime", "int8" if is_quantized(self.package) else "fp32")
        self.runtime = load_runtime(
            self.package.model_path,
            layout,
            max_sequence_length=self.package.max_sequence_length,
            processors=num_allocations * num_threads,
            share_weights=share_weights and num_allocations > 1,
            quantized=is_quantized(self.package),
        )
        self.sessions = [self.runtime.new_session(num_threads) for _ in range(num_allocations)]
        if warm_up:
            for s in self.sessions:
                s.warm_up(token_budget, max_batch_size)
        # Each worker takes a session for one batch and returns it: with as many workers as sessions, no wait.
        self._idle: queue.SimpleQueue[Session] = queue.SimpleQueue()
        for s in self.sessions:
            self._idle.put(s)
        self._pool = ThreadPoolExecutor(num_allocations, thread_name_prefix="elser-engine")

    def _run(self, batch: list[np.ndarray]) -> np.ndarray:
        session = self._idle.get()
        try:
            return session.run(batch)
        finally:
            self._idle.put(session)

    def embed(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> list[SparseEmbedding]:
        """Embed texts; results in input order. `progress(n)` is called as each batch of n texts finishes.
        Raises ValueError (naming the input) for text that is not valid Unicode."""
        encodings = self.tokenizer.encode_batch(texts)
        groups = plan_batches([len(e) for e in encodings], self.token_budget, self.max_batch_size)
        results: list[SparseEmbedding | None] = [None] * len(texts)
        futures = {self._pool.submit(self._run, [encodings[i].ids for i in g]): g for g in groups}
        for future in as_completed(futures):
            group = futures[future]
            for i, row in zip(group, future.result(), strict=True):
                ids, weights = sparsify(row)
                results[i] = SparseEmbedding(ids, weights, encodings[i].is_truncated, len(encodings[i]))
            if progress is not None:
                progress(len(group))
        return [r for r in results if r is not None]

    def to_tokens(self, embedding: SparseEmbedding) -> dict[str, float]:
        """{raw vocabulary token: weight} in descending weight order, ES's `embedding` object."""
        tokens = self.tokenizer.id_to_tokens(embedding.ids)
        return dict(zip(tokens, embedding.weights.tolist(), strict=True))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
