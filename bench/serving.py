"""Serving benchmark: the real `elser-server` process, measured through gRPC and REST against the engine.

For each layout (allocations × threads) on the default model and the engine benchmark's deterministic corpus:
  - engine docs/s (bench/engine.py's in-process Engine, same model, corpus, token budget and batch cap);
  - bulk through one InferStream (docs/s, tokens/s, ratio to the engine), with 1 and with 16 texts per request;
  - single 10-word query latency p50/p99 via gRPC Infer and REST `_inference`, idle and while another process
    saturates the server with a bulk InferStream (queries use the interactive lane, bulk the bulk lane), and the
    bulk stream's docs/s meanwhile (one query client back to back: the most a single searcher takes from bulk);
    under bulk, each latency row runs for at least --under-bulk-s seconds, at --query-rate queries a second if set.
Compare numbers only within one run: these VMs vary by ±20 % between runs.

    .venv/bin/python bench/serving.py            # 2,000 docs, 200 queries per latency row
    .venv/bin/python bench/serving.py --quick    # a smoke run
    .venv/bin/python bench/serving.py --quick --layout 2x1 --query-rate 40   # bulk at a fixed search load
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path

import aiohttp
import grpc
from elser.v1 import types_pb2
from elser_client import AsyncElserClient
from elser_client.client import endpoint_config
from elser_server.core.model_manager import ModelManager
from elser_server.model.package import ModelPackage
from elser_server.model.repository import install
from elser_server.runtime.tokenizer import Tokenizer
from elser_server.settings import Settings
from engine import Config, bench_engine, make_corpus, make_queries  # bench/engine.py, this script's directory
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_ID = ".elser_model_2"
LAYOUTS = ((2, 1), (1, 2))  # (allocations, threads per allocation)
BULK_TEXTS_PER_REQUEST = (16, 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(repo: Path, token_budget: int, max_batch_size: int) -> Iterator[tuple[str, str]]:
    """`python -m elser_server` on free ports; yields (gRPC target, REST base URL)."""
    grpc_port, http_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "ELSER_HOST": "127.0.0.1",
            "ELSER_GRPC_PORT": str(grpc_port),
            "ELSER_HTTP_PORT": str(http_port),
            "ELSER_DATA_DIR": data,
            "ELSER_MODEL_REPOSITORY": str(repo),
            "ELSER_PRELOAD_DEFAULT_ENDPOINT": "false",
            "ELSER_TOKEN_BUDGET": str(token_budget),
            "ELSER_MAX_BATCH_SIZE": str(max_batch_size),
            "ELSER_DRAIN_S": "0",
            "ELSER_METRICS_PORT": "0",  # never the default port another server on this machine may hold
            "ELSER_LOG_LEVEL": "WARNING",
        }
        proc = subprocess.Popen([sys.executable, "-m", "elser_server"], env=env)
        target = f"127.0.0.1:{grpc_port}"
        try:
            wait_serving(proc, target)
            yield target, f"http://127.0.0.1:{http_port}"
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_serving(proc: subprocess.Popen[bytes], target: str, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < end:
            if proc.poll() is not None:
                sys.exit(f"elser-server exited with {proc.returncode}")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    sys.exit("elser-server did not become SERVING")


async def bulk(client: AsyncElserClient, inference_id: str, docs: list[str], per_request: int) -> float:
    """Stream `docs` through one InferStream; returns elapsed seconds."""
    batches = [docs[i : i + per_request] for i in range(0, len(docs), per_request)]
    start = time.perf_counter()
    done = 0
    async for response in client.infer_stream(inference_id, batches, timeout_s=600):
        if response.HasField("error"):
            raise RuntimeError(f"bulk item failed: {response.error.message}")
        done += len(response.embeddings)
    elapsed = time.perf_counter() - start
    assert done == len(docs), (done, len(docs))
    return elapsed


def load_generator(
    target: str, inference_id: str, docs: list[str], started: Event, stop: Event, done: Synchronized[int]
) -> None:
    """In its own process (so its client CPU does not sit in the measuring loop): bulk InferStream until stopped,
    counting embedded docs in `done`."""

    async def run() -> None:
        async with AsyncElserClient(target) as client:

            async def forever() -> AsyncIterator[list[str]]:
                i = 0
                while not stop.is_set():
                    yield docs[i : i + 16]
                    i = (i + 16) % len(docs)
                    await asyncio.sleep(0)

            async for response in client.infer_stream(inference_id, forever(), timeout_s=3600):
                started.set()
                with done.get_lock():
                    done.value += len(response.embeddings)

    asyncio.run(run())


def cycled(queries: list[str], min_s: float) -> Iterator[str]:
    """Every query once, and on in turn until `min_s` seconds have passed."""
    end = time.perf_counter() + min_s
    for i, q in enumerate(itertools.cycle(queries)):
        if i >= len(queries) and time.perf_counter() >= end:
            return
        yield q


async def paced(queries: list[str], min_s: float, rate: float) -> AsyncIterator[str]:
    """`cycled`, at most `rate` queries a second (0: back to back)."""
    next_at = time.perf_counter()
    for q in cycled(queries, min_s):
        if rate > 0:
            next_at += 1.0 / rate
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        yield q


async def grpc_latencies(
    client: AsyncElserClient, inference_id: str, queries: list[str], min_s: float = 0.0, rate: float = 0.0
) -> list[float]:
    out = []
    async for q in paced(queries, min_s, rate):
        t0 = time.perf_counter()
        await client.infer(inference_id, q, priority=types_pb2.PRIORITY_UNSPECIFIED)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def rest_latencies(
    base_url: str, inference_id: str, queries: list[str], min_s: float = 0.0, rate: float = 0.0
) -> list[float]:
    out = []
    url = f"{base_url}/_inference/sparse_embedding/{inference_id}"
    async with aiohttp.ClientSession() as http:
        async for q in paced(queries, min_s, rate):
            t0 = time.perf_counter()
            async with http.post(url, json={"input": q}) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"REST inference failed: {response.status}")
            out.append((time.perf_counter() - t0) * 1000)
    return out


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, samples: list[float]) -> Latency:
        ordered = sorted(samples)
        return cls(statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))])


@dataclass
class LayoutResult:
    layout: str
    engine_docs_per_s: float
    bulk_docs_per_s: dict[int, float]
    latency: dict[str, Latency]
    bulk_under_queries_docs_per_s: float


async def measure_layout(
    target: str,
    base_url: str,
    allocations: int,
    threads: int,
    docs: list[str],
    queries: list[str],
    under_bulk_s: float,
    query_rate: float,
) -> tuple[dict[int, float], dict[str, Latency], float]:
    inference_id = f"bench-{allocations}x{threads}"
    async with AsyncElserClient(target, timeout_s=60) as client:
        await client.put_endpoint(
            inference_id, endpoint_config(num_allocations=allocations, num_threads=threads), timeout_s=120
        )
        await bulk(client, inference_id, docs[:64], 16)  # warm the path
        rates = {n: len(docs) / await bulk(client, inference_id, docs, n) for n in BULK_TEXTS_PER_REQUEST}
        await grpc_latencies(client, inference_id, queries[:10])
        latency = {
            "gRPC idle": Latency.of(await grpc_latencies(client, inference_id, queries)),
            "REST idle": Latency.of(await rest_latencies(base_url, inference_id, queries)),
        }
        ctx = mp.get_context("spawn")
        started, stop, done = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
        loader = ctx.Process(target=load_generator, args=(target, inference_id, docs, started, stop, done))
        loader.start()
        try:
            if not await asyncio.to_thread(started.wait, 60):
                raise RuntimeError("the bulk load generator never got a response")
            await asyncio.sleep(1.0)  # let the queue fill
            t0, done0 = time.perf_counter(), done.value
            latency["gRPC under bulk"] = Latency.of(
                await grpc_latencies(client, inference_id, queries, under_bulk_s, query_rate)
            )
            latency["REST under bulk"] = Latency.of(
                await rest_latencies(base_url, inference_id, queries, under_bulk_s, query_rate)
            )
            bulk_under_queries = (done.value - done0) / (time.perf_counter() - t0)
        finally:
            stop.set()
            loader.join(30)
            if loader.is_alive():
                loader.kill()
        await client.delete_endpoint(inference_id, force=True)
    return rates, latency, bulk_under_queries


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=REPO_ROOT / "models" / "repository")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--token-budget", type=int, default=1024, help="the server's default")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument(
        "--under-bulk-s",
        type=float,
        default=10.0,
        help="each query-under-bulk row runs at least this long (its queries again in turn), so that the bulk "
        "rate beside it is measured over a long enough time",
    )
    parser.add_argument(
        "--query-rate",
        type=float,
        default=0.0,
        help="queries a second under bulk (0: one client back to back); compare bulk rates at equal query load",
    )
    parser.add_argument("--quick", action="store_true", help="300 docs, 50 queries")
    parser.add_argument("--layout", action="append", help="e.g. 2x1 (repeatable; default 2x1 and 1x2)")
    args = parser.parse_args()
    if args.quick:
        args.docs, args.queries = 300, 50
    layouts = [tuple(int(v) for v in s.split("x")) for s in args.layout] if args.layout else list(LAYOUTS)
    if not (args.repo / "elser_model_2.metadata.json").is_file():
        sys.exit(f"no default model in {args.repo}: run `elser-model fetch-default {args.repo}` (make model)")

    with tempfile.TemporaryDirectory() as tmp:
        package = ModelPackage.load(install(args.repo, MODEL_ID, Path(tmp)))
        tokenizer = Tokenizer.from_file(package.tokenizer_path)
        docs = make_corpus(tokenizer, args.docs)
        queries = make_queries(tokenizer, args.queries)
        n_tokens = sum(len(e) for e in tokenizer.encode_batch(docs))
        print(
            f"corpus: {len(docs)} docs, {n_tokens / len(docs):.1f} tokens/doc; {len(queries)} queries of 10 words; "
            f"token budget {args.token_budget}, max batch {args.max_batch_size}",
            file=sys.stderr,
        )
        # The engine rows run in the layout the server picks from the same ELSER_* environment.
        settings = Settings()
        layout = ModelManager(
            str(args.repo), Path(tmp), runtime=settings.runtime, precision=settings.precision
        ).layout_for(package.model_id, package)
        print(f"model {package.model_id} runs on {layout} ({layout.reason})", file=sys.stderr)
        results = []
        with server(args.repo, args.token_budget, args.max_batch_size) as (target, base_url):
            for allocations, threads in layouts:
                # The engine runs while the server is idle (no endpoint deployed): same machine, same moment.
                engine = bench_engine(
                    Config(package, layout, allocations, threads), docs, queries[:5], n_tokens, args
                )
                rates, latency, under_queries = asyncio.run(
                    measure_layout(
                        target,
                        base_url,
                        allocations,
                        threads,
                        docs,
                        queries,
                        args.under_bulk_s,
                        args.query_rate,
                    )
                )
                results.append(
                    LayoutResult(f"{allocations}×{threads}", engine.docs_per_s, rates, latency, under_queries)
                )
                print(f"  done {allocations}×{threads}", file=sys.stderr)

    tokens_per_doc = n_tokens / len(docs)
    print(
        f"\n{'layout':<7} {'path':<28} {'docs/s':>8} {'tokens/s':>9} {'vs engine':>9} {'p50 ms':>8} {'p99 ms':>8}"
    )
    for r in results:
        print(
            f"{r.layout:<7} {'engine (in-process)':<28} {r.engine_docs_per_s:>8.1f} "
            f"{r.engine_docs_per_s * tokens_per_doc:>9,.0f} {'100 %':>9}"
        )
        for n, rate in r.bulk_docs_per_s.items():
            path = f"InferStream, {n} text{'s' if n > 1 else ''}/request"
            print(
                f"{r.layout:<7} {path:<28} {rate:>8.1f} {rate * tokens_per_doc:>9,.0f} "
                f"{100 * rate / r.engine_docs_per_s:>7.0f} %"
            )
        rate = r.bulk_under_queries_docs_per_s
        print(
            f"{r.layout:<7} {'InferStream, while queries':<28} {rate:>8.1f} {rate * tokens_per_doc:>9,.0f} "
            f"{100 * rate / r.engine_docs_per_s:>7.0f} %"
        )
        for name, lat in r.latency.items():
            print(
                f"{r.layout:<7} {'query, ' + name:<28} {'':>8} {'':>9} {'':>9} {lat.p50_ms:>8.2f} {lat.p99_ms:>8.2f}"
            )
    print(
        f"({len(docs)} docs, {tokens_per_doc:.1f} tokens/doc, token budget {args.token_budget}, "
        f"max batch {args.max_batch_size})"
    )


if __name__ == "__main__":
    main()
