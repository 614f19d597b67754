"""Elastic's TorchScript ELSER packages (`.pt` + `.vocab.json` + `.metadata.json`) → our ONNX package.

Any TorchScript that Elasticsearch itself runs for `text_expansion` with BERT tokenization is accepted: frozen
(as eland saves it) or not, a tensor or a 1-tuple out, pooled `[batch, vocab]` weights or per-position
`[batch, seq, vocab]` logits (which Elasticsearch pools as SPLADE does), two to four inputs in Elasticsearch's
order, any wrapper around the model. The BERT masked-LM is read from the TorchScript graph by the role of each
constant (`torchscript_graph.py`; torch is an optional extra, imported only when converting), written as a
checkpoint and converted by the torch-free converter (`convert.py`), so the result is the same fast package as
`elser-model convert` makes. The tokenizer is rebuilt from the vocabulary and the metadata's tokenization settings.
Finally the TorchScript model itself is run on sample texts with the inputs ES feeds it and must agree with the
ONNX package: that catches whatever the graph's structure does not show (attention scale, mask handling, the
pooling)."""

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

from elser_server.model.checkpoint import CheckpointError, wordpiece_tokenizer
from elser_server.model.convert import convert
from elser_server.model.package import METADATA_FILE, ModelPackage, sha256_file, write_json
from elser_server.model.samples import ACCURACY_SAMPLE

TORCH_MISSING = (
    "converting Elastic's TorchScript model needs PyTorch, an optional extra that is not installed: "
    "pip install 'elser-inference[torchscript]' (from a checkout: pip install '.[torchscript]', the CPU build "
    "torch==2.13.0). Or convert on another machine with `elser-model convert-torchscript MODEL.pt VOCAB.json "
    "METADATA.json OUT` and publish the ONNX package into the model repository with `elser-model publish`."
)
# The TorchScript model and our ONNX graph compute the same fp32 function in a different order.
CHECK_TOLERANCE = 1e-3
_CHECK_TEXTS = 8
ES_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


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


EXPANSION_TYPES = ("elser", "splade")  # pooled inside the model / per-position output pooled by Elasticsearch


def expansion_type(metadata: dict[str, Any]) -> str | None:
    """`inference_config.text_expansion.expansion_type` when the metadata has it."""
    config = metadata.get("inference_config")
    task = config.get("text_expansion") if isinstance(config, dict) else None
    value = task.get("expansion_type") if isinstance(task, dict) else None
    if value is not None and value not in EXPANSION_TYPES:
        raise CheckpointError(
            f"text_expansion expansion_type {value!r} is not supported (expected one of {', '.join(EXPANSION_TYPES)})"
        )
    return value


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise TorchMissingError(TORCH_MISSING) from e
    return torch


def first_line(error: BaseException) -> str:
    """The gist of a torch error: the first sentence (the rest is advice or a C++ stack trace), or for an error
    raised inside a TorchScript program the final `XxxError: ...` line after its TorchScript traceback."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"[A-Za-z]+Error: ", line)]
    text = raised[-1] if raised else lines[0] if lines else type(error).__name__
    return text.split(". ", 1)[0].rstrip(".")


def load_torchscript(pt_path: Path) -> Any:
    torch = _import_torch()
    try:
        # TorchScript is deprecated in torch, but it is the format Elastic publishes.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(pt_path), map_location="cpu")
    except (RuntimeError, ValueError) as e:
        raise CheckpointError(
            f"the .pt file is not a TorchScript model (torch.jit.load: {first_line(e)}); expected a "
            "TorchScript archive as torch.jit.save and eland write it"
        ) from e
    module.eval()
    return module


def es_inputs(ids: list[list[int]], count: int = 4) -> tuple[np.ndarray, ...]:
    """What ES's pytorch_inference passes a BERT text_expansion model, in order: input_ids, attention_mask,
    token_type_ids (all 0: one sequence) and position_ids (0..n-1), padded with [PAD] id 0; the first `count`."""
    width = max(len(x) for x in ids)
    input_ids = np.zeros((len(ids), width), dtype=np.int64)
    mask = np.zeros_like(input_ids)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    positions = np.broadcast_to(np.arange(width, dtype=np.int64), input_ids.shape).copy()
    return (input_ids, mask, np.zeros_like(input_ids), positions)[:count]


def splade_pool(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """What Elasticsearch does with per-position output: max over unmasked positions of log(1 + relu(x))."""
    weights = np.log1p(np.maximum(logits, 0.0)) * mask[:, :, None].astype(logits.dtype)
    return np.asarray(weights.max(axis=1), dtype=np.float32)


@dataclass(frozen=True)
class TorchScriptRun:
    """The TorchScript model's own vectors for the check texts, and what its output looked like."""

    ids: list[list[int]]
    vectors: np.ndarray  # [texts, vocab], pooled as Elasticsearch pools this model's output
    output: str  # "pooled" or "per-position"
    expansion_type: str
    declared: bool  # expansion_type came from the metadata (else from the output's rank)


