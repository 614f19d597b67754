"""Torch-free converter: Hugging Face BertForMaskedLM SPLADE checkpoint → model package.

The ONNX graph is built directly from the numpy weights with standard ops (opset 17). It ends in SPLADE pooling,
computed the cheap way (the largest single speed-up measured: the vocabulary-sized work shrinks from
[batch·seq, vocab] to [batch, vocab]): padded hidden rows are replaced by row 0 ([CLS], always
real) so they cannot change the maximum, the vocabulary projection is its own MatMul (so int8 quantization reaches
it), ReduceMax runs over positions, and bias/relu/log1p only touch [batch, vocab]. log1p, relu and a
position-independent bias are monotonic, so this equals max over positions of log1p(relu(logits))."""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from elser_server.model.checkpoint import Checkpoint, load_checkpoint
from elser_server.model.package import (
    FORMAT_VERSION,
    METADATA_FILE,
    MODEL_FILE,
    REQUIRED_FILES,
    TOKENIZER_FILE,
    ModelPackage,
    file_entries,
    write_json,
)
from elser_server.model.samples import ACCURACY_SAMPLE
from elser_server.runtime.backends import VOCAB_WEIGHT_PREFIX
from elser_server.runtime.backends.onnxruntime import SpladeSession, quantize_int8
from elser_server.runtime.tokenizer import Tokenizer

