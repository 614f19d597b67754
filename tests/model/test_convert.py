"""Converter round trip: the ONNX graph against a plain numpy BERT-MLM forward pass with SPLADE pooling."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from elser_server.model.checkpoint import CheckpointError, load_checkpoint
from elser_server.model.convert import convert
from elser_server.model.package import ModelPackage
from elser_server.runtime.backends.onnxruntime import SpladeSession
from elser_server.runtime.tokenizer import Tokenizer
from safetensors.numpy import load_file
from support import make_tiny_checkpoint

TEXTS = [
    "the dog and the cat",
    "",
    "search engine sparse vector data model query text token learn fast " * 6,
    "a",
    "Water, city; music!",
]

_erf = np.vectorize(math.erf)


def _weights(ckpt_dir: Path) -> dict[str, np.ndarray]:
    """Raw safetensors names → one spelling, independently of the converter's own mapping."""
    out = {}
    for name, value in load_file(ckpt_dir / "model.safetensors").items():
        name = name[len("bert.") :] if name.startswith("bert.") else name
        out[
            name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        ] = value
    return out


def reference_splade(ckpt_dir: Path, ids: np.ndarray, heads: int, eps: float = 1e-12) -> np.ndarray:
    """BertForMaskedLM forward pass for one unpadded input + max over positions of log1p(relu(logits)), float64."""
    w = {k: v.astype(np.float64) for k, v in _weights(ckpt_dir).items()}

    def ln(x: np.ndarray, p: str) -> np.ndarray:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[f"{p}.LayerNorm.weight"] + w[f"{p}.LayerNorm.bias"]

    def lin(x: np.ndarray, p: str) -> np.ndarray:
        return x @ w[f"{p}.weight"].T + w[f"{p}.bias"]

    def gelu(x: np.ndarray) -> np.ndarray:
        return 0.5 * x * (1 + _erf(x / math.sqrt(2)))

    s = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:s]
    x = ln(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings")
    layer = 0
    while f"encoder.layer.{layer}.attention.self.query.weight" in w:
        p = f"encoder.layer.{layer}"
        hd = x.shape[1] // heads
        q, k, v = (
            lin(x, f"{p}.attention.self.{n}").reshape(s, heads, hd).transpose(1, 0, 2)
            for n in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(s, -1)
        x = ln(lin(ctx, f"{p}.attention.output.dense") + x, f"{p}.attention.output")
        x = ln(lin(gelu(lin(x, f"{p}.intermediate.dense")), f"{p}.output.dense") + x, f"{p}.output")
        layer += 1
    t = ln(gelu(lin(x, "cls.predictions.transform.dense")), "cls.predictions.transform")
    decoder = w.get("cls.predictions.decoder.weight", w["embeddings.word_embeddings.weight"])
    logits = t @ decoder.T + w["cls.predictions.bias"]
    result: np.ndarray = np.log1p(np.maximum(logits, 0)).max(0)
    return result


VARIANTS = {
    "weight/bias, bert., tied": {"legacy_layernorm_names": False, "bert_prefix": True, "tied_decoder": True},
    "gamma/beta, bert., tied": {"legacy_layernorm_names": True, "bert_prefix": True, "tied_decoder": True},
    "weight/bias, no prefix, untied": {
        "legacy_layernorm_names": False,
        "bert_prefix": False,
        "tied_decoder": False,
    },
    "gamma/beta, no prefix, untied": {
        "legacy_layernorm_names": True,
        "bert_prefix": False,
        "tied_decoder": False,
    },
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_graph_matches_numpy_reference_with_padding(variant: str, tmp_path: Path) -> None:
    ckpt = make_tiny_checkpoint(tmp_path / "ckpt", seed=len(variant), **VARIANTS[variant])
    package = convert(ckpt, tmp_path / "pkg", model_id="test")
    assert package.metadata["architecture"]["tied_decoder"] == VARIANTS[variant]["tied_decoder"]
    tok = Tokenizer.from_file(package.tokenizer_path)
    ids = [e.ids for e in tok.encode_batch(TEXTS)]
    assert len({len(i) for i in ids}) > 2, "the batch must mix lengths so padding is exercised"
    got = SpladeSession(package, num_threads=1).run(ids)  # one padded batch
    want = np.stack([reference_splade(ckpt, i, heads=2) for i in ids])
    assert got.shape == (len(TEXTS), package.vocab_size)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=0)
    assert (got > 0).sum() > len(TEXTS) * 5, "the random model should produce non-trivial vectors"
    # Padding must not leak in: each row equals that input run alone.
    alone = np.stack([SpladeSession(package).run([i])[0] for i in ids])
    np.testing.assert_allclose(got, alone, atol=1e-5, rtol=0)


def test_graph_shape_and_opset(tiny_package: ModelPackage) -> None:
    model = onnx.load(str(tiny_package.model_path))
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    dims = [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["batch", tiny_package.vocab_size]
    assert model.opset_import[0].version >= 17
    assert all(not n.domain for n in model.graph.node), "standard ops only"


def test_int8_conversion_records_accuracy(tiny_checkpoint: Path, tmp_path: Path) -> None:
    package = convert(tiny_checkpoint, tmp_path / "int8", model_id="test_int8", quantize="int8")
    acc = package.metadata["accuracy_vs_fp32"]
    assert package.metadata["quantization"].startswith("int8")
    assert 0.9 < acc["mean_cosine"] <= 1.0 + 1e-6
    assert 0.0 <= acc["mean_top20_recall"] <= 1.0
    model = onnx.load(str(package.model_path))
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in model.graph.node)


def test_vocab_txt_checkpoint(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = tmp_path / "vocab-ckpt"
    src.mkdir()
    for name in ("config.json", "model.safetensors"):
        (src / name).write_bytes((tiny_checkpoint / name).read_bytes())
    vocab = Tokenizer.from_file(tiny_checkpoint / "tokenizer.json")
    (src / "vocab.txt").write_text(
        "\n".join(vocab.id_to_tokens(range(vocab.vocab_size))) + "\n", encoding="utf-8"
    )
    ckpt = load_checkpoint(src)
    assert (
        ckpt.tokenizer.encode("the dog").ids
        == load_checkpoint(tiny_checkpoint).tokenizer.encode("the dog").ids
    )


def test_missing_weight_is_a_clear_error(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    src = tmp_path / "broken"
    src.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (src / name).write_bytes((tiny_checkpoint / name).read_bytes())
    tensors = load_file(tiny_checkpoint / "model.safetensors")
    del tensors["bert.encoder.layer.1.output.dense.weight"]
    save_file(tensors, str(src / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"encoder\.layer\.1\.output\.dense\.weight"):
        convert(src, tmp_path / "out", model_id="x")
    assert not (tmp_path / "out").exists()
