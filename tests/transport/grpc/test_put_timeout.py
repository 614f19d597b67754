"""PutEndpoint over gRPC when the deployment cannot start within the caller's deadline: the server answers first,
with ES's 408 text, instead of the client's bare DEADLINE_EXCEEDED."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from elser.v1 import endpoint_service_pb2 as es_pb2
from elser.v1 import endpoint_service_pb2_grpc as es_grpc
from elser.v1 import types_pb2
from elser_client import endpoint_config
from elser_server.transport.grpc.server import GrpcTransport
from grpcdetails import rich
from serverprocess import SlowRepository
from support import make_core, server_settings


@pytest.fixture
async def slow_channel(tiny_repository: Path, tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    root = tmp_path / "served"
    shutil.copytree(tiny_repository, root)
    repository = SlowRepository(root, delay_s=0.5)  # the model file takes far longer than the deadline
    core = make_core(repository.url, tmp_path)
    await core.start()
    transport = GrpcTransport(core, server_settings(data_dir=tmp_path))
    port = await transport.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await transport.stop(0)
        await core.close()
        repository.close()


async def test_put_answers_es_timeout_before_the_callers_deadline(slow_channel: grpc.aio.Channel) -> None:
    stub = es_grpc.EndpointServiceStub(slow_channel)
    request = es_pb2.PutEndpointRequest(
        inference_id="slow",
        task_type=types_pb2.TASK_TYPE_SPARSE_EMBEDDING,
        endpoint=endpoint_config(),
    )
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.PutEndpoint(request, timeout=5)
    assert exc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert (exc.value.details() or "").startswith("Timed out after [")
    assert "waiting for model deployment to start" in (exc.value.details() or "")
    assert rich(exc.value)["ErrorInfo"].reason == "DEPLOYMENT_START_TIMEOUT"  # the server's own answer