def run_torchscript(
    module: Any, ids: list[list[int]], num_inputs: int, vocab_size: int, declared: str | None
) -> TorchScriptRun:
    """Run the model on `ids` with the inputs ES feeds it; tell pooled from per-position output by the metadata's
    expansion_type, or else by the output's rank."""
    torch = _import_torch()
    inputs = es_inputs(ids, num_inputs)
    try:
        with torch.inference_mode():
            out = module(*(torch.from_numpy(x) for x in inputs))
    except RuntimeError as e:
        raise CheckpointError(
            f"the TorchScript model fails on the inputs Elasticsearch feeds it ({first_line(e)}); expected it to "
            f"take int64 [batch, seq] tensors: {', '.join(ES_INPUT_NAMES[:num_inputs])}"
        ) from e
    if isinstance(out, tuple | list) and len(out) == 1:
        out = out[0]
    if not isinstance(out, torch.Tensor):
        found = (
            f"a {type(out).__name__} of {len(out)} values"
            if isinstance(out, tuple | list)
            else type(out).__name__
        )
        raise CheckpointError(f"the TorchScript model returns {found}; expected a tensor or a 1-tuple of one")
    shape = list(out.shape)
    batch, width = inputs[0].shape
    wanted = {"elser": [batch, vocab_size], "splade": [batch, width, vocab_size]}
    described = {
        "elser": f"[batch, vocab] = {wanted['elser']} (pooled)",
        "splade": f"[batch, seq, vocab] = {wanted['splade']} (per-position)",
    }
    if declared is not None:
        kind = declared
        if shape != wanted[kind]:
            raise CheckpointError(
                f"the TorchScript model's output has rank {len(shape)} (shape {shape}); the metadata's "
                f"expansion_type {kind!r} expects {described[kind]}"
            )
    else:
        by_rank = {len(w): k for k, w in wanted.items()}
        kind = by_rank.get(len(shape), "")
        if shape != wanted.get(kind):
            raise CheckpointError(
                f"the TorchScript model's output has rank {len(shape)} (shape {shape}); expected "
                f"{described['elser']} or {described['splade']}"
            )
    values = out.detach().float().numpy()
    vectors = splade_pool(values, inputs[1]) if kind == "splade" else values.astype(np.float32)
    output = "per-position" if kind == "splade" else "pooled"
    return TorchScriptRun(ids, vectors, output, kind, declared is not None)


