"""Elastic's TorchScript ELSER packages (`.pt` + `.vocab.json` + `.metadata.json`) → our ONNX package.

The traced module's parameters are read with `torch.jit.load` (the only use of torch; an optional extra, imported
only here and only when converting), renamed to Hugging Face BertForMaskedLM names and written as a checkpoint
directory that the torch-free converter (`convert.py`) turns into a package. The tokenizer is rebuilt from the
vocabulary and the metadata's tokenization settings. Finally the TorchScript model itself is run on sample texts
with the inputs ES feeds it and must agree with the ONNX package: that catches anything the weights alone cannot
tell (the number of attention heads, a different pooling)."""

from __future__ import annotations

import json
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, processors

from elser_server.model.checkpoint import BertConfig, CheckpointError, canonical_name, wordpiece_tokenizer
from elser_server.model.convert import convert
from elser_server.model.package import METADATA_FILE, ModelPackage, sha256_file, write_json
from elser_server.model.samples import ACCURACY_SAMPLE

TORCH_MISSING = (
    "converting Elastic's TorchScript model needs PyTorch, an optional extra that is not installed: "
    "pip install 'elser-inference[torchscript]' (from a checkout: pip install '.[torchscript]', the CPU build "
    "torch==2.13.0). Or convert on another machine with `elser-model convert-torchscript MODEL.pt VOCAB.json "
    "METADATA.json OUT` and publish the ONNX package into the model repository with `elser-model publish`."
)
# Segments a HF BertForMaskedLM state dict starts with once wrapper prefixes (eland's `_model.`, `bert.`) are gone.
_ROOTS = ("embeddings", "encoder", "cls", "pooler")
_LAYER = re.compile(r"encoder\.layer\.(\d+)\.")
# Per-layer tensors of a BERT encoder layer, without the `encoder.layer.N.` prefix.
_LAYER_TENSORS = tuple(
    f"{module}.{kind}"
    for module in (
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "attention.output.LayerNorm",
        "intermediate.dense",
        "output.dense",
        "output.LayerNorm",
    )
    for kind in ("weight", "bias")
)
_HEAD_TENSORS = (
    "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight",
    "embeddings.LayerNorm.weight",
    "embeddings.LayerNorm.bias",
    "cls.predictions.transform.dense.weight",
    "cls.predictions.transform.dense.bias",
    "cls.predictions.transform.LayerNorm.weight",
    "cls.predictions.transform.LayerNorm.bias",
)
# The TorchScript model and our ONNX graph compute the same fp32 function in a different order.
CHECK_TOLERANCE = 1e-3
_CHECK_TEXTS = 8


class TorchMissingError(CheckpointError):
    """PyTorch (the `torchscript` extra) is not installed."""


@dataclass(frozen=True)
class BertTokenization:
    """The `bert` tokenization settings of an ES model's inference_config (ES's defaults where absent)."""

    do_lower_case: bool = False
    max_sequence_length: int = 512
    truncate: str = "first"
    with_special_tokens: bool = True

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> BertTokenization:
        config = metadata.get("inference_config")
        if not isinstance(config, dict) or len(config) != 1:
            raise CheckpointError(
                "metadata has no inference_config with exactly one task (e.g. text_expansion)"
            )
        task = next(iter(config.values()))
        tokenization = task.get("tokenization") if isinstance(task, dict) else None
        if not isinstance(tokenization, dict) or not isinstance(tokenization.get("bert"), dict):
            raise CheckpointError(
                "only BERT tokenization is supported (inference_config.*.tokenization.bert is missing)"
            )
        bert = tokenization["bert"]
        settings = cls(
            do_lower_case=bool(bert.get("do_lower_case", cls.do_lower_case)),
            max_sequence_length=int(bert.get("max_sequence_length", cls.max_sequence_length)),
            truncate=str(bert.get("truncate", cls.truncate)),
            with_special_tokens=bool(bert.get("with_special_tokens", cls.with_special_tokens)),
        )
        # A single text has one sequence, so first/second both cut its end; ES's "none" (reject long input)
        # would change the inference API's behaviour, which always truncates.
        if settings.truncate not in ("first", "second"):
            raise CheckpointError(
                f"tokenization truncate {settings.truncate!r} is not supported (first, second)"
            )
        if settings.max_sequence_length < 2:
            raise CheckpointError(f"max_sequence_length {settings.max_sequence_length} is too small")
        return settings

    def tokenizer(self, vocabulary: list[str]) -> Tokenizer:
        tok = wordpiece_tokenizer(vocabulary, lowercase=self.do_lower_case)
        if not self.with_special_tokens:
            tok.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B:1", special_tokens=[])
        tok.enable_truncation(max_length=self.max_sequence_length)
        return tok


