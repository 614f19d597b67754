"""Sustained mixed load against a server process, and cancellations/deadlines under load.

Bounded in count and time; ELSER_SOAK_S lengthens the steady phase for a soak run (e.g. ELSER_SOAK_S=600)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter

import aiohttp
import grpc
import pytest
from elser.v1 import (
    endpoint_service_pb2,
    endpoint_service_pb2_grpc,
    inference_service_pb2,
    inference_service_pb2_grpc,
    types_pb2,
)
from elser_client import ElserClient
from google.rpc import code_pb2
from serverprocess import ServerFactory
from support import eventually_async

STEADY_S = float(os.environ.get("ELSER_SOAK_S", "8"))
MAX_CALLS_PER_WORKER = 100_000  # a hard bound besides the clock
RSS_GROWTH_LIMIT_KIB = 64 * 1024  # generous: allocator arenas settle, the model is tiny
OVERLOAD = {grpc.StatusCode.RESOURCE_EXHAUSTED.name, "429"}
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dogs",
    "while",
    "search",
    "engines",
    "rank",
    "sparse",
    "vectors",
]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


class Mix:
    """Counts outcomes of every call by class and code."""

    def __init__(self) -> None:
        self.outcomes: Counter[tuple[str, str]] = Counter()

    def errors(self) -> dict[tuple[str, str], int]:
        return {k: v for k, v in self.outcomes.items() if k[1] not in ("OK", "200", *OVERLOAD)}


async def interactive(channel: grpc.aio.Channel, mix: Mix, stop: float, seed: int) -> None:
    rng = random.Random(seed)
    stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
    for _ in range(MAX_CALLS_PER_WORKER):
        if time.monotonic() > stop:
            return
        request = inference_service_pb2.InferRequest(
            inference_id="load", input=[sentence(rng, rng.randrange(2, 12))]
        )
        try:
            await stub.Infer(request, timeout=30)
            mix.outcomes["interactive", "OK"] += 1
        except grpc.aio.AioRpcError as error:
            mix.outcomes["interactive", error.code().name] += 1


async def bulk(channel: grpc.aio.Channel, mix: Mix, stop: float, seed: int) -> None:
    rng = random.Random(seed)
    stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
    for _ in range(MAX_CALLS_PER_WORKER):
        if time.monotonic() > stop:
            return
        requests = [
            inference_service_pb2.InferStreamRequest(
                correlation_id=str(i),
                inference_id="load",
                input=[sentence(rng, rng.randrange(20, 200)) for _ in range(8)],
                options=types_pb2.InferenceOptions(priority=types_pb2.PRIORITY_BULK),
            )
            for i in range(16)
        ]
        try:
            async for response in stub.InferStream(iter(requests), timeout=60):
                code = code_pb2.Code.Name(response.error.code)  # OK when no error is set
                mix.outcomes["bulk", code] += 1
        except grpc.aio.AioRpcError as error:
            mix.outcomes["bulk", error.code().name] += 1


async def watcher(channel: grpc.aio.Channel, mix: Mix, stop: float) -> None:
    stub = endpoint_service_pb2_grpc.EndpointServiceStub(channel)
    call = stub.WatchDeployment(endpoint_service_pb2.WatchDeploymentRequest(inference_id="load"))
    try:
        async with asyncio.timeout(max(0.0, stop - time.monotonic())):
            async for _ in call:
                mix.outcomes["watch", "OK"] += 1
    except TimeoutError:
        call.cancel()  # watches never end by themselves: the end of the steady phase ends them
    except grpc.aio.AioRpcError as error:
        mix.outcomes["watch", error.code().name] += 1


async def rest(base_url: str, mix: Mix, stop: float, seed: int) -> None:
    rng = random.Random(seed)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for i in range(MAX_CALLS_PER_WORKER):
            if time.monotonic() > stop:
                return
            if i % 5 == 4:
                request = session.get(f"{base_url}/_inference/load")
            else:
                body = {"input": [sentence(rng, 8), sentence(rng, 30)]}
                request = session.post(f"{base_url}/_inference/sparse_embedding/load", json=body)
            async with request as response:
                await response.read()
                mix.outcomes["rest", str(response.status)] += 1


async def run_mix(target: str, base_url: str, seconds: float, seed: int) -> Mix:
    mix = Mix()
    stop = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.gather(
            *(interactive(channel, mix, stop, seed + i) for i in range(6)),
            *(bulk(channel, mix, stop, seed + 100 + i) for i in range(2)),
            *(watcher(channel, mix, stop) for _ in range(4)),
            *(rest(base_url, mix, stop, seed + 200 + i) for i in range(2)),
        )
    return mix


@pytest.mark.slow
async def test_sustained_mixed_load_has_no_errors_and_flat_memory(start_server: ServerFactory) -> None:
    # A small queue so that overload rejections can happen: they are the only errors allowed.
    server = start_server(ELSER_QUEUE_CAPACITY="512")
    with ElserClient(server.target) as client:
        client.put_endpoint("load")
    warm = await run_mix(server.target, server.base_url, 2, seed=1)  # arenas and caches reach their size
    assert not warm.errors()
    rss_start = server.rss_kib()
    steady = await run_mix(server.target, server.base_url, STEADY_S, seed=2)
    rss_end = server.rss_kib()
    print(f"outcomes: {dict(steady.outcomes)}; RSS {rss_start} → {rss_end} KiB")
    assert not steady.errors(), steady.errors()
    for cls in ("interactive", "bulk", "rest"):
        assert steady.outcomes[cls, "OK"] + steady.outcomes[cls, "200"] > 0, cls
    assert steady.outcomes["watch", "OK"] >= 4  # every watcher got at least its snapshot
    assert rss_end - rss_start < RSS_GROWTH_LIMIT_KIB
    assert server.alive()
    assert server.stats("load").queued == 0


@pytest.mark.slow
async def test_cancelled_and_expired_calls_free_their_work(start_server: ServerFactory) -> None:
    server = start_server(ELSER_MAX_INPUTS_PER_REQUEST="256")
    with ElserClient(server.target) as client:
        client.put_endpoint("cancel")
    rng = random.Random(3)
    texts = [sentence(rng, 500) for _ in range(256)]  # 256 full-window texts per call
    submitted = 0
    outcomes: Counter[str] = Counter()
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
        stats_of = endpoint_service_pb2_grpc.EndpointServiceStub(channel).GetDeploymentStats
        stats_request = endpoint_service_pb2.GetDeploymentStatsRequest(inference_id="cancel")

        async def queued() -> int:
            return int((await stats_of(stats_request, timeout=5)).stats.queued)

        async def holds_a_call() -> bool:
            return await queued() >= len(texts)

        async def drained() -> bool:
            return await queued() == 0

        request = inference_service_pb2.InferRequest(inference_id="cancel", input=texts)
        calls = []
        for i in range(24):
            # Half expire by deadline, half are cancelled by the client after queueing.
            calls.append(stub.Infer(request, timeout=0.5 if i % 2 else 60))
            submitted += len(texts)
        await eventually_async(holds_a_call, 60, "a whole call's texts in the queue")
        for i, call in enumerate(calls):
            if i % 2 == 0:
                call.cancel()
        for call in calls:
            try:
                await call
                outcomes["OK"] += 1
            except asyncio.CancelledError:
                outcomes["CANCELLED"] += 1
            except grpc.aio.AioRpcError as error:
                outcomes[error.code().name] += 1
        assert set(outcomes) <= {"OK", "CANCELLED", "DEADLINE_EXCEEDED"}, outcomes
        assert outcomes["CANCELLED"] + outcomes["DEADLINE_EXCEEDED"] > 0

        # The queue drains back to 0 without running the abandoned texts.
        await eventually_async(drained, 60, "the queue to drain")
    stats = server.stats("cancel")
    assert stats.inference_count < submitted, (stats.inference_count, submitted)
    with ElserClient(server.target) as client:
        assert len(client.infer("cancel", ["later requests are served"])) == 1
    assert server.stats("cancel").queued == 0
