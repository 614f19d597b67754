"""Request ids (taken, generated, echoed, in log records of the core) and what the logs may contain."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import aiohttp
import grpc
import pytest
from elser.v1 import endpoint_service_pb2 as es_pb2
from elser.v1 import endpoint_service_pb2_grpc as es_grpc
from elser.v1 import inference_service_pb2 as is_pb2
from elser.v1 import inference_service_pb2_grpc as is_grpc
from elser.v1 import types_pb2
from elser_client import endpoint_config
from serverprocess import ServerFactory
from support import PUT_BODY, running, server_settings

GENERATED = re.compile(r"[0-9a-f]{32}")
SECRET_TEXT = "zebra-marmalade-secret"


async def test_rest_request_ids(tiny_repository: Path, tmp_path: Path) -> None:
    async with (
        running(server_settings(tiny_repository, tmp_path)) as service,
        aiohttp.ClientSession(f"http://127.0.0.1:{service.http_port}") as http,
    ):
        async with http.get("/", headers={"X-Request-Id": "req-1", "X-Opaque-Id": "opaque-1"}) as response:
            assert response.headers["X-Request-Id"] == "req-1"
            assert response.headers["X-Opaque-Id"] == "opaque-1"
        async with http.get("/_inference/missing", headers={"X-Opaque-Id": "opaque-2"}) as response:
            assert response.status == 404  # errors carry the id too
            assert response.headers["X-Request-Id"] == "opaque-2"
        async with http.get("/") as response:
            assert GENERATED.fullmatch(response.headers["X-Request-Id"])
        async with http.get("/", headers={"X-Request-Id": "bad\u00e9id"}) as response:
            assert GENERATED.fullmatch(response.headers["X-Request-Id"])  # not printable ASCII: replaced


async def test_grpc_request_ids(tiny_repository: Path, tmp_path: Path) -> None:
    async with (
        running(server_settings(tiny_repository, tmp_path)) as service,
        grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel,
    ):
        stub = es_grpc.EndpointServiceStub(channel)
        call = stub.ListEndpoints(es_pb2.ListEndpointsRequest(), metadata=(("x-request-id", "grpc-1"),))
        await call
        assert dict(await call.initial_metadata())["x-request-id"] == "grpc-1"

        failing = stub.GetEndpoint(
            es_pb2.GetEndpointRequest(inference_id="missing"), metadata=(("x-opaque-id", "grpc-2"),)
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await failing
        echoed = dict(await failing.initial_metadata())
        assert (echoed["x-request-id"], echoed["x-opaque-id"]) == ("grpc-2", "grpc-2")

        plain = stub.ListEndpoints(es_pb2.ListEndpointsRequest())
        await plain
        assert GENERATED.fullmatch(str(dict(await plain.initial_metadata())["x-request-id"]))


def test_json_logs_carry_request_ids_into_the_core(start_server: ServerFactory) -> None:
    server = start_server(ELSER_LOG_FORMAT="json", ELSER_DRAIN_S="0")
    with grpc.insecure_channel(server.target) as channel:
        stub = es_grpc.EndpointServiceStub(channel)
        request = es_pb2.PutEndpointRequest(
            inference_id="logged",
            task_type=types_pb2.TASK_TYPE_SPARSE_EMBEDDING,
            endpoint=endpoint_config(),
        )
        stub.PutEndpoint(request, metadata=(("x-request-id", "put-request-7"),), timeout=60)
        is_grpc.InferenceServiceStub(channel).Infer(
            is_pb2.InferRequest(inference_id="logged", input=[SECRET_TEXT]), timeout=30
        )
    assert server.terminate() == 0
    output = server.output()
    records = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert records, "no log lines"
    assert all({"timestamp", "level", "logger", "message"} <= r.keys() for r in records)
    tagged = [r for r in records if r.get("request_id") == "put-request-7"]
    access = [r for r in tagged if r["logger"].endswith("interceptors")]
    assert access and access[0]["status"] == "OK" and access[0]["rpc_method"].endswith("/PutEndpoint")
    # The deployment the PUT started logs from the core under the PUT's request id.
    assert any(r["logger"].startswith("elser_server.core") for r in tagged)
    assert SECRET_TEXT not in output


@pytest.mark.parametrize("log_bodies", [False, True])
async def test_input_texts_are_logged_only_when_asked(
    tiny_repository: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, log_bodies: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = server_settings(tiny_repository, tmp_path, log_bodies=log_bodies)
    async with (
        running(settings) as service,
        aiohttp.ClientSession(f"http://127.0.0.1:{service.http_port}") as http,
        grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel,
    ):
        async with http.put("/_inference/sparse_embedding/e", json=PUT_BODY) as response:
            assert response.status == 200
        async with http.post("/_inference/e", json={"input": f"rest {SECRET_TEXT}"}) as response:
            assert response.status == 200
        await is_grpc.InferenceServiceStub(channel).Infer(
            is_pb2.InferRequest(inference_id="e", input=[f"grpc {SECRET_TEXT}"])
        )
    assert (f"rest {SECRET_TEXT}" in caplog.text) is log_bodies
    assert (f"grpc {SECRET_TEXT}" in caplog.text) is log_bodies
