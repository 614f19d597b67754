"""Overload against a real server process looks like ES's: RESOURCE_EXHAUSTED / 429 with a retry hint,
whatever the size of the burst, and calls whose deadline passes end as DEADLINE_EXCEEDED and give their place
back. (The long 10× overload figures are `bench/load.py --overload`.)"""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import grpc
import pytest
from elser.v1 import inference_service_pb2, inference_service_pb2_grpc
from elser_client import ElserClient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpcdetails import rich
from serverprocess import ServerFactory
from support import eventually_async

TEXT = " ".join(["overload and bursts of sparse embedding queries"] * 6)


def request(inference_id: str) -> inference_service_pb2.InferRequest:
    return inference_service_pb2.InferRequest(inference_id=inference_id, input=[TEXT])


async def burst(target: str, inference_id: str, size: int, timeout_s: float = 120) -> Counter[str]:
    """`size` Infer calls at once on one channel (one HTTP/2 connection)."""
    outcomes: Counter[str] = Counter()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
        await stub.Infer(request(inference_id), timeout=60)  # the connection is up before the burst

        async def one() -> None:
            try:
                await stub.Infer(request(inference_id), timeout=timeout_s)
                outcomes["OK"] += 1
            except grpc.aio.AioRpcError as error:
                outcomes[error.code().name] += 1
                if error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    assert "RetryInfo" in rich(error), error.details()

        await asyncio.gather(*(one() for _ in range(size)))
    return outcomes


def grpc_codes(metrics: str, method: str) -> Counter[str]:
    codes: Counter[str] = Counter()
    pattern = rf'elser_grpc_requests_total\{{code="(\w+)",method="{re.escape(method)}"\}} (\S+)'
    for code, value in re.findall(pattern, metrics):
        codes[code] += int(float(value))
    return codes


@pytest.mark.slow
async def test_a_burst_larger_than_any_stream_or_pending_limit_is_resource_exhausted(
    start_server: ServerFactory,
) -> None:
    """With the former default of 100 streams per connection, calls past the 100th got UNAVAILABLE
    (RST_STREAM REFUSED_STREAM); past gRPC's 1,000 pending calls, CANCELLED."""
    # The burst's single short texts are search-sized: both lanes of the queue are tiny.
    server = start_server(ELSER_QUEUE_CAPACITY="2", ELSER_INTERACTIVE_QUEUE_CAPACITY="2")
    with ElserClient(server.target) as client:
        client.put_endpoint("burst")
    outcomes = await burst(server.target, "burst", 1500)
    print(dict(outcomes))
    assert set(outcomes) <= {"OK", "RESOURCE_EXHAUSTED"}, outcomes
    assert outcomes["OK"] > 0 and outcomes["RESOURCE_EXHAUSTED"] > 0


async def test_the_call_limit_answers_resource_exhausted_and_spares_health_checks(
    start_server: ServerFactory,
) -> None:
    server = start_server(ELSER_GRPC_MAX_CONCURRENT_CALLS="8")
    with ElserClient(server.target) as client:
        client.put_endpoint("limited")
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        # Watches hold their place as long as they run: eight fill the limit.
        watches = [
            channel.unary_stream("/elser.v1.EndpointService/WatchDeployment")(b"\x0a\x07limited", timeout=60)
            for _ in range(8)
        ]
        for watch in watches:
            await watch.read()  # each has its snapshot, so each holds a place
        try:
            await stub.Infer(request("limited"), timeout=30)
            raise AssertionError("a ninth call was admitted")
        except grpc.aio.AioRpcError as error:
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error.details() == (
                "rejected execution of [/elser.v1.InferenceService/Infer]: [8] calls are in flight already"
            )
            details = rich(error)
            assert details["ErrorInfo"].metadata["http_status"] == "429"
            assert details["ErrorInfo"].metadata["es_type"] == "es_rejected_execution_exception"
            assert details["RetryInfo"].retry_delay.seconds >= 1
            assert dict(error.trailing_metadata() or ())["grpc-retry-pushback-ms"] == "1000"
        response = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        for watch in watches:
            watch.cancel()
        # Cancelled calls give their places back.
        await eventually_async(
            lambda: "elser_grpc_calls_in_flight 0.0" in server.metrics(), 30, "the places given back"
        )
        await stub.Infer(request("limited"), timeout=30)
    assert 'elser_rejections_total{deployment="",reason="calls_in_flight"} 1.0' in server.metrics()


async def test_calls_whose_deadline_passes_are_deadline_exceeded_and_free_their_place(
    start_server: ServerFactory,
) -> None:
    """Deadlines that pass while the server is busy: the core sometimes notices a moment before grpc, whose
    call has ended already. Those were counted as UNKNOWN with an ERROR traceback."""
    server = start_server(ELSER_GRPC_MAX_CONCURRENT_CALLS="64", ELSER_QUEUE_CAPACITY="100000")
    with ElserClient(server.target) as client:
        client.put_endpoint("expiring")
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
        await stub.Infer(request("expiring"), timeout=60)
        outcomes: Counter[str] = Counter()

        async def one(i: int) -> None:
            try:
                await stub.Infer(request("expiring"), timeout=0.005 + 0.1 * (i % 20) / 20)
                outcomes["OK"] += 1
            except grpc.aio.AioRpcError as error:
                outcomes[error.code().name] += 1

        for _ in range(10):
            await asyncio.gather(*(one(i) for i in range(60)))
        assert set(outcomes) <= {"OK", "DEADLINE_EXCEEDED"}, outcomes
        # Every expired call gave its place back: the limit admits 64 calls at once again.
        results = await asyncio.gather(*(stub.Infer(request("expiring"), timeout=120) for _ in range(64)))
        assert len(results) == 64
    codes = grpc_codes(server.metrics(), "/elser.v1.InferenceService/Infer")
    print(dict(outcomes), dict(codes))
    assert set(codes) <= {"OK", "DEADLINE_EXCEEDED", "CANCELLED"}, codes
    assert codes["DEADLINE_EXCEEDED"] > 0
    output = server.output()
    assert "ERROR" not in output and "Traceback" not in output, output[-3000:]
