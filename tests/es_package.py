"""Elasticsearch-layout model entries (`<name>.pt`, `<name>.vocab.json`, `<name>.metadata.json`, as Elastic's model
repository serves them) made the way Elastic makes them: traced by eland, Elastic's own tool
(`TransformerModel(model_id=..., task_type="text_expansion").save()`: a frozen TorchScript of the Hugging Face
BertForMaskedLM returning `(logits,)`), and the other TorchScript forms Elasticsearch runs for text_expansion
(unfrozen, pooled, 2 or 3 inputs, a wrapper around the model). Needs torch, transformers and eland (`make test`
installs them: the Makefile's `.venv/.eland`).

    python tests/es_package.py CHECKPOINT_DIR REPO_DIR [--model-id .elser_model_2] [--variant eland]

CHECKPOINT_DIR is anything `elser-model convert` reads (e.g. `elser-model random-checkpoint` output).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from elser_server.model.checkpoint import load_checkpoint
from safetensors.numpy import save_file
from torch import nn

TRACE_IDS = [[2, 40, 41, 42, 43, 3], [2, 44, 3, 0, 0, 0]]  # any vocabulary of 45+ tokens


def hf_model_dir(checkpoint: Path, out: Path) -> Path:
    """A directory transformers and eland load as a BertForMaskedLM with a (slow) BertTokenizer: config.json,
    model.safetensors under Hugging Face's names, vocab.txt and tokenizer_config.json."""
    ckpt = load_checkpoint(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {
        (name if name.startswith("cls.") else f"bert.{name}"): value
        for name, value in ckpt.weights.items()
        if name != "cls.predictions.decoder.bias"
        and not (ckpt.tied_decoder and name == "cls.predictions.decoder.weight")
    }
    save_file(tensors, str(out / "model.safetensors"))
    config = ckpt.config.to_hf_dict() | {"tie_word_embeddings": ckpt.tied_decoder}
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    vocab = ckpt.tokenizer.get_vocab()
    (out / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.__getitem__)) + "\n", encoding="utf-8")
    normalizer = json.loads(ckpt.tokenizer.to_str()).get("normalizer") or {}
    tokenizer_config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": bool(normalizer.get("lowercase", True)),
        "model_max_length": min(512, ckpt.config.max_position_embeddings),
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    return out


@dataclass(frozen=True)
class Traced:
    """A TorchScript file and what eland says about the model (its trained-model config and vocabulary)."""

    pt: Path
    config: dict[
        str, Any
    ]  # eland's NlpTrainedModelConfig: description, inference_config, input, metadata, ...
    vocabulary: list[str]


def eland_trace(hf_dir: Path, work: Path) -> Traced:
    """What `eland_import_hub_model --task-type text_expansion` would upload, saved instead of uploaded."""
    from eland.ml.pytorch.transformers import TransformerModel

    work.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = TransformerModel(model_id=str(hf_dir), task_type="text_expansion")
        pt, config, vocab_path = model.save(str(work))
    vocabulary = json.loads(Path(vocab_path).read_text(encoding="utf-8"))["vocabulary"]
    return Traced(Path(pt), config.to_dict(), vocabulary)


def trace_inputs(count: int = 4) -> tuple[torch.Tensor, ...]:
    """Elasticsearch's inputs for a BERT model, in its order: input_ids, attention_mask, token_type_ids,
    position_ids (the first `count`)."""
    ids = torch.tensor(TRACE_IDS, dtype=torch.long)
    mask = (ids != 0).long()
    positions = torch.arange(ids.shape[1]).expand(ids.shape).contiguous()
    return (ids, mask, torch.zeros_like(ids), positions)[:count]


class SpladePooled(nn.Module):
    """SPLADE max pooling inside the model: [batch, vocab] out (how ELSER's pooled form looks)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        position_ids: torch.Tensor,
    ) -> torch.Tensor:
        logits = self._model(input_ids, attention_mask, token_type_ids, position_ids)[0]
        weights = torch.log1p(torch.relu(logits)) * attention_mask.unsqueeze(-1).to(logits.dtype)
        return torch.amax(weights, dim=1)


class ThreeInputs(nn.Module):
    """No position_ids: the model uses its own position buffer. Per-position logits as a tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return out[0]  # type: ignore[no-any-return]


class TwoInputs(nn.Module):
    """input_ids and attention_mask only: token types and positions from the model's buffers; (logits,) out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.model(input_ids=input_ids, attention_mask=attention_mask)[0],)


class Nested(nn.Module):
    """Wrappers in wrappers: parameters under `module.encoder._model.bert.…`; a 1-tuple of pooled weights out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.module = nn.Module()
        self.module.encoder = SpladePooled(model)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        position_ids: torch.Tensor,
    ) -> tuple[torch.Tensor]:
        encoder = self.module.encoder
        return (encoder(input_ids, attention_mask, token_type_ids, position_ids),)


