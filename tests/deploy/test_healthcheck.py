"""elser-healthcheck against a real gRPC health server: exit 0 only for SERVING; plaintext, TLS and mTLS."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from elser_server.healthcheck import main
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE = "elser.v1.InferenceService"
SERVER_NAME = "elser.test"


def _serve(credentials: grpc.ServerCredentials | None = None) -> tuple[grpc.Server, int]:
    servicer = health.HealthServicer()
    servicer.set("", SERVING)
    servicer.set(SERVICE, NOT_SERVING)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    address = "localhost:0"
    port = (
        server.add_insecure_port(address)
        if credentials is None
        else server.add_secure_port(address, credentials)
    )
    server.start()
    return server, port


@pytest.fixture
def plain_port() -> Iterator[int]:
    server, port = _serve()
    yield port
    server.stop(None)


@pytest.mark.parametrize(("service", "code"), [("", 0), (SERVICE, 1), ("no.such.Service", 1)])
def test_exit_code_follows_status(plain_port: int, service: str, code: int) -> None:
    assert main(["--address", f"localhost:{plain_port}", "--service", service]) == code


def test_default_address_follows_elser_grpc_port(plain_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELSER_GRPC_PORT", str(plain_port))
    assert main([]) == 0


def test_unreachable_server_is_unhealthy() -> None:
    server, port = _serve()
    server.stop(None)
    assert main(["--address", f"localhost:{port}", "--timeout-s", "1"]) == 1


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for SERVER_NAME, usable as server, client and CA certificate."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not found: it generates the test certificate")
    directory = tmp_path_factory.mktemp("tls")
    crt, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={SERVER_NAME}",
         "-addext", f"subjectAltName=DNS:{SERVER_NAME}", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return crt, key


def test_tls(cert: tuple[Path, Path]) -> None:
    crt, key = cert
    server, port = _serve(grpc.ssl_server_credentials([(key.read_bytes(), crt.read_bytes())]))
    try:
        address = ["--address", f"localhost:{port}"]
        assert main([*address, "--tls-ca-file", str(crt), "--tls-server-name", SERVER_NAME]) == 0
        # the system roots do not trust a self-signed certificate
        assert main([*address, "--tls", "--timeout-s", "1"]) == 1
    finally:
        server.stop(None)


def test_mtls(cert: tuple[Path, Path]) -> None:
    crt, key = cert
    credentials = grpc.ssl_server_credentials(
        [(key.read_bytes(), crt.read_bytes())], root_certificates=crt.read_bytes(), require_client_auth=True
    )
    server, port = _serve(credentials)
    try:
        tls = ["--address", f"localhost:{port}", "--tls-ca-file", str(crt), "--tls-server-name", SERVER_NAME]
        assert main([*tls, "--timeout-s", "1"]) == 1
        assert main([*tls, "--tls-cert-file", str(crt), "--tls-key-file", str(key)]) == 0
    finally:
        server.stop(None)


def test_client_cert_needs_its_key(cert: tuple[Path, Path]) -> None:
    with pytest.raises(SystemExit, match="go together"):
        main(["--tls-cert-file", str(cert[0])])