def check_against_torchscript(reference: TorchScriptRun, package: ModelPackage) -> float:
    """Max |Δw| between the TorchScript model's vectors and the package's (raises above CHECK_TOLERANCE)."""
    from elser_server.runtime.backends.onnxruntime import SpladeSession

    ids = [np.asarray(x, dtype=np.int64) for x in reference.ids]
    got = SpladeSession(package, num_threads=1).run_batched(ids)
    diff = float(np.max(np.abs(got - reference.vectors)))
    if diff > CHECK_TOLERANCE:
        raise CheckpointError(
            f"the converted model differs from the TorchScript model by up to {diff:.3g} (expected at most "
            f"{CHECK_TOLERANCE}): the graph computes something besides a BERT masked-LM with "
            f"{'SPLADE max pooling' if reference.output == 'pooled' else 'per-position logits'}; if its "
            f"{package.metadata['architecture']['num_attention_heads']} attention heads are wrong, pass --num-heads"
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
) -> ModelPackage:
    """Convert an ES model package's three files into our package directory `out`."""
    pt, out_dir = Path(pt_path), Path(out)
    es_meta = json.loads(Path(metadata_path).read_text(encoding="utf-8"))
    if not isinstance(es_meta, dict):
        raise CheckpointError(f"{metadata_path}: metadata must be a JSON object")
    settings = BertTokenization.from_metadata(es_meta)
    declared = expansion_type(es_meta)
    pt_sha256, pt_size = sha256_file(pt)
    if "sha256" in es_meta and es_meta["sha256"] != pt_sha256:
        raise CheckpointError(
            f"{pt}: checksum mismatch (sha256 {pt_sha256}, the metadata says {es_meta['sha256']})"
        )
    vocabulary = read_vocabulary(Path(vocab_path))
    module = load_torchscript(pt)
    from elser_server.model.torchscript_graph import read_bert  # imports torch

    bert = read_bert(module, num_heads)
    config = bert.config
    if len(vocabulary) != config.vocab_size:
        raise CheckpointError(
            f"the vocabulary file has {len(vocabulary)} tokens but the model's word embeddings and vocabulary "
            f"projection have {config.vocab_size}: expected one vocabulary entry per row"
        )
    if settings.max_sequence_length > config.max_position_embeddings:
        raise CheckpointError(
            f"max_sequence_length {settings.max_sequence_length} exceeds the model's "
            f"{config.max_position_embeddings} positions"
        )
    tokenizer = settings.tokenizer(vocabulary)
    sample = [e.ids for e in tokenizer.encode_batch(list(ACCURACY_SAMPLE[:_CHECK_TEXTS]))]
    reference = run_torchscript(module, sample, bert.num_inputs, config.vocab_size, declared)
    if reference.output == "pooled" and not bert.pooled_in_graph:
        raise CheckpointError(
            "the TorchScript model returns [batch, vocab] but its graph does not max-pool after the vocabulary "
            f"projection (it applies {', '.join(sorted(bert.tail_ops)) or 'nothing'}); expected SPLADE max "
            "pooling over positions of log(1 + relu(logits))"
        )
    if reference.output == "per-position" and bert.pooled_in_graph:
        raise CheckpointError(
            "the TorchScript model returns [batch, seq, vocab] but its graph max-pools after the vocabulary "
            "projection; expected the per-position logits"
        )
    packaged_id = str(es_meta.get("packaged_model_id", pt.stem))
    source = {
        "format": "elasticsearch-torchscript",
        "packaged_model_id": packaged_id,
        "sha256": pt_sha256,
        "size": pt_size,
        "es_description": es_meta.get("description"),
        "tokenization": {"bert": vars(settings)},
        "torchscript": {
            "inputs": list(ES_INPUT_NAMES[: bert.num_inputs]),
            "output": reference.output,
            "expansion_type": reference.expansion_type,
            "expansion_type_from": "metadata" if reference.declared else "output rank",
            "attention_heads_from": "graph" if bert.heads_from_graph else "hidden size / 64",
        },
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.ckpt.") as tmp_name:
        ckpt = Path(tmp_name)
        hf = config.to_hf_dict()
        hf["tie_word_embeddings"] = bert.tied_decoder
        (ckpt / "config.json").write_text(json.dumps(hf, indent=2) + "\n", encoding="utf-8")
        save_file(bert.weights, str(ckpt / "model.safetensors"))
        tokenizer.save(str(ckpt / "tokenizer.json"))
        num_inputs = bert.num_inputs
        del bert, module  # the converter loads its own copy; BERT-base weights are ~0.5 GB each
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
            "max_abs_diff": check_against_torchscript(reference, package),
            "inputs": f"as ES feeds them: {', '.join(ES_INPUT_NAMES[:num_inputs])}",
        }
        if quantize != "none":
            common["extra"] = {**common["extra"], "torchscript_check_fp32": check}
            return convert(ckpt, out_dir, quantize=quantize, int8_scope=int8_scope, **common)
    # metadata.json is not among the checksummed files, so recording the check does not invalidate the package.
    write_json(out_dir / METADATA_FILE, {**package.metadata, "torchscript_check_fp32": check})
    return ModelPackage.load(out_dir)
