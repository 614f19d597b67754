"""Chunked inference of one ~1 MB document on the default model: chunks/s through the core's shared queue,
next to the engine's docs/s on the very same chunk texts (the engine bound), and the peak RSS.

    .venv/bin/python bench/chunked.py [--allocations 2 --threads 1] [--strategy sentence|word]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

from elser_server.app import build_core
from elser_server.core.chunking import chunk, parse_chunking_settings
from elser_server.core.types import ChunkEmbedding
from elser_server.model.package import ModelPackage
from elser_server.model.repository import install
from elser_server.runtime.engine import Engine
from elser_server.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import make_corpus  # noqa: E402  (the engine benchmark's deterministic corpus)


def document(tokenizer_texts: list[str], size: int = 1_000_000) -> str:
    out: list[str] = []
    total = 0
    for text in tokenizer_texts:
        out.append(text + " ")
        total += len(text) + 1
        if total >= size:
            break
    return "".join(out)


async def run(args: argparse.Namespace) -> None:
    repo = REPO_ROOT / "models" / "repository"
    with tempfile.TemporaryDirectory() as tmp:
        package = ModelPackage.load(install(repo, ".elser_model_2", Path(tmp) / "engine-cache"))
        engine = Engine(package, num_allocations=args.allocations, num_threads=args.threads)
        text = document(make_corpus(engine.tokenizer, 12_000))
        settings = parse_chunking_settings(
            {
                "strategy": args.strategy,
                "max_chunk_size": 250,
                **({"sentence_overlap": 1} if args.strategy == "sentence" else {"overlap": 100}),
            }
        )
        pieces = [c.text(text) for c in chunk(text, settings)]

        engine.embed(pieces[:64])  # warm-up
        start = time.perf_counter()
        engine.embed(pieces)
        engine_s = time.perf_counter() - start

        core = build_core(
            Settings(data_dir=Path(tmp), model_repository=str(repo), preload_default_endpoint=False)
        )
        await core.start()
        body = {
            "service": "elasticsearch",
            "service_settings": {
                "model_id": ".elser_model_2",
                "num_allocations": args.allocations,
                "num_threads": args.threads,
            },
        }
        await core.put_endpoint("bench", "sparse_embedding", body)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        first_s = None
        n = 0
        async for result in core.infer_chunked(
            "bench", None, [text], chunking_settings=settings.to_dict(), deadline=time.monotonic() + 3600
        ):
            if isinstance(result, ChunkEmbedding):
                n += 1
                first_s = first_s or time.perf_counter() - start
        core_s = time.perf_counter() - start
        rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        await core.close()

    print(
        f"document: {len(text.encode()):,} bytes, {len(pieces)} chunks ({args.strategy} 250), "
        f"layout {args.allocations}x{args.threads}"
    )
    print("| path | chunks/s | ms/chunk |\n|---|---:|---:|")
    print(
        f"| engine (same chunk texts) | {len(pieces) / engine_s:,.1f} | {1000 * engine_s / len(pieces):.2f} |"
    )
    print(f"| core.infer_chunked (streamed) | {n / core_s:,.1f} | {1000 * core_s / n:.2f} |")
    print(
        f"first chunk after {1000 * (first_s or 0):.0f} ms; peak RSS growth during streaming {rss_growth:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allocations", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--strategy", choices=("sentence", "word"), default="sentence")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
