"""Hugging Face BertForMaskedLM checkpoints read (and, for tests and benchmarks, written) with numpy only."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class CheckpointError(Exception):
    """The checkpoint directory cannot be converted (missing files, unknown layout, unsupported options)."""


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BertConfig:
        act = raw.get("hidden_act", "gelu")
        if act != "gelu":
            raise CheckpointError(f"hidden_act {act!r} is not supported (only the exact erf 'gelu')")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise CheckpointError("only absolute position embeddings are supported")
        try:
            config = cls(
                vocab_size=int(raw["vocab_size"]),
                hidden_size=int(raw["hidden_size"]),
                num_layers=int(raw["num_hidden_layers"]),
                num_heads=int(raw["num_attention_heads"]),
                intermediate_size=int(raw["intermediate_size"]),
                max_position_embeddings=int(raw.get("max_position_embeddings", 512)),
                type_vocab_size=int(raw.get("type_vocab_size", 2)),
                layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            )
        except KeyError as e:
            raise CheckpointError(f"config.json lacks {e.args[0]!r}") from e
        if config.hidden_size % config.num_heads:
            raise CheckpointError("hidden_size must be a multiple of num_attention_heads")
        return config

    def to_hf_dict(self) -> dict[str, Any]:
        return {
            "architectures": ["BertForMaskedLM"],
            "model_type": "bert",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "layer_norm_eps": self.layer_norm_eps,
            "hidden_act": "gelu",
            "position_embedding_type": "absolute",
            "pad_token_id": 0,
        }


def canonical_name(name: str) -> str:
    """Map the naming variants found in the wild onto one: no `bert.` prefix, LayerNorm `weight`/`bias`."""
    name = name.removeprefix("bert.")
    if ".LayerNorm." in name:
        name = name.replace(".LayerNorm.gamma", ".LayerNorm.weight").replace(
            ".LayerNorm.beta", ".LayerNorm.bias"
        )
    return name


@dataclass(frozen=True)
class Checkpoint:
    config: BertConfig
    weights: dict[str, np.ndarray]  # canonical names, float32; the decoder is always present (tied: a copy)
    tokenizer: Tokenizer
    tied_decoder: bool

    def get(self, name: str) -> np.ndarray:
        try:
            return self.weights[name]
        except KeyError:
            raise CheckpointError(
                f"model.safetensors lacks {name!r} (with or without 'bert.' prefix)"
            ) from None


def load_checkpoint(src: str | Path) -> Checkpoint:
    root = Path(src)
    for name in ("config.json", "model.safetensors"):
        if not (root / name).is_file():
            raise CheckpointError(f"{root}: missing {name}")
    config = BertConfig.from_dict(json.loads((root / "config.json").read_text(encoding="utf-8")))
    weights = {
        canonical_name(k): np.asarray(v, dtype=np.float32)
        for k, v in load_file(root / "model.safetensors").items()
    }
    tied = "cls.predictions.decoder.weight" not in weights
    if tied:
        weights["cls.predictions.decoder.weight"] = weights["embeddings.word_embeddings.weight"]
    if "cls.predictions.bias" not in weights and "cls.predictions.decoder.bias" in weights:
        weights["cls.predictions.bias"] = weights["cls.predictions.decoder.bias"]
    tokenizer = load_tokenizer(root)
    if tokenizer.get_vocab_size() != config.vocab_size:
        raise CheckpointError(
            f"tokenizer has {tokenizer.get_vocab_size()} tokens but config.json says vocab_size {config.vocab_size}"
        )
    return Checkpoint(config, weights, tokenizer, tied)


def load_tokenizer(root: Path) -> Tokenizer:
    """From a checkpoint directory (tokenizer.json or vocab.txt), or from one such file given directly."""
    if root.is_file():
        if root.suffix == ".json":
            return Tokenizer.from_file(str(root))
        return wordpiece_tokenizer(root.read_text(encoding="utf-8").splitlines())
    if (root / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(root / "tokenizer.json"))
    if (root / "vocab.txt").is_file():
        vocab = (root / "vocab.txt").read_text(encoding="utf-8").splitlines()
        lowercase = True
        if (root / "tokenizer_config.json").is_file():
            lowercase = bool(
                json.loads((root / "tokenizer_config.json").read_text()).get("do_lower_case", True)
            )
        return wordpiece_tokenizer(vocab, lowercase=lowercase)
    raise CheckpointError(f"{root}: missing tokenizer.json or vocab.txt")


def wordpiece_tokenizer(vocab: list[str], lowercase: bool = True) -> Tokenizer:
    """A BERT WordPiece tokenizer ([CLS] text [SEP], truncation 512) equivalent to transformers' BertTokenizerFast."""
    ids = {token: i for i, token in enumerate(vocab)}
    missing = [t for t in ("[UNK]", "[CLS]", "[SEP]", "[PAD]") if t not in ids]
    if missing:
        raise CheckpointError(f"vocabulary lacks {', '.join(missing)}")
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens([t for t in SPECIAL_TOKENS if t in ids])
    tok.enable_truncation(max_length=512)
    return tok


