"""TLS and mTLS on both listeners, with real handshakes against certificates made in the test."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import running, server_settings
from testpki import Pki


def _grpc_credentials(pki: Pki, *, client_cert: bool) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=pki.client_key.read_bytes() if client_cert else None,
        certificate_chain=pki.client_cert.read_bytes() if client_cert else None,
    )


async def _health(target: str, credentials: grpc.ChannelCredentials | None) -> int:
    channel = (
        grpc.aio.secure_channel(target, credentials)
        if credentials is not None
        else grpc.aio.insecure_channel(target)
    )
    async with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return int(response.status)


def _client_ssl(pki: Pki, *, client_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.ca)
    if client_cert:
        context.load_cert_chain(pki.client_cert, pki.client_key)
    return context


async def _get_root(url: str, context: ssl.SSLContext | None) -> int:
    async with aiohttp.ClientSession() as http, http.get(url, ssl=context if context else False) as response:
        await response.read()
        return response.status


async def test_mtls_accepts_a_client_certificate_and_rejects_a_client_without_one(
    pki: Pki, tiny_repository: Path, tmp_path: Path
) -> None:
    settings = server_settings(
        tiny_repository,
        tmp_path,
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        tls_client_ca_file=pki.ca,
        tls_require_client_cert=True,
    )
    async with running(settings) as service:
        target = f"127.0.0.1:{service.grpc_port}"
        https = f"https://127.0.0.1:{service.http_port}/"
        assert await _health(target, _grpc_credentials(pki, client_cert=True)) == (
            health_pb2.HealthCheckResponse.SERVING
        )
        with pytest.raises(grpc.aio.AioRpcError) as rejected:
            await _health(target, _grpc_credentials(pki, client_cert=False))
        assert rejected.value.code() is grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError):
            await _health(target, None)

        assert await _get_root(https, _client_ssl(pki, client_cert=True)) == 200
        with pytest.raises(aiohttp.ClientError):
            await _get_root(https, _client_ssl(pki, client_cert=False))
        with pytest.raises(aiohttp.ClientError):
            await _get_root(f"http://127.0.0.1:{service.http_port}/", None)


async def test_tls_without_client_certificates(pki: Pki, tiny_repository: Path, tmp_path: Path) -> None:
    settings = server_settings(
        tiny_repository, tmp_path, tls_cert_file=pki.server_cert, tls_key_file=pki.server_key
    )
    async with running(settings) as service:
        target = f"127.0.0.1:{service.grpc_port}"
        assert await _health(target, _grpc_credentials(pki, client_cert=False)) == (
            health_pb2.HealthCheckResponse.SERVING
        )
        assert (
            await _get_root(f"https://127.0.0.1:{service.http_port}/", _client_ssl(pki, client_cert=False))
            == 200
        )
        # A client that does not trust the CA refuses the server.
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _get_root(f"https://127.0.0.1:{service.http_port}/", ssl.create_default_context())
