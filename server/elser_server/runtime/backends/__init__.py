"""The backend seam: one module per inference backend behind the same session interface.

Every backend runs the package's ONNX file and gets the same batches (padded only to each batch's longest input)
and the same cancellation: a `RunHandle` cancelled from another thread makes `Session.run` raise RunCancelled
instead of returning rows, at once where the backend can abort a running call (onnxruntime), at the run's end
where it cannot safely (OpenVINO). A `LoadedRuntime` holds one model's weights once for all of its sessions
(allocations)."""

from __future__ import annotations

import abc
import importlib.util
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from elser_server.model.package import ModelPackage
from elser_server.runtime.batching import DEFAULT_MAX_BATCH_SIZE, DEFAULT_TOKEN_BUDGET, plan_batches
from elser_server.runtime.layout import Layout

# The packages' vocabulary projection (MLM decoder) weights: MatMul initializers the converter names so; int8
# precision quantizes these.
VOCAB_WEIGHT_PREFIX = "vocab_projection.weight"


def openvino_installed() -> bool:
    """Whether the optional OpenVINO backend can be used (the `openvino` extra is installed)."""
    return importlib.util.find_spec("openvino") is not None


def is_quantized(package: ModelPackage) -> bool:
    """Whether the package's ONNX file is int8 already (the converter records it in the metadata), so its
    quantization is part of the file and cannot be undone."""
    return str(package.metadata.get("quantization", "none")) != "none"


class RunCancelled(Exception):
    """A run was aborted through its `RunHandle`."""


class RunHandle:
    """Lets another thread abort a `Session.run` (it then raises RunCancelled). Backend-neutral: the backend
    attaches its own abort (onnxruntime's terminate flag; none for OpenVINO) for the duration of a run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._abort: Callable[[], None] | None = None

    def cancel(self) -> None:
        # The abort runs under the lock, so it can only reach the run it was attached to: `attach` detaches under
        # the same lock. A late abort would otherwise hit whatever the session runs next.
        with self._lock:
            self._cancelled = True
            if self._abort is not None:
                self._abort()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def running(self) -> bool:
        """A run is in progress with this handle attached (a cancel now aborts it)."""
        return self._abort is not None

    @contextmanager
    def attach(self, abort: Callable[[], None]) -> Iterator[None]:
        """Route `cancel` to `abort` while the block runs; a handle cancelled before raises at once."""
        with self._lock:
            if self._cancelled:
                raise RunCancelled("run cancelled before it started")
            self._abort = abort
        try:
            yield
        finally:
            with self._lock:
                self._abort = None


class Session(abc.ABC):
    """One allocation of a model: `num_threads` threads."""

    layout: Layout
    num_threads: int
    max_sequence_length: int
    vocab_size: int

    @abc.abstractmethod
    def _infer(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, handle: RunHandle | None
    ) -> np.ndarray:
        """[batch, width] int64 ids and mask → [batch, vocab] float32 weights."""

    def run(self, batch: Sequence[np.ndarray], run_options: RunHandle | None = None) -> np.ndarray:
        """Token-id arrays → [len(batch), vocab] float32 weights, padding only to this batch's longest input."""
        if not batch:
            return np.zeros((0, self.vocab_size), dtype=np.float32)
        width = max(len(ids) for ids in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        out = self._infer(input_ids, mask, run_options)
        if run_options is not None and run_options.cancelled:
            raise RunCancelled("run cancelled")  # its callers have gone: no rows
        if out.shape[0] != len(batch):
            raise RuntimeError(f"the model returned {out.shape[0]} rows for a batch of {len(batch)}")
        return out

    @abc.abstractmethod
    def concurrent_session(self) -> Session:
        """A session on the same weights that may run while this one runs (for a query runner beside busy
        allocations): this one where the backend allows concurrent runs, else a new one."""

    def run_batched(
        self,
        batch: Sequence[np.ndarray],
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    ) -> np.ndarray:
        """Any number of inputs, run in length-sorted budgeted batches; rows in input order."""
        out = np.zeros((len(batch), self.vocab_size), dtype=np.float32)
        for group in plan_batches([len(ids) for ids in batch], token_budget, max_batch_size):
            out[group] = self.run([batch[i] for i in group])
        return out

    def warm_up(
        self, token_budget: int = DEFAULT_TOKEN_BUDGET, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    ) -> None:
        """Run the budget's extreme shapes once (full-length rows, and many short rows), so buffers have grown to
        their working size before the first real call instead of page-faulting during it."""
        longest = self.max_sequence_length
        for length in (longest, max(1, longest // 4), max(1, longest // 16)):
            rows = max(1, min(max_batch_size, token_budget // length))
            self.run([np.full(length, 100, dtype=np.int64)] * rows)


class LoadedRuntime(abc.ABC):
    """One model loaded by one backend in one layout; its weights are held once for every session."""

    layout: Layout

    @abc.abstractmethod
    def new_session(self, num_threads: int) -> Session:
        """A session of `num_threads` threads (thread-safe; sessions may run concurrently)."""


def load_runtime(
    model_path: str | Path,
    layout: Layout,
    *,
    max_sequence_length: int,
    processors: int,
    share_weights: bool,
    quantized: bool = False,
) -> LoadedRuntime:
    """Load the ONNX model at `model_path` for `layout` (`quantized`: the file is int8 already). `processors`
    bounds how many sessions run at once (the OpenVINO streams of one compiled model). `share_weights` (large
    models) keeps one copy of the weights for every session: onnxruntime sessions share it (it turns off weight
    pre-packing), and OpenVINO's query sessions use the allocations' compiled model instead of their own."""
    if layout.backend == "openvino":
        from elser_server.runtime.backends.openvino import OpenVinoRuntime

        return OpenVinoRuntime(
            model_path,
            layout,
            max_sequence_length=max_sequence_length,
            processors=processors,
            quantized=quantized,
            own_query_model=not share_weights,
        )
    from elser_server.runtime.backends.onnxruntime import OnnxRuntime

    return OnnxRuntime(
        model_path,
        layout,
        max_sequence_length=max_sequence_length,
        share_weights=share_weights,
        quantized=quantized,
    )
