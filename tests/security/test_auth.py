"""API-key authentication: the credential rules, then both transports of a running service."""

from __future__ import annotations

import base64
from pathlib import Path

import aiohttp
import grpc
import pytest
from elser.v1 import endpoint_service_pb2 as es_pb2
from elser.v1 import endpoint_service_pb2_grpc as es_grpc
from elser_server.core.errors import ElserError
from elser_server.security import ApiKeys, load_api_keys
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from support import running, server_settings

KEY = "k3y-from-file"
ENV_KEY = "second-key"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_keys_file_skips_comments_and_blank_lines_and_env_keys_add_up(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# ops keys\n\n  {KEY}  \n#old-key\nwith#hash\n", encoding="utf-8")
    assert load_api_keys(keys_file, f"{ENV_KEY}, third ,") == [KEY, "with#hash", ENV_KEY, "third"]
    assert load_api_keys(None, None) == []


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {KEY}",
        f"ApiKey {KEY}",
        f"apikey {_b64('some-id:' + KEY)}",
        f"ApiKey {_b64(KEY)}",
        f"ApiKey {_b64('id:joined')}",  # configured as the whole `id:joined`
    ],
)
def test_accepted_credentials(header: str) -> None:
    ApiKeys([KEY, "id:joined"]).check(header, "REST request [/]")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing authentication credentials for REST request [/x]"),
        ("  ", "missing authentication credentials for REST request [/x]"),
        (
            f"Basic {_b64('elastic:' + KEY)}",
            "unable to authenticate with provided credentials for REST request [/x]",
        ),
        ("Bearer", "unable to authenticate with provided credentials for REST request [/x]"),
        (f"Bearer {KEY}x", "unable to authenticate with provided credentials for REST request [/x]"),
        (
            f"Bearer {_b64('id:' + KEY)}",
            "unable to authenticate with provided credentials for REST request [/x]",
        ),
        (
            f"ApiKey {_b64('id:other')}",
            "unable to authenticate with provided credentials for REST request [/x]",
        ),
    ],
)
def test_refused_credentials(header: str | None, reason: str) -> None:
    with pytest.raises(ElserError) as refused:
        ApiKeys([KEY]).check(header, "REST request [/x]")
    assert refused.value.reason == reason
    assert (refused.value.http_status, refused.value.es_type) == (401, "security_exception")


def test_no_keys_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        ApiKeys([])


CHALLENGES = ['Bearer realm="security"', "ApiKey"]


def _security_error(reason: str) -> dict[str, object]:
    cause = {"type": "security_exception", "reason": reason, "header": {"WWW-Authenticate": CHALLENGES}}
    return {"error": {"root_cause": [cause], **cause}, "status": 401}


async def test_rest_requires_a_key(tiny_repository: Path, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(KEY + "\n", encoding="utf-8")
    settings = server_settings(tiny_repository, tmp_path, api_keys_file=keys_file, api_keys=ENV_KEY)
    async with (
        running(settings) as service,
        aiohttp.ClientSession(f"http://127.0.0.1:{service.http_port}") as http,
    ):
        async with http.get("/_inference?pretty") as response:
            assert response.status == 401
            assert response.headers.getall("WWW-Authenticate") == CHALLENGES
            assert await response.json() == _security_error(
                "missing authentication credentials for REST request [/_inference?pretty]"
            )
        async with http.get("/_inference", headers={"Authorization": "ApiKey nope"}) as response:
            assert response.status == 401
            assert await response.json() == _security_error(
                "unable to authenticate with provided credentials for REST request [/_inference]"
            )
        for credential in (f"ApiKey {_b64('my-id:' + KEY)}", f"Bearer {ENV_KEY}", f"ApiKey {KEY}"):
            async with http.get("/_inference", headers={"Authorization": credential}) as response:
                assert response.status == 200, credential
                assert "endpoints" in await response.json()


async def _reflection_services(channel: grpc.aio.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    async for response in call:
        return [s.name for s in response.list_services_response.service]
    raise AssertionError("no reflection response")


async def test_grpc_requires_a_key_but_health_and_reflection_stay_open(
    tiny_repository: Path, tmp_path: Path
) -> None:
    async with (
        running(server_settings(tiny_repository, tmp_path, api_keys=KEY)) as service,
        grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel,
    ):
        stub = es_grpc.EndpointServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.ListEndpoints(es_pb2.ListEndpointsRequest(), timeout=5)
        assert missing.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert missing.value.details() == (
            "missing authentication credentials for gRPC call [/elser.v1.EndpointService/ListEndpoints]"
        )
        with pytest.raises(grpc.aio.AioRpcError) as wrong:
            await stub.ListEndpoints(es_pb2.ListEndpointsRequest(), metadata=(("authorization", "Bearer x"),))
        assert wrong.value.code() is grpc.StatusCode.UNAUTHENTICATED
        status = rpc_status.from_call(wrong.value)
        assert status is not None
        info = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(info)
        assert info.reason == "INVALID_CREDENTIALS"
        assert info.metadata["es_type"] == "security_exception"

        listed = await stub.ListEndpoints(
            es_pb2.ListEndpointsRequest(), metadata=(("authorization", f"ApiKey {_b64('id:' + KEY)}"),)
        )
        assert [e.inference_id for e in listed.endpoints] == [".elser-2-elasticsearch"]
        health = health_pb2_grpc.HealthStub(channel)
        assert (
            await health.Check(health_pb2.HealthCheckRequest())
        ).status == health_pb2.HealthCheckResponse.SERVING
        assert "elser.v1.InferenceService" in await _reflection_services(channel)


async def test_health_and_reflection_can_require_a_key(tiny_repository: Path, tmp_path: Path) -> None:
    settings = server_settings(tiny_repository, tmp_path, api_keys=KEY, auth_health_and_reflection=True)
    async with (
        running(settings) as service,
        grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as refused_reflection:
            await _reflection_services(channel)
        assert refused_reflection.value.code() is grpc.StatusCode.UNAUTHENTICATED
        checked = await health.Check(
            health_pb2.HealthCheckRequest(), metadata=(("authorization", f"Bearer {KEY}"),)
        )
        assert checked.status == health_pb2.HealthCheckResponse.SERVING
