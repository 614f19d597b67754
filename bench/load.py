"""Load test of a running elser-server: a mix of interactive queries, bulk ingest and deployment watchers.

    python bench/load.py --target 127.0.0.1:50051 --http-url http://127.0.0.1:9200 \
        --protocol grpc --concurrency 16 --duration 30 --mix 8:2:1

Interactive: one short text per call (Infer / POST _inference). Bulk: InferStream of `--stream-messages`
messages of `--bulk-texts` texts each (gRPC), or one POST of `--bulk-texts` texts (REST); its latency is per
message (gRPC: time since the previous response or the stream start) or per POST. Watchers hold
WatchDeployment open (gRPC) or poll the `_elser` stats route (REST). Prints throughput, p50/p99 per class and
error counts by code. Loopback or any target you name; nothing else is contacted.

Overload (`--overload 10`): first the server's bulk capacity in texts/s is measured closed-loop for
`--calibrate-s`; then, for `--duration`, bulk calls of `--bulk-texts` texts are sent open-loop (at a fixed rate,
whatever the answers) at 10 × that capacity, half over gRPC Infer and half over REST, each with the
`--timeout` deadline; meanwhile `--search-rate` search queries per second (gRPC PRIORITY_INTERACTIVE and REST
`input_type: search`, alternately) measure what a search sees. Prints the outcome of every call by code and
search p50/p99; any outcome other than success, RESOURCE_EXHAUSTED/429 or DEADLINE_EXCEEDED/408 is listed as
unexpected.

    python bench/load.py --target 127.0.0.1:50051 --http-url http://127.0.0.1:9200 --overload 10 --duration 60

`--churn N` instead runs N PUT/DELETE cycles of distinct endpoints over REST (each starts and stops a deployment)
and, with `--server-pid`, prints the server's resident memory every N/10 cycles (a soak of memory, not speed):

    python bench/load.py --http-url http://127.0.0.1:9200 --churn 500 --server-pid "$(pgrep -f elser_server)"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
from elser.v1 import (
    endpoint_service_pb2,
    endpoint_service_pb2_grpc,
    inference_service_pb2,
    inference_service_pb2_grpc,
    types_pb2,
)
from elser_client import AsyncElserClient, NotFound
from google.rpc import code_pb2

WORDS = [
    "what",
    "is",
    "the",
    "best",
    "way",
    "to",
    "index",
    "sparse",
    "vectors",
    "for",
    "semantic",
    "search",
    "over",
    "product",
    "reviews",
    "and",
    "support",
    "tickets",
    "when",
    "latency",
    "matters",
    "more",
    "than",
    "recall",
    "at",
    "the",
    "tail",
    "of",
    "the",
    "distribution",
]


@dataclass
class ClassStats:
    latencies_s: list[float] = field(default_factory=list)
    texts: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    events: int = 0

    def ok(self, seconds: float, texts: int) -> None:
        self.latencies_s.append(seconds)
        self.texts += texts


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stop_at = 0.0
        self.stats = {name: ClassStats() for name in ("interactive", "bulk", "watch")}

    def running(self) -> bool:
        return time.monotonic() < self.stop_at

    # --- gRPC ---------------------------------------------------------------------------------------------

    async def grpc_interactive(self, channel: grpc.aio.Channel, seed: int) -> None:
        rng, stats = random.Random(seed), self.stats["interactive"]
        stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
        while self.running():
            request = inference_service_pb2.InferRequest(
                inference_id=self.args.inference_id,
                input=[sentence(rng, rng.randrange(3, 12))],
                options=types_pb2.InferenceOptions(priority=types_pb2.PRIORITY_INTERACTIVE),
            )
            start = time.perf_counter()
            try:
                await stub.Infer(request, timeout=self.args.timeout)
                stats.ok(time.perf_counter() - start, 1)
            except grpc.aio.AioRpcError as error:
                stats.errors[error.code().name] += 1

    async def grpc_bulk(self, channel: grpc.aio.Channel, seed: int) -> None:
        rng, stats, args = random.Random(seed), self.stats["bulk"], self.args
        stub = inference_service_pb2_grpc.InferenceServiceStub(channel)

        def messages() -> Iterator[inference_service_pb2.InferStreamRequest]:
            for i in range(args.stream_messages):
                yield inference_service_pb2.InferStreamRequest(
                    correlation_id=str(i),
                    inference_id=args.inference_id,
                    input=[sentence(rng, rng.randrange(30, 200)) for _ in range(args.bulk_texts)],
                    options=types_pb2.InferenceOptions(priority=types_pb2.PRIORITY_BULK),
                )

        while self.running():
            last = time.perf_counter()
            try:
                async for response in stub.InferStream(
                    messages(), timeout=args.timeout * args.stream_messages
                ):
                    now = time.perf_counter()
                    if response.HasField("error"):
                        stats.errors[code_pb2.Code.Name(response.error.code)] += 1
                    else:
                        stats.ok(now - last, len(response.embeddings))
                    last = now
                    if not self.running():
                        break
            except grpc.aio.AioRpcError as error:
                stats.errors[error.code().name] += 1

    async def grpc_watch(self, channel: grpc.aio.Channel) -> None:
        stub = endpoint_service_pb2_grpc.EndpointServiceStub(channel)
        request = endpoint_service_pb2.WatchDeploymentRequest(inference_id=self.args.inference_id)
        call = stub.WatchDeployment(request)
        try:
            async with asyncio.timeout(max(0.0, self.stop_at - time.monotonic())):
                async for _ in call:
                    self.stats["watch"].events += 1
        except TimeoutError:
            call.cancel()
        except grpc.aio.AioRpcError as error:
            self.stats["watch"].errors[error.code().name] += 1

    # --- REST ---------------------------------------------------------------------------------------------

    async def rest_infer(self, session: aiohttp.ClientSession, seed: int, cls: str) -> None:
        rng, stats, args = random.Random(seed), self.stats[cls], self.args
        url = f"{args.http_url}/_inference/sparse_embedding/{args.inference_id}"
        while self.running():
            if cls == "interactive":
                texts = [sentence(rng, rng.randrange(3, 12))]
            else:
                texts = [sentence(rng, rng.randrange(30, 200)) for _ in range(args.bulk_texts)]
            start = time.perf_counter()
            try:
                async with session.post(url, json={"input": texts}) as response:
                    await response.read()
                    if response.status == 200:
                        stats.ok(time.perf_counter() - start, len(texts))
                    else:
                        stats.errors[f"HTTP {response.status}"] += 1
            except (aiohttp.ClientError, TimeoutError) as error:
                stats.errors[type(error).__name__] += 1

    async def rest_watch(self, session: aiohttp.ClientSession) -> None:
        url = f"{self.args.http_url}/_elser/deployments/{self.args.inference_id}/_stats"
        while self.running():
            async with session.get(url) as response:
                await response.read()
                if response.status == 200:
                    self.stats["watch"].events += 1
                else:
                    self.stats["watch"].errors[f"HTTP {response.status}"] += 1
            await asyncio.sleep(1.0)

    # --- run ----------------------------------------------------------------------------------------------

    def split(self) -> tuple[int, int, int]:
        weights = [float(w) for w in self.args.mix.split(":")]
        total = sum(weights)
        counts = [round(self.args.concurrency * w / total) for w in weights]
        return counts[0], counts[1], counts[2]

    async def run(self) -> float:
        args = self.args
        async with AsyncElserClient(args.target) as client:
            try:
                await client.get_endpoint(args.inference_id)
            except NotFound:
                await client.put_endpoint(args.inference_id, timeout_s=120)
        n_interactive, n_bulk, n_watch = self.split()
        timeout = aiohttp.ClientTimeout(total=args.timeout)
        async with (
            grpc.aio.insecure_channel(args.target) as channel,
            aiohttp.ClientSession(timeout=timeout) as session,
        ):
            start = time.monotonic()
            self.stop_at = start + args.duration
            if args.protocol == "grpc":
                workers = [
                    *(self.grpc_interactive(channel, i) for i in range(n_interactive)),
                    *(self.grpc_bulk(channel, 1000 + i) for i in range(n_bulk)),
                    *(self.grpc_watch(channel) for _ in range(n_watch)),
                ]
            else:
                workers = [
                    *(self.rest_infer(session, i, "interactive") for i in range(n_interactive)),
                    *(self.rest_infer(session, 1000 + i, "bulk") for i in range(n_bulk)),
                    *(self.rest_watch(session) for _ in range(n_watch)),
                ]
            await asyncio.gather(*workers)
            return time.monotonic() - start

    def report(self, elapsed: float) -> dict[str, object]:
        out: dict[str, object] = {"protocol": self.args.protocol, "seconds": round(elapsed, 2)}
        for name, stats in self.stats.items():
            lat = sorted(stats.latencies_s)
            out[name] = {
                "requests": len(lat),
                "texts": stats.texts,
                "requests_per_s": round(len(lat) / elapsed, 1),
                "texts_per_s": round(stats.texts / elapsed, 1),
                "p50_ms": round(1000 * statistics.median(lat), 2) if lat else None,
                "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 2) if lat else None,
                "events": stats.events,
                "errors": dict(stats.errors),
            }
        return out


EXPECTED_UNDER_OVERLOAD = frozenset(
    {"OK", "200", "RESOURCE_EXHAUSTED", "429", "DEADLINE_EXCEEDED", "408"}  # the caller set every deadline
)


class Overload:
    """Open-loop overload at a multiple of the measured capacity, with search queries alongside."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bulk: Counter[str] = Counter()
        self.search: Counter[str] = Counter()
        self.search_latencies_s: list[float] = []
        self.sent = 0
        self.skipped = 0  # calls not sent because the client already had `max_outstanding` waiting

    async def calibrate(self, channel: grpc.aio.Channel) -> float:
        """Bulk texts/s the server sustains, closed loop (every worker waits for its answer)."""
        args, rng = self.args, random.Random(7)
        stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
        texts = 0
        stop = time.monotonic() + args.calibrate_s

        async def worker() -> None:
            nonlocal texts
            while time.monotonic() < stop:
                request = self.bulk_request(rng)
                await stub.Infer(request, timeout=max(60.0, args.timeout))
                texts += len(request.input)

        started = time.monotonic()
        # A few callers keep every allocation busy; more would only queue.
        await asyncio.gather(*(worker() for _ in range(4)))
        return texts / (time.monotonic() - started)

    def bulk_texts(self, rng: random.Random) -> list[str]:
        return [sentence(rng, rng.randrange(30, 200)) for _ in range(self.args.bulk_texts)]

    def bulk_request(self, rng: random.Random) -> inference_service_pb2.InferRequest:
        return inference_service_pb2.InferRequest(
            inference_id=self.args.inference_id,
            input=self.bulk_texts(rng),
            options=types_pb2.InferenceOptions(priority=types_pb2.PRIORITY_BULK),
        )

    async def grpc_bulk(
        self, stub: inference_service_pb2_grpc.InferenceServiceStub, rng: random.Random
    ) -> None:
        try:
            await stub.Infer(self.bulk_request(rng), timeout=self.args.timeout)
            self.bulk["OK"] += 1
        except grpc.aio.AioRpcError as error:
            self.bulk[error.code().name] += 1

    async def rest_bulk(self, session: aiohttp.ClientSession, rng: random.Random) -> None:
        args = self.args
        url = f"{args.http_url}/_inference/sparse_embedding/{args.inference_id}?timeout={int(args.timeout)}s"
        try:
            async with session.post(url, json={"input": self.bulk_texts(rng)}) as response:
                await response.read()
                self.bulk[str(response.status)] += 1
        except (aiohttp.ClientError, TimeoutError) as error:
            self.bulk[type(error).__name__] += 1

    async def searches(
        self,
        stub: inference_service_pb2_grpc.InferenceServiceStub,
        session: aiohttp.ClientSession,
        stop: float,
    ) -> None:
        args, rng = self.args, random.Random(11)
        url = f"{args.http_url}/_inference/{args.inference_id}?timeout={int(args.timeout)}s"
        pending: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            text = sentence(rng, rng.randrange(3, 12))
            started = time.perf_counter()
            code = "OK"
            try:
                if i % 2 == 0:
                    request = inference_service_pb2.InferRequest(
                        inference_id=args.inference_id,
                        input=[text],
                        options=types_pb2.InferenceOptions(priority=types_pb2.PRIORITY_INTERACTIVE),
                    )
                    await stub.Infer(request, timeout=args.timeout)
                else:
                    async with session.post(url, json={"input": text, "input_type": "search"}) as response:
                        await response.read()
                        code = "OK" if response.status == 200 else str(response.status)
            except grpc.aio.AioRpcError as error:
                code = error.code().name
            except (aiohttp.ClientError, TimeoutError) as error:
                code = type(error).__name__
            self.search[code] += 1
            if code == "OK":
                self.search_latencies_s.append(time.perf_counter() - started)

        i = 0
        next_at = time.monotonic()
        while next_at < stop:
            task = asyncio.create_task(one(i))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
            next_at += 1.0 / args.search_rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*pending)

    async def run(self) -> dict[str, object]:
        args = self.args
        async with AsyncElserClient(args.target) as client:
            try:
                await client.get_endpoint(args.inference_id)
            except NotFound:
                await client.put_endpoint(args.inference_id, timeout_s=120)
        timeout = aiohttp.ClientTimeout(total=args.timeout + 5)  # the server's 408 comes first
        connector = aiohttp.TCPConnector(limit=args.max_outstanding)
        async with (
            grpc.aio.insecure_channel(args.target) as channel,
            aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
        ):
            stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
            capacity = await self.calibrate(channel)
            calls_per_s = args.overload * capacity / args.bulk_texts
            rng = random.Random(3)
            outstanding: set[asyncio.Task[None]] = set()
            start = time.monotonic()
            stop = start + args.duration
            searcher = asyncio.create_task(self.searches(stub, session, stop))
            next_at = start
            while next_at < stop:
                if len(outstanding) < args.max_outstanding:
                    call = self.grpc_bulk(stub, rng) if self.sent % 2 == 0 else self.rest_bulk(session, rng)
                    task = asyncio.create_task(call)
                    outstanding.add(task)
                    task.add_done_callback(outstanding.discard)
                    self.sent += 1
                else:
                    self.skipped += 1
                next_at += 1.0 / calls_per_s
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await searcher
            await asyncio.gather(*outstanding)
            elapsed = time.monotonic() - start
        lat = sorted(self.search_latencies_s)
        unexpected = {
            f"{cls} {code}": n
            for cls, counts in (("bulk", self.bulk), ("search", self.search))
            for code, n in counts.items()
            if code not in EXPECTED_UNDER_OVERLOAD
        }
        return {
            "capacity_texts_per_s": round(capacity, 1),
            "offered_texts_per_s": round(calls_per_s * args.bulk_texts, 1),
            "seconds": round(elapsed, 1),
            "bulk_calls_sent": self.sent,
            "bulk_calls_not_sent_client_full": self.skipped,
            "bulk": dict(self.bulk),
            "search": dict(self.search),
            "search_p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
            "search_p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1) if lat else None,
            "unexpected": unexpected,
        }


def rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def churn(args: argparse.Namespace) -> None:
    """PUT and DELETE distinct endpoints (2 KB ids) `args.churn` times; the server's RSS every tenth of the run."""
    body = {
        "service": "elasticsearch",
        "service_settings": {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1},
    }
    every = max(1, args.churn // 10)
    start = time.monotonic()
    samples = [rss_mib(args.server_pid)] if args.server_pid else []
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(args.http_url, timeout=timeout) as session:
        for i in range(args.churn):
            inference_id = f"churn-{i}-" + "x" * 2000
            async with session.put(f"/_inference/sparse_embedding/{inference_id}", json=body) as response:
                assert response.status == 200, await response.text()
            async with session.delete(f"/_inference/{inference_id}") as response:
                assert response.status == 200, await response.text()
            if args.server_pid and (i + 1) % every == 0:
                samples.append(rss_mib(args.server_pid))
    elapsed = time.monotonic() - start
    print(f"{args.churn} PUT/DELETE cycles in {elapsed:.0f}s ({elapsed / args.churn * 1000:.0f} ms each)")
    if samples:
        print(f"server RSS (MiB) at start and every {every} cycles: {samples}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="gRPC host:port")
    parser.add_argument("--http-url", default="http://127.0.0.1:9200", help="REST shim base URL")
    parser.add_argument("--protocol", choices=("grpc", "rest"), default="grpc")
    parser.add_argument("--concurrency", type=int, default=16, help="workers in all, split by --mix")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--mix", default="8:2:1", help="interactive:bulk:watchers ratio of the workers")
    parser.add_argument("--inference-id", default="load-test", help="endpoint to use (created if missing)")
    parser.add_argument("--bulk-texts", type=int, default=16, help="texts per bulk message/request")
    parser.add_argument("--stream-messages", type=int, default=32, help="messages per InferStream call")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-call deadline in seconds")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--overload", type=float, default=0.0, help="offer this multiple of the measured capacity (see above)"
    )
    parser.add_argument("--calibrate-s", type=float, default=15.0, help="overload: capacity measurement time")
    parser.add_argument("--search-rate", type=float, default=20.0, help="overload: search queries per second")
    parser.add_argument(
        "--max-outstanding",
        type=int,
        default=4000,
        help="overload: bulk calls the client keeps waiting at most",
    )
    parser.add_argument(
        "--churn", type=int, default=0, help="run this many PUT/DELETE cycles instead of load"
    )
    parser.add_argument("--server-pid", type=int, default=0, help="with --churn: report this process's RSS")
    args = parser.parse_args()
    if args.overload:
        print(json.dumps(asyncio.run(Overload(args).run()), indent=2))
        return
    if args.churn:
        asyncio.run(churn(args))
        return
    load = Load(args)
    report = load.report(asyncio.run(load.run()))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.protocol} for {report['seconds']}s, concurrency {args.concurrency}, mix {args.mix}")
    print(f"{'class':<12} {'requests':>9} {'req/s':>8} {'texts/s':>9} {'p50 ms':>8} {'p99 ms':>8}  errors")
    for name in ("interactive", "bulk", "watch"):
        row = report[name]
        assert isinstance(row, dict)
        if name == "watch":
            print(f"{name:<12} {'events: ' + str(row['events']):>37}  {'':>8}  {row['errors'] or '-'}")
            continue
        print(
            f"{name:<12} {row['requests']:>9} {row['requests_per_s']:>8} {row['texts_per_s']:>9} "
            f"{row['p50_ms']!s:>8} {row['p99_ms']!s:>8}  {row['errors'] or '-'}"
        )


if __name__ == "__main__":
    main()
