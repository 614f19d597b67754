"""Request limits over both transports, with clear errors; concurrent streams per gRPC connection."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import grpc
import pytest
from elser.v1 import endpoint_service_pb2 as es_pb2
from elser.v1 import endpoint_service_pb2_grpc as es_grpc
from elser.v1 import inference_service_pb2 as is_pb2
from elser.v1 import inference_service_pb2_grpc as is_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from support import running, server_settings

DEFAULT_ID = ".elser-2-elasticsearch"


@pytest.fixture
def settings_kwargs() -> dict[str, int]:
    return {"max_inputs_per_request": 2, "max_input_bytes": 10, "max_request_bytes": 2048}


async def test_limits_answer_clear_errors(
    tiny_repository: Path, tmp_path: Path, settings_kwargs: dict[str, int]
) -> None:
    settings = server_settings(tiny_repository, tmp_path, **settings_kwargs)
    async with (
        running(settings) as service,
        grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel,
        aiohttp.ClientSession(f"http://127.0.0.1:{service.http_port}") as http,
    ):
        stub = is_grpc.InferenceServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as too_many:
            await stub.Infer(is_pb2.InferRequest(inference_id=DEFAULT_ID, input=["a", "b", "c"]))
        assert too_many.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert (
            too_many.value.details()
            == "Validation Failed: 1: Too many inputs [3]: at most [2] are accepted per request;"
        )

        with pytest.raises(grpc.aio.AioRpcError) as too_long:
            await stub.Infer(is_pb2.InferRequest(inference_id=DEFAULT_ID, input=["short", "x" * 11]))
        assert too_long.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        status = rpc_status.from_call(too_long.value)
        assert status is not None
        bad_request = error_details_pb2.BadRequest()
        assert any(d.Unpack(bad_request) for d in status.details)
        assert [(v.field, v.description) for v in bad_request.field_violations] == [
            ("input[1]", "input [1] is [11] bytes, larger than the limit of [10] bytes")
        ]

        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            await stub.Infer(is_pb2.InferRequest(inference_id=DEFAULT_ID, input=["y" * 4096]))
        assert too_big.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in (too_big.value.details() or "")

        url = f"/_inference/sparse_embedding/{DEFAULT_ID}"
        async with http.post(url, json={"input": ["a", "b", "c"]}) as response:
            assert response.status == 400
            error = (await response.json())["error"]
            assert error["type"] == "action_request_validation_exception"
            assert (
                error["reason"]
                == "Validation Failed: 1: Too many inputs [3]: at most [2] are accepted per request;"
            )
        async with http.post(url, json={"input": "x" * 11}) as response:
            assert response.status == 400
            assert (await response.json())["error"]["reason"] == (
                "Validation Failed: 1: input [0] is [11] bytes, larger than the limit of [10] bytes;"
            )
        async with http.post(url, json={"input": "y" * 4096}) as response:
            assert response.status == 413


async def test_max_concurrent_streams_bounds_calls_per_connection(
    tiny_repository: Path, tmp_path: Path
) -> None:
    settings = server_settings(tiny_repository, tmp_path, grpc_max_concurrent_streams=1)
    async with (
        running(settings) as service,
        grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel,
    ):
        stub = es_grpc.EndpointServiceStub(channel)
        watch = stub.WatchDeployment(es_pb2.WatchDeploymentRequest(inference_id=DEFAULT_ID))
        await watch.read()  # the watch holds the connection's only stream from here on
        # The second call cannot get a stream while the watch is open, so it can only run out of time.
        with pytest.raises(grpc.aio.AioRpcError) as waited:
            await stub.ListEndpoints(es_pb2.ListEndpointsRequest(), timeout=0.5)
        assert waited.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        watch.cancel()
        listed = await stub.ListEndpoints(es_pb2.ListEndpointsRequest(), timeout=10)
        assert [e.inference_id for e in listed.endpoints] == [DEFAULT_ID]


async def test_response_size_limit_is_a_setting(tiny_repository: Path, tmp_path: Path) -> None:
    settings = server_settings(tiny_repository, tmp_path, max_response_bytes=4096)
    async with (
        running(settings) as service,
        grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel,
    ):
        stub = is_grpc.InferenceServiceStub(channel)
        small = await stub.Infer(is_pb2.InferRequest(inference_id=DEFAULT_ID, input=["a"]))
        assert len(small.embeddings) == 1
        many = is_pb2.InferRequest(inference_id=DEFAULT_ID, input=[f"text number {i}" for i in range(200)])
        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            await stub.Infer(many)
        assert too_big.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in (too_big.value.details() or "")
