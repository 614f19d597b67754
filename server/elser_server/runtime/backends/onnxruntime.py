"""The onnxruntime backend: sessions with abortable runs (the terminate flag), shared weights, and int8 made at
load time by onnxruntime's dynamic quantization of the vocabulary projection."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from elser_server.model.package import ModelPackage
from elser_server.runtime.backends import (
    VOCAB_WEIGHT_PREFIX,
    LoadedRuntime,
    RunCancelled,
    RunHandle,
    Session,
)
from elser_server.runtime.layout import Layout

# Initializers above this size are shared between sessions; small ones are not worth the bookkeeping.
_SHARE_MIN_BYTES = 1 << 16
_WEIGHTS_FILE = "weights.bin"
FP32_LAYOUT = Layout("onnxruntime", "fp32")


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


class SpladeSession(Session):
    """One onnxruntime session (one allocation): intra_op threads = num_threads, inter_op = 1."""

    def __init__(
        self,
        model: ModelPackage | str | Path,
        num_threads: int = 1,
        *,
        shared: SharedWeights | None = None,
        max_sequence_length: int = 512,
        layout: Layout = FP32_LAYOUT,
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
        self.layout = layout
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

    def concurrent_session(self) -> SpladeSession:
        return self  # onnxruntime sessions accept concurrent runs

    def _infer(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, handle: RunHandle | None
    ) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if handle is None:
            return np.asarray(self._session.run([self._output], feeds)[0], dtype=np.float32)
        options = ort.RunOptions()

        def terminate() -> None:
            options.terminate = True

        with handle.attach(terminate):
            try:
                out = self._session.run([self._output], feeds, options)
            except Exception as exc:  # onnxruntime raises its own Fail error when terminated
                if handle.cancelled:
                    raise RunCancelled("run cancelled") from exc
                raise
        return np.asarray(out[0], dtype=np.float32)


INT8_SCOPES = ("vocab", "all")


def quantize_int8(src: Path, dst: Path, scope: str = "vocab") -> None:
    """Dynamic int8 with per-output-channel QInt8 weights. Scope "vocab" quantizes only the vocabulary projection
    (the MLM decoder, 88 % of a tiny model's FLOPs), the scope that meets the accuracy bars (top-20 recall about
    0.99 on the default model); "all" also the encoder MatMuls, which a BERT-base-sized model needs for its
    speed-up but which costs accuracy (recall about 0.97 on the default model)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if scope not in INT8_SCOPES:
        raise ValueError(f"int8 scope must be one of {INT8_SCOPES}, not {scope!r}")
    exclude: list[str] = []
    if scope == "vocab":
        graph = onnx.load(str(src), load_external_data=False).graph
        matmuls = [n for n in graph.node if n.op_type == "MatMul"]
        vocab = {n.name for n in matmuls if any(i.startswith(VOCAB_WEIGHT_PREFIX) for i in n.input)}
        if not vocab:
            raise ValueError(
                f"int8: the model has no vocabulary projection (MatMul on {VOCAB_WEIGHT_PREFIX}*)"
            )
        exclude = [n.name for n in matmuls if n.name not in vocab]
    # quantize_dynamic logs advice about static-quantization pre-processing on the root logger; not relevant here.
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(
            src,
            dst,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=exclude,
            per_channel=True,
            weight_type=QuantType.QInt8,
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        logging.disable(logging.NOTSET)


class OnnxRuntime(LoadedRuntime):
    """A model under onnxruntime: fp32 as the package is, or int8 quantized once at load (an int8 package runs as
    it is); with `share_weights`, every session borrows one copy of the large weights."""

    def __init__(
        self,
        model_path: str | Path,
        layout: Layout,
        *,
        max_sequence_length: int,
        share_weights: bool,
        quantized: bool = False,
    ) -> None:
        if layout.precision == "bf16":
            raise ValueError("onnxruntime has no bf16 CPU kernels")
        self.layout = layout
        self.max_sequence_length = max_sequence_length
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        path = Path(model_path)
        if layout.precision == "int8" and not quantized:
            self._dir = tempfile.TemporaryDirectory(prefix="elser-int8-")
            int8 = Path(self._dir.name) / "model.onnx"
            quantize_int8(path, int8)
            path = int8
        self.model_path = path
        self.weights = SharedWeights(path) if share_weights else None

    def new_session(self, num_threads: int) -> SpladeSession:
        return SpladeSession(
            self.model_path,
            num_threads,
            shared=self.weights,
            max_sequence_length=self.max_sequence_length,
            layout=self.layout,
        )