@dataclass(frozen=True)
class Variant:
    """One TorchScript form: how it wraps the Hugging Face model, its inputs, whether it is frozen, and the
    expansion_type its metadata declares (None: not declared, as eland 9.2 writes it)."""

    wrap: Callable[[nn.Module], nn.Module] | None  # None: eland's own output
    inputs: int = 4
    frozen: bool = False
    expansion_type: str | None = None
    attention: str = "sdpa"  # transformers' attention implementation (eager: the matmul/softmax graph)


VARIANTS: dict[str, Variant] = {
    # eland's own: frozen, `(logits,)` per position, 4 inputs, no wrapper
    "eland": Variant(wrap=None, frozen=True),
    # the same model traced and not frozen; eager attention (the matmul → softmax → matmul graph)
    "unfrozen": Variant(wrap=lambda m: m, attention="eager"),
    # pooled inside, a tensor out, frozen
    "pooled": Variant(wrap=SpladePooled, frozen=True),
    # 3 inputs, per-position tensor out, not frozen, expansion_type declared
    "three-inputs": Variant(wrap=ThreeInputs, inputs=3, expansion_type="splade"),
    # 2 inputs, `(logits,)` out, frozen
    "two-inputs": Variant(wrap=TwoInputs, inputs=2, frozen=True),
    # parameters under a nested prefix, `(pooled,)` out, not frozen, expansion_type declared
    "wrapped": Variant(wrap=Nested, expansion_type="elser"),
}


def trace_variant(hf_dir: Path, name: str, work: Path, eland: Traced | None = None) -> Traced:
    """The model in `hf_dir` as TorchScript form `name` (see VARIANTS); `eland`: its eland trace, if made already
    (the other forms take eland's config and vocabulary)."""
    variant = VARIANTS[name]
    eland = eland or eland_trace(hf_dir, work / "eland")
    if variant.wrap is None:
        return eland
    mlm = transformers.AutoModelForMaskedLM.from_pretrained(
        str(hf_dir), torchscript=True, attn_implementation=variant.attention
    ).eval()
    pt = save_trace(variant.wrap(mlm), work / f"{name}.pt", variant.inputs, freeze=variant.frozen)
    return Traced(pt, eland.config, eland.vocabulary)


def save_trace(module: nn.Module, pt: Path, inputs: int = 4, *, freeze: bool = False) -> Path:
    """Trace `module` with Elasticsearch's first `inputs` inputs and save it (frozen, if asked) as `pt`."""
    # TorchScript is deprecated in torch but it is what ES's pytorch_inference runs, so trace anyway.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module.eval(), trace_inputs(inputs), check_trace=False)
        if freeze:
            traced = torch.jit.freeze(traced)
        pt.parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(traced, str(pt))
    return pt


def write_es_entry(
    traced: Traced,
    repo: Path,
    model_id: str = ".elser_model_2",
    *,
    expansion_type: str | None = None,
    vocabulary: list[str] | None = None,
) -> Path:
    """`<name>.pt`, `<name>.vocab.json` and `<name>.metadata.json` (real sha256 and size) in `repo`; returns the
    .pt. `vocabulary` replaces the traced model's (for tests of a mismatch)."""
    name = model_id.removeprefix(".")
    repo.mkdir(parents=True, exist_ok=True)
    pt = repo / f"{name}.pt"
    shutil.copyfile(traced.pt, pt)
    vocab = traced.vocabulary if vocabulary is None else vocabulary
    (repo / f"{name}.vocab.json").write_text(json.dumps({"vocabulary": vocab}), encoding="utf-8")
    inference_config = json.loads(json.dumps(traced.config["inference_config"]))
    if expansion_type is not None:
        inference_config["text_expansion"]["expansion_type"] = expansion_type
    data = pt.read_bytes()
    metadata = {
        **traced.config,
        "packaged_model_id": name,
        "minimum_version": "8.11.0",
        "create_time": "2026-01-01T00:00:00.000Z",
        "tags": [],
        "inference_config": inference_config,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    (repo / f"{name}.metadata.json").write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    return pt


def write_es_package(
    checkpoint: Path, repo: Path, model_id: str = ".elser_model_2", variant: str = "eland"
) -> Path:
    """Trace `checkpoint` as `variant` and write its ES entry into `repo`; returns the .pt."""
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = hf_model_dir(checkpoint, Path(tmp) / "hf")
        traced = trace_variant(hf_dir, variant, Path(tmp) / "trace")
        return write_es_entry(traced, repo, model_id, expansion_type=VARIANTS[variant].expansion_type)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("repo", type=Path)
    parser.add_argument("--model-id", default=".elser_model_2")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="eland")
    args = parser.parse_args()
    print(f"wrote {write_es_package(args.checkpoint, args.repo, args.model_id, args.variant)}")