# Common words, so tiny-model tests see whole-word tokens as well as character pieces.
_TINY_WORDS = (
    "the of and to in is was for on that with as by at from it an be this are or his her which "
    "not have one had but they you all were she their has been more also its new after who "
    "would first two can time search engine sparse vector dog cat house water city music data "
    "model query text token learn fast"
)


def tiny_vocab() -> list[str]:
    """A few hundred WordPiece tokens: enough to tokenize any ASCII text without [UNK]-only output."""
    chars = string.ascii_lowercase + string.digits
    vocab = list(SPECIAL_TOKENS) + list(string.punctuation) + list(chars) + [f"##{c}" for c in chars]
    vocab += _TINY_WORDS.split()
    vocab += [f"##{w}" for w in ("s", "ed", "ing", "er", "ly", "tion")]
    return list(dict.fromkeys(vocab))


def write_random_checkpoint(
    out: str | Path,
    config: BertConfig,
    tokenizer: Tokenizer,
    seed: int = 0,
    *,
    legacy_layernorm_names: bool = False,
    bert_prefix: bool = True,
    tied_decoder: bool = True,
    mlm_bias: float = -2.0,
) -> Path:
    """Write a randomly initialised BertForMaskedLM in Hugging Face layout. The MLM bias (≈ −2) makes most
    vocabulary weights zero after relu, as in a trained SPLADE, so sparse sizes and speed are realistic."""
    rng = np.random.default_rng(seed)
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def layer_norm(prefix: str) -> dict[str, np.ndarray]:
        w, b = ("gamma", "beta") if legacy_layernorm_names else ("weight", "bias")
        return {
            f"{prefix}.LayerNorm.{w}": (1.0 + normal(h) * 5).astype(np.float32),
            f"{prefix}.LayerNorm.{b}": normal(h),
        }

    enc: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": normal(v, h),
        "embeddings.position_embeddings.weight": normal(config.max_position_embeddings, h),
        "embeddings.token_type_embeddings.weight": normal(config.type_vocab_size, h),
        **layer_norm("embeddings"),
    }
    for n in range(config.num_layers):
        p = f"encoder.layer.{n}"
        for name, (rows, cols) in {
            "attention.self.query": (h, h),
            "attention.self.key": (h, h),
            "attention.self.value": (h, h),
            "attention.output.dense": (h, h),
            "intermediate.dense": (i, h),
            "output.dense": (h, i),
        }.items():
            enc[f"{p}.{name}.weight"] = normal(rows, cols)
            enc[f"{p}.{name}.bias"] = normal(rows)
        enc.update(layer_norm(f"{p}.attention.output"))
        enc.update(layer_norm(f"{p}.output"))
    prefix = "bert." if bert_prefix else ""
    tensors = {prefix + k: val for k, val in enc.items()}
    tensors["cls.predictions.transform.dense.weight"] = normal(h, h)
    tensors["cls.predictions.transform.dense.bias"] = normal(h)
    tensors.update(layer_norm("cls.predictions.transform"))
    tensors["cls.predictions.bias"] = (mlm_bias + normal(v)).astype(np.float32)
    if not tied_decoder:
        tensors["cls.predictions.decoder.weight"] = normal(v, h)
    # Logits of std ≈ 1.2 against a bias of −2 leave a few percent of the vocabulary above zero after max-pooling
    # over a typical document, like a trained SPLADE (LayerNorm outputs have unit variance, so scale by 1/√h).
    decoder = (
        "cls.predictions.decoder.weight" if not tied_decoder else prefix + "embeddings.word_embeddings.weight"
    )
    tensors[decoder] = (rng.standard_normal((v, h)) * (1.2 / np.sqrt(h))).astype(np.float32)

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(root / "model.safetensors"))
    hf = config.to_hf_dict()
    hf["tie_word_embeddings"] = tied_decoder
    (root / "config.json").write_text(json.dumps(hf, indent=2) + "\n", encoding="utf-8")
    tokenizer.save(str(root / "tokenizer.json"))
    return root
