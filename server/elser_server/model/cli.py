"""`elser-model`: convert checkpoints, build the default model, inspect packages, embed offline."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from elser_server.model.checkpoint import CheckpointError
from elser_server.model.package import ModelPackage, PackageError

# Inputs at least this long get a progress bar on stderr.
_PROGRESS_MIN = 256
# The default model's bert-base-uncased vocabulary, as `make model` publishes it.
DEFAULT_VOCAB = Path("models/repository/elser_model_2.tokenizer.json")


def _convert(args: argparse.Namespace) -> int:
    from elser_server.model.convert import convert

    package = convert(
        args.src,
        args.out,
        model_id=args.model_id,
        quantize=args.quantize,
        int8_scope=args.int8_scope,
        license=args.license,
    )
    print(f"wrote {package.path} ({package.metadata['quantization']})")
    if "accuracy_vs_fp32" in package.metadata:
        print("accuracy vs fp32:", json.dumps(package.metadata["accuracy_vs_fp32"]))
    return 0


def _convert_torchscript(args: argparse.Namespace) -> int:
    from elser_server.model.torchscript import convert_torchscript

    package = convert_torchscript(
        args.model,
        args.vocab,
        args.metadata,
        args.out,
        model_id=args.model_id,
        quantize=args.quantize,
        int8_scope=args.int8_scope,
        num_heads=args.num_heads,
    )
    check = package.metadata["torchscript_check_fp32"]
    print(
        f"wrote {package.path} ({package.metadata['quantization']}); max |Δw| vs TorchScript {check['max_abs_diff']:.2e}"
    )
    return 0


def _fetch_default(args: argparse.Namespace) -> int:
    from elser_server.model.default import fetch_default

    result = fetch_default(args.out_repo, args.cache)
    for model_id in result.present:
        print(f"{model_id}: already in {args.out_repo}")
    for model_id in result.published:
        print(f"{model_id}: published into {args.out_repo}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from elser_server.model.repository import publish

    print(f"wrote {publish(args.package, args.repo, args.model_id)}")
    return 0


def _info(args: argparse.Namespace) -> int:
    package = ModelPackage.load(args.package, verify=False)
    print(json.dumps(package.metadata, indent=2, ensure_ascii=False))
    package.verify()
    print(f"checksums OK ({len(package.metadata['files'])} files)")
    return 0


def _read_texts(stream: TextIO) -> list[str]:
    from elser_server.runtime.tokenizer import check_text

    texts = []
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"line {number}: not valid JSON ({e.msg})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
            raise ValueError(f'line {number}: expected an object like {{"text": "..."}}')
        try:
            check_text(doc["text"])
        except ValueError as e:
            raise ValueError(f"line {number}: text {e}") from None
        texts.append(doc["text"])
    return texts


def _embed(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from elser_server.runtime.engine import Engine

    if args.input:
        with open(args.input, encoding="utf-8", errors="surrogateescape") as f:
            texts = _read_texts(f)
    else:
        texts = _read_texts(sys.stdin)
    with (
        Engine(
            args.package, args.allocations, args.threads, args.token_budget, args.max_batch_size
        ) as engine,
        tqdm(total=len(texts), unit="doc", file=sys.stderr, disable=len(texts) < _PROGRESS_MIN) as bar,
    ):
        results = engine.embed(texts, progress=bar.update)
        out = sys.stdout
        for r in results:
            out.write(json.dumps({"is_truncated": r.is_truncated, "embedding": engine.to_tokens(r)}) + "\n")
    return 0


def _random_checkpoint(args: argparse.Namespace) -> int:
    from elser_server.model.checkpoint import (
        BertConfig,
        load_tokenizer,
        tiny_vocab,
        wordpiece_tokenizer,
        write_random_checkpoint,
    )

    if args.vocab_from == "tiny":
        tokenizer = wordpiece_tokenizer(tiny_vocab())
    elif args.vocab_from == "default":
        tokenizer = load_tokenizer(DEFAULT_VOCAB)
    else:
        tokenizer = load_tokenizer(Path(args.vocab_from))
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=args.heads,
        intermediate_size=args.intermediate,
        max_position_embeddings=512,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
    )
    out = write_random_checkpoint(
        args.out,
        config,
        tokenizer,
        args.seed,
        legacy_layernorm_names=args.legacy_names,
        bert_prefix=not args.no_prefix,
        tied_decoder=not args.untied,
    )
    print(f"wrote {out} ({config.num_layers} layers, hidden {config.hidden_size}, vocab {config.vocab_size})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="elser-model", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "convert", help="convert a Hugging Face BertForMaskedLM SPLADE checkpoint into a package"
    )
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--quantize", choices=["none", "int8"], default="none")
    p.add_argument(
        "--int8-scope",
        choices=["vocab", "all"],
        default="vocab",
        help="vocab: quantize the vocabulary projection only (accurate); all: every MatMul (fastest on large models)",
    )
    p.add_argument("--model-id", default=".elser_model_2")
    p.add_argument("--license", default="unknown", help="licence of the weights, recorded in the metadata")
    p.set_defaults(func=_convert)

    p = sub.add_parser(
        "convert-torchscript",
        help="convert an Elasticsearch model package (TorchScript .pt, .vocab.json, .metadata.json); needs torch",
    )
    p.add_argument("model", type=Path, help="<name>.pt")
    p.add_argument("vocab", type=Path, help="<name>.vocab.json")
    p.add_argument("metadata", type=Path, help="<name>.metadata.json (tokenization settings, sha256)")
    p.add_argument("out", type=Path)
    p.add_argument("--quantize", choices=["none", "int8"], default="none")
    p.add_argument("--int8-scope", choices=["vocab", "all"], default="vocab")
    p.add_argument(
        "--model-id", default=None, help="default: the metadata's packaged_model_id with a leading dot"
    )
    p.add_argument("--num-heads", type=int, default=None, help="attention heads (default: hidden size / 64)")
    p.set_defaults(func=_convert_torchscript)

    p = sub.add_parser("fetch-default", help="build the default (stand-in) model into a model repository")
    p.add_argument("out_repo", type=Path)
    p.add_argument("--cache", type=Path, default=None, help="download cache (default: <OUT_REPO>/../cache)")
    p.set_defaults(func=_fetch_default)

    p = sub.add_parser("publish", help="publish a package into a model repository under a model id")
    p.add_argument("package", type=Path)
    p.add_argument("repo", type=Path)
    p.add_argument("--model-id", required=True)
    p.set_defaults(func=_publish)

    p = sub.add_parser("info", help="print a package's metadata and verify its checksums")
    p.add_argument("package", type=Path)
    p.set_defaults(func=_info)

    p = sub.add_parser("embed", help='JSON lines {"text": ...} in, ES-shaped sparse embeddings out, in order')
    p.add_argument("package", type=Path)
    p.add_argument("--input", type=Path, default=None, help="read this file instead of stdin")
    p.add_argument("--allocations", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--threads", type=int, default=1, help="threads per allocation")
    p.add_argument("--token-budget", type=int, default=1024)
    p.add_argument("--max-batch-size", type=int, default=32)
    p.set_defaults(func=_embed)

    p = sub.add_parser(
        "random-checkpoint", help="write a randomly initialised BERT-MLM checkpoint (tests, speed)"
    )
    p.add_argument("out", type=Path)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=512)
    p.add_argument(
        "--vocab-from",
        default="tiny",
        help=f"tokenizer.json / vocab.txt (or their dir); 'tiny' (a few hundred tokens); 'default' ({DEFAULT_VOCAB})",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--legacy-names", action="store_true", help="LayerNorm gamma/beta instead of weight/bias")
    p.add_argument("--no-prefix", action="store_true", help="no 'bert.' prefix on encoder weights")
    p.add_argument("--untied", action="store_true", help="separate decoder weight")
    p.set_defaults(func=_random_checkpoint)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (PackageError, CheckpointError, ValueError, OSError, subprocess.CalledProcessError) as e:
        print(f"elser-model {args.command}: error: {e}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
