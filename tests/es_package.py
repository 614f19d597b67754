"""Build an Elasticsearch-layout model package the way Elastic (eland) does: a PyTorch BertForMaskedLM with SPLADE
pooling inside, traced to TorchScript with the four inputs ES's pytorch_inference passes a BERT model (input_ids,
attention_mask, token_type_ids, position_ids), saved as `<name>.pt` beside `<name>.vocab.json` and
`<name>.metadata.json` (real sha256 and size, ELSER v2's tokenization settings). Needs torch.

    python tests/es_package.py CHECKPOINT_DIR REPO_DIR [--model-id .elser_model_2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import warnings
from pathlib import Path

import torch
from elser_server.model.checkpoint import BertConfig, load_checkpoint
from torch import nn

# ELSER v2's published tokenization settings (inference_config.text_expansion.tokenization.bert).
ELSER_TOKENIZATION = {
    "do_lower_case": True,
    "with_special_tokens": True,
    "max_sequence_length": 512,
    "truncate": "first",
    "span": -1,
}


class _Embeddings(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, ids: torch.Tensor, types: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = (
            self.word_embeddings(ids)
            + self.token_type_embeddings(types)
            + self.position_embeddings(positions)
        )
        return self.LayerNorm(x)


class _SelfAttention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.heads = c.num_heads
        self.head_dim = c.hidden_size // c.num_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, s, h, d = x.size(0), x.size(1), x.size(2), self.head_dim

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, s, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
        return (probs @ v).transpose(1, 2).reshape(b, s, h)


class _Output(nn.Module):
    def __init__(self, n_in: int, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _Output(c.hidden_size, c)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, bias), x)


class _Intermediate(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.dense(x))


class _Layer(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _Output(c.intermediate_size, c)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, bias)
        return self.output(self.intermediate(x), x)


class _Encoder(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_layers))


class _Bert(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.embeddings = _Embeddings(c)
        self.encoder = _Encoder(c)


class _Transform(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)


class _Predictions(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.transform = _Transform(c)
        self.decoder = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))


class _Heads(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.predictions = _Predictions(c)


class BertForMaskedLM(nn.Module):
    """HF's parameter names (bert.*, cls.predictions.*)."""

    def __init__(self, c: BertConfig, tied: bool = True) -> None:
        super().__init__()
        self.bert = _Bert(c)
        self.cls = _Heads(c)
        if tied:
            self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        bias = (1.0 - mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
        x = self.bert.embeddings(ids, types, positions)
        for layer in self.bert.encoder.layer:
            x = layer(x, bias)
        t = self.cls.predictions.transform
        x = t.LayerNorm(nn.functional.gelu(t.dense(x)))
        return self.cls.predictions.decoder(x) + self.cls.predictions.bias


class TextExpansion(nn.Module):
    """What eland traces for a text_expansion model: the MLM under `_model`, SPLADE max pooling inside."""

    def __init__(self, model: BertForMaskedLM) -> None:
        super().__init__()
        self._model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        position_ids: torch.Tensor,
    ) -> torch.Tensor:
        logits = self._model(input_ids, attention_mask, token_type_ids, position_ids)
        weights = torch.log1p(torch.relu(logits)) * attention_mask.unsqueeze(-1).to(logits.dtype)
        return torch.max(weights, dim=1).values


def load_mlm(checkpoint: Path) -> tuple[BertForMaskedLM, list[str]]:
    """The HF checkpoint's weights (numpy loader: any naming variant) in the PyTorch module; its vocabulary."""
    ckpt = load_checkpoint(checkpoint)
    model = BertForMaskedLM(ckpt.config, tied=ckpt.tied_decoder)
    state = {
        (name if name.startswith("cls.") else f"bert.{name}"): torch.from_numpy(value.copy())
        for name, value in ckpt.weights.items()
    }
    missing, _ = model.load_state_dict(state, strict=False)  # extras: pooler, a duplicate decoder bias
    assert not missing, missing
    vocab = sorted(ckpt.tokenizer.get_vocab(), key=ckpt.tokenizer.get_vocab().__getitem__)
    return model.eval(), vocab


def write_es_package(checkpoint: Path, repo: Path, model_id: str = ".elser_model_2") -> Path:
    """Trace and write `<name>.pt`, `<name>.vocab.json`, `<name>.metadata.json` into `repo`; returns the .pt."""
    model, vocab = load_mlm(checkpoint)
    wrapper = TextExpansion(model).eval()
    example = torch.tensor([[101, 2000, 2001, 102], [101, 2002, 102, 0]], dtype=torch.long) % len(vocab)
    mask = (example != 0).long()
    name = model_id.removeprefix(".")
    repo.mkdir(parents=True, exist_ok=True)
    pt = repo / f"{name}.pt"
    inputs = (example, mask, torch.zeros_like(example), torch.arange(4).expand(2, 4).contiguous())
    # TorchScript is deprecated in torch but it is what ES's pytorch_inference runs, so trace anyway.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(wrapper, inputs, check_trace=False)
        torch.jit.save(traced, str(pt))
    (repo / f"{name}.vocab.json").write_text(json.dumps({"vocabulary": vocab}), encoding="utf-8")
    data = pt.read_bytes()
    metadata = {
        "packaged_model_id": name,
        "description": f"SPLADE traced to TorchScript from {checkpoint.name} (test package)",
        "model_type": "pytorch",
        "tags": [],
        "minimum_version": "8.11.0",
        "create_time": "2026-01-01T00:00:00.000Z",
        "inference_config": {"text_expansion": {"tokenization": {"bert": ELSER_TOKENIZATION}}},
        "metadata": {},
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    (repo / f"{name}.metadata.json").write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    return pt


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("repo", type=Path)
    parser.add_argument("--model-id", default=".elser_model_2")
    args = parser.parse_args()
    print(f"wrote {write_es_package(args.checkpoint, args.repo, args.model_id)}")
