"""The OpenVINO backend (optional extra `openvino`): the package's ONNX file compiled once per thread count, with
one stream per concurrent session and one infer request per session, so every allocation shares the compiled
weights. Precision is OpenVINO's inference precision (fp32, bf16) or, for int8, int8 weights of the vocabulary
projection made at load time (the rest in bf16 where the CPU has it natively, else fp32)."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from elser_server.runtime.backends import (
    VOCAB_WEIGHT_PREFIX,
    LoadedRuntime,
    RunHandle,
    Session,
)
from elser_server.runtime.layout import CpuFeatures, Layout

# `import openvino` sends a usage event to Google Analytics, from a forked process, unless the user opted out
# (package openvino_telemetry). A server must neither fork (gRPC's threads are running) nor call out: with that
# package unimportable, OpenVINO uses its own no-op telemetry stub.
sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
import openvino as ov  # noqa: E402
from openvino import opset13  # noqa: E402

# Every infer call converts its inputs through Type.to_dtype(), whose first call fills a static table inside the
# bindings while releasing the GIL: two threads making that first call at once deadlock for good (one holds the
# GIL and waits for the table, the other holds the table and waits for the GIL; a replica hung so). The first
# call is made here, while one thread imports this module.
ov.Type.i64.to_dtype()

_DEVICE = "CPU"
RUNTIME_CACHE_CAPACITY = 100
_INT8_MAX = 127.0


class OpenVinoSession(Session):
    """One infer request of a compiled model (one allocation)."""

    def __init__(self, runtime: OpenVinoRuntime, compiled: ov.CompiledModel, num_threads: int) -> None:
        self._runtime = runtime
        self._request = compiled.create_infer_request()
        self.layout = runtime.layout
        self.num_threads = num_threads
        self.max_sequence_length = runtime.max_sequence_length
        self.vocab_size = int(compiled.output(0).get_partial_shape()[1].get_length())

    def concurrent_session(self) -> OpenVinoSession:
        return self._runtime.query_session(self.num_threads)

    def _infer(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, handle: RunHandle | None
    ) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        # Shared: the request reads the arrays in place (they live until this returns) and `infer` returns no
        # copy of the outputs, which are read below (measured: 0.07 ms of a 1 ms single query).
        if handle is None:
            self._request.infer(feeds, share_inputs=True, share_outputs=True)
        else:
            # No abort once running: OpenVINO 2026's cancel leaves the compiled model's shape state half-updated
            # (measured: a tenth of the runs after random cancels failed shape inference or returned the previous
            # run's output), so a batch whose callers left runs to its end and its rows are dropped. A handle
            # cancelled before the run still keeps it from starting.
            with handle.attach(_finish_running):
                self._request.infer(feeds, share_inputs=True, share_outputs=True)
        # The output tensor is the request's own buffer, overwritten by its next run.
        return np.array(self._request.get_output_tensor(0).data, dtype=np.float32, copy=True)


def _finish_running() -> None:
    """OpenVINO's abort: none (see `OpenVinoSession._infer`)."""


