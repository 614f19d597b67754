"""Hostile values against a real server process: each is the caller's error in ES's words (4xx /
INVALID_ARGUMENT), never 500 / INTERNAL / UNKNOWN, and none stalls the process."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import aiohttp
import grpc
import pytest
from elser.v1 import endpoint_service_pb2, endpoint_service_pb2_grpc, inference_service_pb2, types_pb2
from elser.v1 import inference_service_pb2_grpc as is_grpc
from elser_client import ElserClient
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpcdetails import rich
from serverprocess import ServerFactory
from yarl import URL

HUGE = "1" + "0" * 400 + "s"  # beyond a Java long, and beyond a double once multiplied
HUGER = "1" + "0" * 5000 + "s"  # past the 4,300 digits Python's int() takes
SETTINGS = {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1}
PUT_BODY = {"service": "elasticsearch", "service_settings": SETTINGS}


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: object = None
) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    async with session.request(method, URL(url, encoded=True), data=data, headers=headers) as response:
        return response.status, await response.json(content_type=None)


def fraction_error(raw: str) -> str:
    return f"failed to parse [{raw}], fractional time values are not supported"


async def test_time_values_beyond_long_and_float_are_400_everywhere(start_server: ServerFactory) -> None:
    server = start_server()
    base = server.base_url
    with ElserClient(server.target) as client:
        client.put_endpoint("tv")
    async with aiohttp.ClientSession() as session:
        for raw in (HUGE, HUGER, "9223372036854775808ms", "1e400s", "-" + HUGE):
            expected = fraction_error(raw)
            attempts = [
                ("POST", f"{base}/_inference/tv?timeout={raw}", {"input": "x"}),
                ("POST", f"{base}/_inference/tv", {"input": "x", "timeout": raw}),
                ("POST", f"{base}/_elser/chunked/tv?timeout={raw}", {"input": "x"}),
                ("POST", f"{base}/_elser/chunked/tv", {"input": "x", "timeout": raw}),
                ("PUT", f"{base}/_inference/sparse_embedding/tv2?timeout={raw}", PUT_BODY),
                (
                    "PUT",
                    f"{base}/_inference/tv/_update?timeout={raw}",
                    {"service_settings": {"num_allocations": 1}},
                ),
            ]
            for method, url, body in attempts:
                status, payload = await call(session, method, url, body)
                assert (status, payload["error"]["type"]) == (400, "illegal_argument_exception"), (
                    url,
                    payload,
                )
                assert payload["error"]["reason"] == expected
        # The largest value ES takes is taken: Long.MAX_VALUE days.
        status, _ = await call(
            session, "POST", f"{base}/_inference/tv?timeout=9223372036854775807d", {"input": "x"}
        )
        assert status == 200
        # Non-ASCII digits: Java reads Unicode decimal digits (٣ is 3), not superscripts.
        status, _ = await call(session, "POST", f"{base}/_inference/tv?timeout=%D9%A3s", {"input": "x"})
        assert status == 200
        status, payload = await call(session, "POST", f"{base}/_inference/tv?timeout=%C2%B2s", {"input": "x"})
        assert (status, payload["error"]["reason"]) == (400, "failed to parse [²s]")
    assert "Traceback" not in server.output()


async def test_top_n_with_non_ascii_digits_is_a_parse_error(start_server: ServerFactory) -> None:
    server = start_server()
    with ElserClient(server.target) as client:
        client.put_endpoint("topn")
    async with aiohttp.ClientSession() as session:
        for value in ("²", "٣", "1" + "0" * 5000, "NaN", "1e400"):
            status, payload = await call(
                session, "POST", f"{server.base_url}/_inference/topn", {"input": "x", "top_n": value}
            )
            assert status == 400, payload
            assert payload["error"]["type"] == "x_content_parse_exception"
            assert payload["error"]["reason"].endswith("failed to parse field [top_n]")
    assert "Traceback" not in server.output()


def struct_with(value: float) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update({"nested": {"list": [1, value]}})
    return struct


async def test_non_finite_numbers_in_task_settings_are_invalid_argument(start_server: ServerFactory) -> None:
    server = start_server()
    with ElserClient(server.target) as client:
        client.put_endpoint("ts")
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = endpoint_service_pb2_grpc.EndpointServiceStub(channel)
        settings = types_pb2.ServiceSettings(model_id=".elser_model_2", num_allocations=1, num_threads=1)
        for value, token in ((math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity")):
            config = types_pb2.EndpointConfig(
                service="elasticsearch", service_settings=settings, task_settings=struct_with(value)
            )
            put = endpoint_service_pb2.PutEndpointRequest(
                inference_id="ts2", task_type=types_pb2.TASK_TYPE_SPARSE_EMBEDDING, endpoint=config
            )
            update = endpoint_service_pb2.UpdateEndpointRequest(
                inference_id="ts", endpoint=types_pb2.EndpointConfig(task_settings=struct_with(value))
            )
            for rpc, request in ((stub.PutEndpoint, put), (stub.UpdateEndpoint, update)):
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await rpc(request, timeout=30)
                assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
                assert error.value.details() == "Failed to parse content to map"
                (violation,) = rich(error.value)["BadRequest"].field_violations
                assert violation.field == "task_settings.nested.list[1]"
                assert violation.description.startswith(f"Non-standard token '{token}'")


@pytest.mark.slow
async def test_huge_inference_ids_get_a_deliverable_error(start_server: ServerFactory) -> None:
    server = start_server(ELSER_MAX_REQUEST_BYTES=str(8 << 20))
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = is_grpc.InferenceServiceStub(channel)
        short = "gone"
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Infer(inference_service_pb2.InferRequest(inference_id=short, input=["x"]), timeout=30)
        assert error.value.details() == f"Inference endpoint not found [{short}]"  # ES's text, whole
        for size in (4 << 10, 64 << 10, 4 << 20):
            inference_id = "a" * size
            request = inference_service_pb2.InferRequest(inference_id=inference_id, input=["x"])
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await stub.Infer(request, timeout=30)
            assert error.value.code() is grpc.StatusCode.NOT_FOUND, error.value.details()
            details = error.value.details()
            assert details.startswith("Inference endpoint not found [aaaa") and details.endswith("…")
            assert len(details.encode()) <= 1024
            resource = rich(error.value)["ResourceInfo"]
            assert len(resource.resource_name.encode()) <= 512


async def test_malformed_bytes_to_health_and_reflection_are_invalid_argument(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    junk = b"\xff\xff\xff\xff"
    async with grpc.aio.insecure_channel(server.target) as channel:
        calls = [
            channel.unary_unary("/grpc.health.v1.Health/Check")(junk, timeout=10),
            channel.unary_stream("/grpc.health.v1.Health/Watch")(junk, timeout=10),
            channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")(
                iter([junk]), timeout=10
            ),
        ]
        for rpc in calls:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                if isinstance(rpc, grpc.aio.UnaryUnaryCall):
                    await rpc
                else:
                    async for _ in rpc:
                        pass
            assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert error.value.details().startswith("Malformed request message")
        # And they still serve well-formed requests.
        health = health_pb2_grpc.HealthStub(channel)
        response = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    assert "Traceback" not in server.output()


async def test_filter_path_with_many_stars_does_not_stall_anything(start_server: ServerFactory) -> None:
    """Eleven stars took 5.3 s of the event loop with a backtracking regex, each more ×3.5: these would take
    days. Health checks run throughout with a short deadline."""
    server = start_server()
    with ElserClient(server.target) as client:
        for i in range(4):
            client.put_endpoint(f"fp-{i}")
    stop = asyncio.Event()
    slowest = 0.0

    async def probe() -> None:
        nonlocal slowest
        async with grpc.aio.insecure_channel(server.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while not stop.is_set():
                started = time.monotonic()
                await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                slowest = max(slowest, time.monotonic() - started)
                await asyncio.sleep(0.01)

    prober = asyncio.create_task(probe())
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            for expression in ("**." + "*" * 40 + "Z", "*" * 2000 + "Z", ",".join(["**.*a*b*c*d*e"] * 12)):
                status, payload = await call(
                    session, "GET", f"{server.base_url}/_inference?filter_path={expression}"
                )
                assert (status, payload) == (200, {})
            status, payload = await call(session, "GET", f"{server.base_url}/_inference?filter_path=**.*_id")
            assert status == 200 and len(payload["endpoints"]) == 5
            too_many = ",".join(["a.b.c.d"] * 17)
            status, payload = await call(
                session, "GET", f"{server.base_url}/_inference?filter_path={too_many}"
            )
            assert status == 400
            assert payload["error"]["reason"].startswith("[filter_path] has more than [64] path segments")
    finally:
        stop.set()
        await prober  # a health check that failed or timed out fails the test here
    print(f"slowest health check meanwhile: {slowest * 1000:.1f} ms")
