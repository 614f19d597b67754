"""onnxruntime sessions for a model package: padding, abortable runs, warm-up and shared weights."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from elser_server.model.package import ModelPackage
from elser_server.runtime.batching import DEFAULT_MAX_BATCH_SIZE, DEFAULT_TOKEN_BUDGET, plan_batches

# Initializers above this size are shared between sessions; small ones are not worth the bookkeeping.
_SHARE_MIN_BYTES = 1 << 16
_WEIGHTS_FILE = "weights.bin"


class RunHandle:
    """Lets another thread abort a running `SpladeSession.run` (it then raises promptly)."""

    def __init__(self) -> None:
        self.options = ort.RunOptions()

    def cancel(self) -> None:
        self.options.terminate = True

    @property
    def cancelled(self) -> bool:
        return bool(self.options.terminate)


class SharedWeights:
    """The large initializers of one model, held once in memory and handed to every session of it, so N
    allocations cost about one copy of the weights instead of N.

    Sessions are built from a copy of the model whose large tensors are external data in a temp directory: every
    one of them is overridden by a shared OrtValue, so no session reads or copies them (and the data file is
    a sparse placeholder: no disk copy of the weights). Weight pre-packing is off
    for these sessions, as it would make private copies again (measured: no speed difference)."""

    def __init__(self, model_path: str | Path) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="elser-weights-")
        self.model_path = Path(self._dir.name) / "model.onnx"
        onnx.save(
            onnx.load(str(model_path)),
            str(self.model_path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=_WEIGHTS_FILE,
            size_threshold=_SHARE_MIN_BYTES,
        )
        self.values: dict[str, ort.OrtValue] = {}
        # Keep the numpy arrays: the OrtValues borrow their memory.
        self._arrays: list[np.ndarray] = []
        for init in onnx.load(str(self.model_path), load_external_data=False).graph.initializer:
            if init.data_location != onnx.TensorProto.EXTERNAL:
                continue
            info = {e.key: e.value for e in init.external_data}
            dtype = helper.tensor_dtype_to_np_dtype(init.data_type)
            array = np.fromfile(
                self.model_path.parent / info["location"],
                dtype=dtype,
                count=int(info["length"]) // dtype.itemsize,
                offset=int(info.get("offset", 0)),
            ).reshape(tuple(init.dims))
            self._arrays.append(array)
            self.values[init.name] = ort.OrtValue.ortvalue_from_numpy(array)
        # Every external tensor comes from `values`, so onnxruntime never reads the weights file: it only checks
        # that it exists and is large enough. A sparse file of the same size holds no disk blocks.
        weights = self.model_path.parent / _WEIGHTS_FILE
        size = weights.stat().st_size
        weights.unlink()
        with weights.open("wb") as placeholder:
            placeholder.truncate(size)


def _model_path(model: ModelPackage | str | Path) -> Path:
    return model.model_path if isinstance(model, ModelPackage) else Path(model)


class SpladeSession:
    """One onnxruntime session (one allocation): intra_op threads = num_threads, inter_op = 1."""

    def __init__(
        self,
        model: ModelPackage | str | Path,
        num_threads: int = 1,
        *,
        shared: SharedWeights | None = None,
        max_sequence_length: int = 512,
    ) -> None:
        if num_threads < 1:
            raise ValueError("num_threads must be ≥ 1")
        path = shared.model_path if shared is not None else _model_path(model)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if shared is not None:
            opts.add_session_config_entry("session.disable_prepacking", "1")
            for name, value in shared.values.items():
                opts.add_initializer(name, value)
        self._shared = shared  # keeps the OrtValues alive as long as the session
        self.num_threads = num_threads
        self.max_sequence_length = (
            model.max_sequence_length if isinstance(model, ModelPackage) else max_sequence_length
        )
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._output = self._session.get_outputs()[0].name
        self.vocab_size = int(self._session.get_outputs()[0].shape[1])

    @property
    def session_options(self) -> ort.SessionOptions:
        """The options onnxruntime runs this session with (threads, execution mode, config entries)."""
        return self._session.get_session_options()

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
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        out = self._session.run([self._output], feeds, run_options.options if run_options else None)
        return np.asarray(out[0], dtype=np.float32)

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
        """Run the budget's extreme shapes once (full-length rows, and many short rows), so the arena has grown to
        its working size before the first real call instead of page-faulting during it."""
        longest = self.max_sequence_length
        for length in (longest, max(1, longest // 4), max(1, longest // 16)):
            rows = max(1, min(max_batch_size, token_budget // length))
            self.run([np.full(length, 100, dtype=np.int64)] * rows)
