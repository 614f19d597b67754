"""Overload and cancellation through a real grpc.aio server over the real core (issue 4): 10× the queue capacity
offered at once is refused only with RESOURCE_EXHAUSTED + RetryInfo, memory stays bounded, the service serves
normally afterwards; cancelled calls free their queued work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from elser.v1 import (
    endpoint_service_pb2,
    endpoint_service_pb2_grpc,
    inference_service_pb2,
    inference_service_pb2_grpc,
)
from elser_client import AsyncElserClient, ElserClientError, ResourceExhausted
from elser_client.client import endpoint_config
from elser_client.errors import error_from_rpc
from elser_server.transport.grpc.server import GrpcTransport
from support import eventually_async, make_core, make_slow_repository, server_settings

CAPACITY = 50
TEXT = " ".join(f"word{i % 53} token{i % 17}" for i in range(16))  # about 130 word pieces


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture(scope="module")
def slow_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_slow_repository(tmp_path_factory.mktemp("slow-model"))


@pytest.fixture
async def target(slow_repository: Path, tmp_path: Path) -> AsyncIterator[str]:
    # Single short texts are search-sized: both lanes get the same room, so the burst overflows whichever it fills.
    core = make_core(
        slow_repository,
        tmp_path,
        queue_capacity=CAPACITY,
        interactive_queue_capacity=CAPACITY,
        token_budget=1024,
        processors=1,
    )
    await core.start()
    # Unlimited streams per connection: the burst reaches the core's admission, whose answer is under test.
    transport = GrpcTransport(core, server_settings(data_dir=tmp_path, grpc_max_concurrent_streams=0))
    port = await transport.start()
    async with AsyncElserClient(f"127.0.0.1:{port}", timeout_s=60) as client:
        await client.put_endpoint("busy", endpoint_config(num_allocations=1, num_threads=1))
    yield f"127.0.0.1:{port}"
    await transport.stop(0)
    await core.close()


async def test_ten_times_capacity_only_resource_exhausted_then_recovers(target: str) -> None:
    # A plain channel (no retry policy): every rejection reaches the caller once, so rejections can be counted.
    async with grpc.aio.insecure_channel(target) as channel:
        infer = inference_service_pb2_grpc.InferenceServiceStub(channel).Infer

        async def call(text: str) -> inference_service_pb2.InferResponse | ElserClientError:
            try:
                response: inference_service_pb2.InferResponse = await infer(
                    inference_service_pb2.InferRequest(inference_id="busy", input=[text]), timeout=60
                )
            except grpc.aio.AioRpcError as error:
                return error_from_rpc(error)
            return response

        await call(TEXT)  # every lazy start is done before measuring
        before = rss_bytes()
        peak = before
        done = False

        async def sample() -> None:
            nonlocal peak
            while not done:
                peak = max(peak, rss_bytes())
                await asyncio.sleep(0.01)

        sampler = asyncio.create_task(sample())
        results = await asyncio.gather(*(call(f"{i} {TEXT}") for i in range(10 * CAPACITY)))
        done = True
        await sampler

        failures = [r for r in results if isinstance(r, ElserClientError)]
        assert failures, "10× the queue capacity at once should overflow the queue"
        assert all(isinstance(f, ResourceExhausted) for f in failures), {type(f).__name__ for f in failures}
        assert all(f.retry_delay is not None and f.retry_delay > 0 for f in failures)
        assert len(failures) < len(results), "the queue admits up to its capacity"
        # Rejected work never queues: memory grows by buffers and messages only, not with the offered load.
        assert peak - before < 200 << 20, f"RSS grew by {(peak - before) >> 20} MiB under overload"

        # Recovered: a normal call is served and nothing is left queued.
        served = await call("what is a dog")
        assert isinstance(served, inference_service_pb2.InferResponse)
        assert len(served.embeddings[0].token_ids) > 0
        stats = (
            await endpoint_service_pb2_grpc.EndpointServiceStub(channel).GetDeploymentStats(
                endpoint_service_pb2.GetDeploymentStatsRequest(inference_id="busy")
            )
        ).stats
        assert stats.queued == 0
        assert stats.rejected_count == len(failures)
        # Plus the PUT's validation inference, the warm-up call and the call just made.
        assert stats.inference_count == len(results) - len(failures) + 3


async def test_cancelled_calls_free_their_queued_work(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        infer = inference_service_pb2_grpc.InferenceServiceStub(channel).Infer
        stats_of = endpoint_service_pb2_grpc.EndpointServiceStub(channel).GetDeploymentStats
        request = endpoint_service_pb2.GetDeploymentStatsRequest(inference_id="busy")
        calls = [
            infer(inference_service_pb2.InferRequest(inference_id="busy", input=[f"{i} {TEXT}"] * 4))
            for i in range(CAPACITY // 4)
        ]

        async def queued() -> int:
            return int((await stats_of(request)).stats.queued)

        async def holds_the_work() -> bool:
            return await queued() >= CAPACITY // 2

        async def drained() -> bool:
            return await queued() == 0

        # Wait until the server holds the work, then walk away from every call.
        await eventually_async(holds_the_work, 60, "the calls' texts in the queue")
        for call in calls:
            call.cancel()
        cancelled = 0
        for call in calls:
            try:
                await call
            except asyncio.CancelledError:
                cancelled += 1
        assert cancelled > 0
        # The queue drains without running the abandoned texts: far fewer inferences than texts offered.
        await eventually_async(drained, 60, "the queue to drain")
        stats = (await stats_of(request)).stats
        assert stats.inference_count < 4 * len(calls)
        (embedding,) = (
            await infer(inference_service_pb2.InferRequest(inference_id="busy", input=["served after"]))
        ).embeddings
        assert len(embedding.token_ids) > 0