def read_vocabulary(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a JSON vocabulary file: {e}") from e
    vocab = data.get("vocabulary") if isinstance(data, dict) else None
    if not isinstance(vocab, list) or not vocab or not all(isinstance(t, str) for t in vocab):
        raise CheckpointError(f'{path}: expected {{"vocabulary": ["token", ...]}}')
    if data.get("merges"):
        raise CheckpointError(f"{path}: BPE vocabularies (merges) are not supported; ELSER uses WordPiece")
    return vocab


def bert_name(name: str) -> str | None:
    """The HF BertForMaskedLM name of a traced module's tensor: wrapper prefixes stripped (eland's `_model.`,
    `bert.`, any `module.`), LayerNorm gamma/beta renamed. None for tensors that are not part of BERT."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part in _ROOTS and (part != "cls" or parts[i + 1 : i + 2] == ["predictions"]):
            return canonical_name(".".join(parts[i:]))
    return None


def bert_weights(state: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
    """Map a state dict onto BertForMaskedLM names; returns (weights, tied decoder). Fails listing every
    missing tensor."""
    weights: dict[str, np.ndarray] = {}
    for name, value in state.items():
        mapped = bert_name(name)
        # Buffers (position_ids, token_type_ids) and the unused pooler are not weights the graph needs.
        if mapped is None or mapped.startswith("pooler.") or not np.issubdtype(value.dtype, np.floating):
            continue
        weights.setdefault(mapped, value.astype(np.float32))
    if "cls.predictions.bias" not in weights and "cls.predictions.decoder.bias" in weights:
        weights["cls.predictions.bias"] = weights["cls.predictions.decoder.bias"]
    weights.pop("cls.predictions.decoder.bias", None)
    layers = sorted({int(m.group(1)) for n in weights if (m := _LAYER.match(n))})
    required = [*_HEAD_TENSORS, "cls.predictions.bias"]
    required += [f"encoder.layer.{n}.{t}" for n in range(max(layers, default=0) + 1) for t in _LAYER_TENSORS]
    missing = [n for n in required if n not in weights]
    if not layers:
        missing.append("encoder.layer.0.*")
    if missing:
        raise CheckpointError(
            "the TorchScript model is not a BERT masked-LM (or uses unknown names); missing tensors: "
            + ", ".join(missing)
            + f". Found: {', '.join(sorted(state)[:20])}{' …' if len(state) > 20 else ''}"
        )
    decoder = weights.get("cls.predictions.decoder.weight")
    tied = decoder is None or np.array_equal(decoder, weights["embeddings.word_embeddings.weight"])
    if tied:
        weights.pop("cls.predictions.decoder.weight", None)  # the converter reuses the word embeddings
    return weights, tied


def infer_config(weights: dict[str, np.ndarray], num_heads: int | None, layer_norm_eps: float) -> BertConfig:
    vocab_size, hidden = weights["embeddings.word_embeddings.weight"].shape
    layers = 1 + max(int(m.group(1)) for n in weights if (m := _LAYER.match(n)))
    # Head count is not visible in the weights; BERT models use 64-wide heads, and the TorchScript check catches
    # any other choice.
    heads = num_heads or max(1, hidden // 64)
    return BertConfig(
        vocab_size=int(vocab_size),
        hidden_size=int(hidden),
        num_layers=layers,
        num_heads=heads,
        intermediate_size=int(weights["encoder.layer.0.intermediate.dense.weight"].shape[0]),
        max_position_embeddings=int(weights["embeddings.position_embeddings.weight"].shape[0]),
        type_vocab_size=int(weights["embeddings.token_type_embeddings.weight"].shape[0]),
        layer_norm_eps=layer_norm_eps,
    )


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise TorchMissingError(TORCH_MISSING) from e
    return torch


def load_torchscript(pt_path: Path) -> tuple[Any, dict[str, np.ndarray]]:
    torch = _import_torch()
    try:
        # TorchScript is deprecated in torch, but it is the format Elastic publishes.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(pt_path), map_location="cpu")
    except RuntimeError as e:
        raise CheckpointError(f"{pt_path}: not a loadable TorchScript model: {e}") from e
    module.eval()
    state = {name: t.detach().cpu().numpy() for name, t in module.state_dict().items()}
    return module, state


def es_inputs(ids: list[list[int]]) -> tuple[np.ndarray, ...]:
    """What ES's pytorch_inference passes a BERT text_expansion model, in order: input_ids, attention_mask,
    token_type_ids (all 0: one sequence) and position_ids (0..n-1), padded with [PAD] id 0."""
    width = max(len(x) for x in ids)
    input_ids = np.zeros((len(ids), width), dtype=np.int64)
    mask = np.zeros_like(input_ids)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    positions = np.broadcast_to(np.arange(width, dtype=np.int64), input_ids.shape).copy()
    return input_ids, mask, np.zeros_like(input_ids), positions


def check_against_torchscript(module: Any, package: ModelPackage) -> float:
    """Max |Δw| between the TorchScript model and the package on sample texts (raises above CHECK_TOLERANCE)."""
    from elser_server.runtime.backends.onnxruntime import SpladeSession
    from elser_server.runtime.tokenizer import Tokenizer as RuntimeTokenizer

    torch = _import_torch()
    tok = RuntimeTokenizer.from_file(package.tokenizer_path, max_length=package.max_sequence_length)
    ids = [list(e.ids) for e in tok.encode_batch(list(ACCURACY_SAMPLE[:_CHECK_TEXTS]))]
    with torch.inference_mode():
        out = module(*(torch.from_numpy(x) for x in es_inputs(ids)))
    expected = np.asarray(out[0] if isinstance(out, tuple | list) else out, dtype=np.float32)
    if expected.shape != (len(ids), package.vocab_size):
        raise CheckpointError(
            f"the TorchScript model returned shape {expected.shape}, expected [batch, vocab] = "
            f"{[len(ids), package.vocab_size]}: it is not a text_expansion (SPLADE) model"
        )
    got = SpladeSession(package, num_threads=1).run_batched([np.asarray(x, dtype=np.int64) for x in ids])
    diff = float(np.max(np.abs(got - expected)))
    if diff > CHECK_TOLERANCE:
        raise CheckpointError(
            f"the converted model differs from the TorchScript model by up to {diff:.3g} (tolerance "
            f"{CHECK_TOLERANCE}); if it has {package.metadata['architecture']['num_attention_heads']} attention "
            "heads is wrong, pass --num-heads"
        )
    return diff


def convert_torchscript(
    pt_path: str | Path,
    vocab_path: str | Path,
    metadata_path: str | Path,
    out: str | Path,
    *,
    model_id: str | None = None,
    quantize: str = "none",
    int8_scope: str = "vocab",
    num_heads: int | None = None,
    layer_norm_eps: float = 1e-12,
) -> ModelPackage:
    """Convert an ES model package's three files into our package directory `out`."""
    pt, out_dir = Path(pt_path), Path(out)
    es_meta = json.loads(Path(metadata_path).read_text(encoding="utf-8"))
    if not isinstance(es_meta, dict):
        raise CheckpointError(f"{metadata_path}: metadata must be a JSON object")
    settings = BertTokenization.from_metadata(es_meta)
    pt_sha256, pt_size = sha256_file(pt)
    if "sha256" in es_meta and es_meta["sha256"] != pt_sha256:
        raise CheckpointError(
            f"{pt}: checksum mismatch (sha256 {pt_sha256}, the metadata says {es_meta['sha256']})"
        )
    vocabulary = read_vocabulary(Path(vocab_path))
    module, state = load_torchscript(pt)
    weights, tied = bert_weights(state)
    config = infer_config(weights, num_heads, layer_norm_eps)
    if len(vocabulary) != config.vocab_size:
        raise CheckpointError(
            f"the vocabulary has {len(vocabulary)} tokens, the model's embeddings {config.vocab_size}"
        )
    if settings.max_sequence_length > config.max_position_embeddings:
        raise CheckpointError(
            f"max_sequence_length {settings.max_sequence_length} exceeds the model's "
            f"{config.max_position_embeddings} positions"
        )
    packaged_id = str(es_meta.get("packaged_model_id", pt.stem))
    source = {
        "format": "elasticsearch-torchscript",
        "packaged_model_id": packaged_id,
        "sha256": pt_sha256,
        "size": pt_size,
        "es_description": es_meta.get("description"),
        "tokenization": {"bert": vars(settings)},
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.ckpt.") as tmp_name:
        ckpt = Path(tmp_name)
        hf = config.to_hf_dict()
        hf["tie_word_embeddings"] = tied
        (ckpt / "config.json").write_text(json.dumps(hf, indent=2) + "\n", encoding="utf-8")
        save_file(weights, str(ckpt / "model.safetensors"))
        settings.tokenizer(vocabulary).save(str(ckpt / "tokenizer.json"))
        del state, weights  # the converter loads its own copy; BERT-base weights are ~0.5 GB each
        common: dict[str, Any] = {
            "model_id": model_id or f".{packaged_id}",
            "description": f"{es_meta.get('description') or packaged_id} (converted from TorchScript)",
            "source": source,
            "license": str(es_meta.get("license", "see the model's source")),
            "extra": {"max_sequence_length": settings.max_sequence_length},
        }
        # The check needs the fp32 graph; an int8 package is converted afterwards from the same checkpoint.
        package = convert(ckpt, out_dir, **common)
        check = {
            "texts": _CHECK_TEXTS,
            "max_abs_diff": check_against_torchscript(module, package),
            "inputs": "as ES feeds them: input_ids, attention_mask, token_type_ids, position_ids",
        }
        if quantize != "none":
            common["extra"] = {**common["extra"], "torchscript_check_fp32": check}
            return convert(ckpt, out_dir, quantize=quantize, int8_scope=int8_scope, **common)
    # metadata.json is not among the checksummed files, so recording the check does not invalidate the package.
    write_json(out_dir / METADATA_FILE, {**package.metadata, "torchscript_check_fp32": check})
    return ModelPackage.load(out_dir)