CONVERTER_VERSION = "2"
OPSET = 17
MAX_SEQUENCE_LENGTH = 512
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "sparse_weights"
VOCAB_SLICE = 8192
QUANTIZATIONS = ("none", "int8")


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], n_out: int = 1, **attrs: Any) -> list[str]:
        self._n += 1
        outputs = [f"{op_type.lower()}_{self._n}_{i}" for i in range(n_out)]
        self.nodes.append(
            helper.make_node(op_type, list(inputs), outputs, name=f"{op_type}_{self._n}", **attrs)
        )
        return outputs

    def one(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        return self.op(op_type, inputs, **attrs)[0]


def _f32(x: float) -> np.ndarray:
    return np.array(x, dtype=np.float32)


def build_graph(ckpt: Checkpoint, vocab_slice: int = VOCAB_SLICE) -> onnx.ModelProto:
    c = ckpt.config
    w = ckpt.get
    g = _Graph()
    h, heads = c.hidden_size, c.num_heads
    head_dim = h // heads
    eps = c.layer_norm_eps

    one = g.const("one", _f32(1.0))
    half = g.const("half", _f32(0.5))
    sqrt2 = g.const("sqrt2", _f32(math.sqrt(2.0)))

    def dense(x: str, prefix: str, name: str) -> str:
        # HF stores Linear weights as [out, in]; MatMul wants [in, out].
        weight = g.const(f"{name}.weight", np.ascontiguousarray(w(f"{prefix}.weight").T))
        return g.one("Add", g.one("MatMul", x, weight), g.const(f"{name}.bias", w(f"{prefix}.bias")))

    def layer_norm(x: str, prefix: str, name: str) -> str:
        scale = g.const(f"{name}.gamma", w(f"{prefix}.LayerNorm.weight"))
        bias = g.const(f"{name}.beta", w(f"{prefix}.LayerNorm.bias"))
        return g.one("LayerNormalization", x, scale, bias, axis=-1, epsilon=eps)

    def gelu(x: str) -> str:
        # Exact (erf) GELU as in HF "gelu"; onnxruntime fuses this pattern into one kernel.
        erf = g.one("Erf", g.one("Div", x, sqrt2))
        return g.one("Mul", g.one("Mul", x, half), g.one("Add", erf, one))

    # Embeddings. ES sends token_type_ids = 0, so type row 0 is folded into the position table.
    word = g.one("Gather", g.const("word_embeddings", w("embeddings.word_embeddings.weight")), "input_ids")
    pos_table = w("embeddings.position_embeddings.weight") + w("embeddings.token_type_embeddings.weight")[0]
    seq_len = g.one("Gather", g.one("Shape", "input_ids"), g.const("idx1", np.array(1, dtype=np.int64)))
    positions = g.one(
        "Range",
        g.const("zero_i64", np.array(0, dtype=np.int64)),
        seq_len,
        g.const("one_i64", np.array(1, np.int64)),
    )
    pos = g.one("Gather", g.const("position_embeddings", pos_table.astype(np.float32)), positions)
    x = layer_norm(g.one("Add", word, pos), "embeddings", "embeddings")

    mask = g.one("Cast", "attention_mask", to=TensorProto.BOOL)
    key_mask = g.one("Unsqueeze", mask, g.const("axes_1_2", np.array([1, 2], dtype=np.int64)))
    attn_bias = g.one("Where", key_mask, g.const("zero_f", _f32(0.0)), g.const("neg_big", _f32(-1e9)))
    heads_shape = g.const("heads_shape", np.array([0, 0, heads, head_dim], dtype=np.int64))
    merged_shape = g.const("merged_shape", np.array([0, 0, h], dtype=np.int64))
    qkv_split = g.const("qkv_split", np.array([h, h, h], dtype=np.int64))
    scale = 1.0 / math.sqrt(head_dim)

    for n in range(c.num_layers):
        p = f"encoder.layer.{n}"
        # One fused QKV projection; the 1/sqrt(head_dim) score scale is folded into the query weights.
        wqkv = np.concatenate(
            [
                w(f"{p}.attention.self.query.weight") * scale,
                w(f"{p}.attention.self.key.weight"),
                w(f"{p}.attention.self.value.weight"),
            ],
            axis=0,
        ).T
        bqkv = np.concatenate(
            [
                w(f"{p}.attention.self.query.bias") * scale,
                w(f"{p}.attention.self.key.bias"),
                w(f"{p}.attention.self.value.bias"),
            ]
        )
        qkv = g.one(
            "Add",
            g.one("MatMul", x, g.const(f"layer{n}.qkv.weight", np.ascontiguousarray(wqkv, dtype=np.float32))),
            g.const(f"layer{n}.qkv.bias", bqkv.astype(np.float32)),
        )
        q, k, v = (g.one("Reshape", t, heads_shape) for t in g.op("Split", [qkv, qkv_split], n_out=3, axis=2))
        q = g.one("Transpose", q, perm=[0, 2, 1, 3])
        k = g.one("Transpose", k, perm=[0, 2, 3, 1])
        v = g.one("Transpose", v, perm=[0, 2, 1, 3])
        probs = g.one("Softmax", g.one("Add", g.one("MatMul", q, k), attn_bias), axis=-1)
        ctx = g.one("Reshape", g.one("Transpose", g.one("MatMul", probs, v), perm=[0, 2, 1, 3]), merged_shape)
        attn = dense(ctx, f"{p}.attention.output.dense", f"layer{n}.attn_out")
        x = layer_norm(g.one("Add", attn, x), f"{p}.attention.output", f"layer{n}.attn_ln")
        ff = gelu(dense(x, f"{p}.intermediate.dense", f"layer{n}.ffn_in"))
        ff = dense(ff, f"{p}.output.dense", f"layer{n}.ffn_out")
        x = layer_norm(g.one("Add", ff, x), f"{p}.output", f"layer{n}.ffn_ln")

    t = gelu(dense(x, "cls.predictions.transform.dense", "mlm.transform"))
    t = layer_norm(t, "cls.predictions.transform", "mlm.transform_ln")

    # Padding: replace padded rows by row 0 before the projection (a duplicate real row cannot move the max).
    first = g.one(
        "Slice",
        t,
        g.const("s0", np.array([0], np.int64)),
        g.const("s1", np.array([1], np.int64)),
        g.const("ax1", np.array([1], np.int64)),
    )
    row_mask = g.one("Unsqueeze", mask, g.const("axes_2", np.array([2], dtype=np.int64)))
    rows = g.one("Where", row_mask, t, first)
    # The projection runs in vocabulary slices, each reduced at once: the [batch·seq, slice] logits stay
    # cache-sized and a session's peak memory is a fraction of the full [batch·seq, vocab] buffer.
    decoder = w("cls.predictions.decoder.weight").T
    pooled_slices = []
    for start in range(0, c.vocab_size, vocab_slice):
        part = np.ascontiguousarray(decoder[:, start : start + vocab_slice], dtype=np.float32)
        logits = g.one("MatMul", rows, g.const(f"{VOCAB_WEIGHT_PREFIX}.{start}", part))
        pooled_slices.append(g.one("ReduceMax", logits, axes=[1], keepdims=0))
    pooled = pooled_slices[0] if len(pooled_slices) == 1 else g.one("Concat", *pooled_slices, axis=1)
    z = g.one("Relu", g.one("Add", pooled, g.const("vocab_projection.bias", w("cls.predictions.bias"))))
    # log1p without a Log1p op: log(u) * z / (u - 1) with u = 1 + z is exact to rounding even for tiny z, where
    # plain log(1 + z) would round to 0 and drop a non-zero token (Goldberg/Kahan).
    u = g.one("Add", z, one)
    d = g.one("Sub", u, one)
    ratio = g.one("Mul", z, g.one("Div", g.one("Log", u), d))
    small = g.one("Equal", d, g.const("zero_f2", _f32(0.0)))
    g.nodes.append(helper.make_node("Where", [small, z, ratio], [OUTPUT_NAME], name="log1p"))

    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in INPUT_NAMES]
    output = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", c.vocab_size])
    graph = helper.make_graph(g.nodes, "splade_bert_mlm", inputs, [output], initializer=g.initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="elser-model"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def measure_accuracy(reference: Path, candidate: Path, tokenizer_path: Path) -> dict[str, Any]:
    """Compare two packages' vectors on a fixed text sample: mean cosine and mean top-20 token recall."""
    tok = Tokenizer.from_file(tokenizer_path)
    ids = [e.ids for e in tok.encode_batch(ACCURACY_SAMPLE)]
    ref_out = SpladeSession(reference, num_threads=1).run_batched(ids)
    cand_out = SpladeSession(candidate, num_threads=1).run_batched(ids)
    return {"texts": len(ids), **compare_vectors(ref_out, cand_out)}


def compare_vectors(reference: np.ndarray, candidate: np.ndarray, k: int = 20) -> dict[str, float]:
    cosines, recalls = [], []
    for ref, cand in zip(reference, candidate, strict=True):
        denom = float(np.linalg.norm(ref) * np.linalg.norm(cand))
        cosines.append(float(ref @ cand) / denom if denom else float(not ref.any() and not cand.any()))
        top_ref = {i for i in np.argsort(-ref, kind="stable")[:k].tolist() if ref[i] > 0}
        top_cand = set(np.argsort(-cand, kind="stable")[:k].tolist())
        recalls.append(len(top_ref & top_cand) / len(top_ref) if top_ref else 1.0)
    return {"mean_cosine": float(np.mean(cosines)), "mean_top20_recall": float(np.mean(recalls))}


def convert(
    src: str | Path,
    out: str | Path,
    *,
    model_id: str,
    quantize: str = "none",
    int8_scope: str = "vocab",
    description: str | None = None,
    source: dict[str, Any] | None = None,
    license: str = "unknown",
    extra: dict[str, Any] | None = None,
) -> ModelPackage:
    """Convert checkpoint `src` into package directory `out` (written into a temp dir, then renamed)."""
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, not {quantize!r}")
    ckpt = load_checkpoint(src)
    out_dir = Path(out)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        tok = ckpt.tokenizer
        tok.no_padding()
        tok.enable_truncation(max_length=MAX_SEQUENCE_LENGTH)
        tok.save(str(tmp / TOKENIZER_FILE))
        onnx.save(build_graph(ckpt), tmp / MODEL_FILE)
        accuracy = None
        if quantize == "int8":
            fp32_dir = tmp / "fp32"
            fp32_dir.mkdir()
            (tmp / MODEL_FILE).rename(fp32_dir / MODEL_FILE)
            quantize_int8(fp32_dir / MODEL_FILE, tmp / MODEL_FILE, int8_scope)
            accuracy = {"reference": "fp32 conversion of the same checkpoint"}
            accuracy |= measure_accuracy(fp32_dir / MODEL_FILE, tmp / MODEL_FILE, tmp / TOKENIZER_FILE)
            shutil.rmtree(fp32_dir)
        c = ckpt.config
        metadata: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "model_id": model_id,
            "description": description or f"SPLADE sparse encoder converted from {Path(src).name}",
            "source": source or {"checkpoint": str(Path(src).resolve())},
            "license": license,
            "architecture": {
                "type": "BertForMaskedLM+SPLADE-max",
                "num_layers": c.num_layers,
                "hidden_size": c.hidden_size,
                "num_attention_heads": c.num_heads,
                "intermediate_size": c.intermediate_size,
                "max_position_embeddings": c.max_position_embeddings,
                "tied_decoder": ckpt.tied_decoder,
            },
            "max_sequence_length": min(MAX_SEQUENCE_LENGTH, c.max_position_embeddings),
            "vocab_size": c.vocab_size,
            "quantization": f"int8-dynamic-per-channel ({int8_scope})" if quantize == "int8" else "none",
            "inputs": list(INPUT_NAMES),
            "output": OUTPUT_NAME,
            "opset": OPSET,
            "converter_version": CONVERTER_VERSION,
            "files": file_entries(tmp, REQUIRED_FILES),
        }
        if accuracy is not None:
            metadata["accuracy_vs_fp32"] = accuracy
        if extra:
            metadata.update(extra)
        write_json(tmp / METADATA_FILE, metadata)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ModelPackage.load(out_dir)