class OpenVinoRuntime(LoadedRuntime):
    """A model under OpenVINO. Compiled models are made per thread count (the first session of that count) with
    `processors // num_threads` streams: that many sessions run at once on one copy of the weights.

    The ONNX file is converted once into OpenVINO's own format in a temp directory and compiled from there:
    OpenVINO maps that file, so weights it uses as they are stay file-backed pages instead of a private copy
    (measured on BERT-base fp32: 339 MB of anonymous memory after compiling instead of 845 MB)."""

    def __init__(
        self,
        model_path: str | Path,
        layout: Layout,
        *,
        max_sequence_length: int,
        processors: int,
        quantized: bool = False,
        cpu: CpuFeatures | None = None,
        own_query_model: bool = True,
    ) -> None:
        self._core = ov.Core()
        self._own_query_model = own_query_model
        self._processors = max(1, processors)
        self.max_sequence_length = max_sequence_length
        cpu = cpu if cpu is not None else CpuFeatures.detect()
        compress = layout.precision == "int8" and not quantized
        capabilities = self._core.get_property(_DEVICE, "OPTIMIZATION_CAPABILITIES")
        if layout.precision == "bf16" and "BF16" not in capabilities:
            layout = dataclasses.replace(
                layout, precision="fp32", reason=f"{layout.reason}; this CPU cannot run bf16, so fp32"
            )
        self._hint = "bf16" if layout.precision == "bf16" else "f32"
        if compress:
            # The encoder stays in bf16 only where that is native: emulated bf16 is slower than fp32.
            rest = "bf16" if cpu.bf16_native and "BF16" in capabilities else "f32"
            self._hint = rest
            what = "int8 vocabulary-projection weights, the rest in " + ("bf16" if rest == "bf16" else "fp32")
            layout = dataclasses.replace(layout, reason=f"{layout.reason} ({what})")
        self.layout = layout
        self._dir = tempfile.TemporaryDirectory(prefix="elser-openvino-")
        self._ir = Path(self._dir.name) / "model.xml"
        model = self._core.read_model(str(model_path))
        if compress:
            compress_vocab_weights(model)
        ov.save_model(model, self._ir, compress_to_fp16=False)
        self._compiled: dict[tuple[int, bool], ov.CompiledModel] = {}
        self._lock = threading.Lock()

    def _compiled_for(self, num_threads: int, *, queries: bool = False) -> ov.CompiledModel:
        """The compiled model for sessions of `num_threads`: one with as many streams as such sessions fit in the
        processors (OpenVINO caps streams at the cores), or with `queries`, one more with a single stream for
        query runners, so that a query runs beside busy allocations instead of waiting for their stream."""
        with self._lock:
            key = (num_threads, queries)
            compiled = self._compiled.get(key)
            if compiled is None:
                streams = 1 if queries else max(1, self._processors // num_threads)
                config: dict[str, Any] = {
                    "INFERENCE_PRECISION_HINT": self._hint,
                    "NUM_STREAMS": streams,
                    "INFERENCE_NUM_THREADS": streams * num_threads,
                    # Deployments share the cores with each other and the event loop: no pinning.
                    "ENABLE_CPU_PINNING": False,
                    # Kernels are cached per input shape, and batches come in many shapes: OpenVINO's default of 5,000
                    # entries grew the default model to 1.6 GB over 1,500 random batch shapes; 100 kept it at 0.5 GB
                    # at the same speed (0 doubled a single query's latency).
                    "CPU_RUNTIME_CACHE_CAPACITY": RUNTIME_CACHE_CAPACITY,
                }
                compiled = self._core.compile_model(self._ir, _DEVICE, config)
                self._compiled[key] = compiled
            return compiled

    @property
    def compiled_thread_counts(self) -> tuple[int, ...]:
        """The thread counts compiled for allocations so far: one compiled model (one copy of the weights) each."""
        with self._lock:
            return tuple(sorted(threads for threads, queries in self._compiled if not queries))

    @property
    def compiled_models(self) -> int:
        """Compiled models held, query runners' included: one copy of the weights each."""
        with self._lock:
            return len(self._compiled)

    def compiled_precision(self, num_threads: int) -> str:
        """The inference precision OpenVINO compiled for (`f32`, `bf16`): what really runs."""
        return str(self._compiled_for(num_threads).get_property("INFERENCE_PRECISION_HINT").get_type_name())

    def new_session(self, num_threads: int) -> OpenVinoSession:
        if num_threads < 1:
            raise ValueError("num_threads must be ≥ 1")
        return OpenVinoSession(self, self._compiled_for(num_threads), num_threads)

    def query_session(self, num_threads: int) -> OpenVinoSession:
        """A session for a query runner: on a compiled model of its own (another copy of the weights), so it runs
        while every stream of the allocations' compiled model is busy; for a large model (`own_query_model`
        False), on the allocations' compiled model, where it waits for a free stream."""
        compiled = self._compiled_for(num_threads, queries=self._own_query_model)
        return OpenVinoSession(self, compiled, num_threads)


def compress_vocab_weights(model: ov.Model) -> int:
    """Replace the vocabulary projection's fp32 weights by symmetric per-output-channel int8 weights and a scale
    (Constant i8 → Convert → Multiply), the pattern OpenVINO's CPU plugin runs as an int8-weight FullyConnected.
    Returns how many MatMuls were compressed; raises ValueError if the model has no vocabulary projection."""
    done = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        weight = op.input(1).get_source_output().get_node()
        if weight.get_type_name() != "Constant" or not weight.get_friendly_name().startswith(
            VOCAB_WEIGHT_PREFIX
        ):
            continue
        if op.get_transpose_b():
            raise ValueError("int8: a transposed vocabulary projection is not supported")
        w = np.asarray(weight.get_data(), dtype=np.float32)
        scale = np.abs(w).max(axis=0, keepdims=True) / _INT8_MAX
        scale[scale == 0] = 1.0
        q = np.clip(np.rint(w / scale), -_INT8_MAX, _INT8_MAX).astype(np.int8)
        dequantized = opset13.multiply(
            opset13.convert(opset13.constant(q), ov.Type.f32), opset13.constant(scale)
        )
        op.input(1).replace_source_output(dequantized.output(0))
        done += 1
    if not done:
        raise ValueError(f"int8: the model has no vocabulary projection (MatMul on {VOCAB_WEIGHT_PREFIX}*)")
    model.validate_nodes_and_infer_types()
    return done
