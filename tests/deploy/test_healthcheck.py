"""elser-healthcheck against a real gRPC health server: exit 0 only for SERVING; plaintext, TLS and mTLS; and
against a real `elser-server` process configured by ELSER_* variables alone, which the probe follows (TLS, mTLS,
API keys on health)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from elser_server.healthcheck import ProbeSettings, Target, main, parser, resolve
from elser_server.settings import Settings
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from serverprocess import ServerProcess
from testpki import Pki, make_pki

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE = "elser.v1.InferenceService"
SERVER_NAME = "elser.test"
# What the image's HEALTHCHECK runs (tests/deploy/test_dockerfile.py checks the Dockerfile says so).
DOCKER_HEALTHCHECK = ["-m", "elser_server.healthcheck", "--timeout-s", "4"]


@pytest.fixture(autouse=True)
def _no_elser_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe reads ELSER_*: each test sets exactly the ones it means."""
    for name in list(os.environ):
        if name.startswith("ELSER_"):
            monkeypatch.delenv(name)


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
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The server certificate names SERVER_NAME and 127.0.0.1, not localhost."""
    return make_pki(tmp_path_factory.mktemp("pki"), SERVER_NAME)


def _server_credentials(pki: Pki, *, client_ca: bool = False) -> grpc.ServerCredentials:
    pair = (pki.server_key.read_bytes(), pki.server_cert.read_bytes())
    if not client_ca:
        return grpc.ssl_server_credentials([pair])
    return grpc.ssl_server_credentials(
        [pair], root_certificates=pki.ca.read_bytes(), require_client_auth=True
    )


def test_tls(pki: Pki) -> None:
    server, port = _serve(_server_credentials(pki))
    try:
        address = ["--address", f"localhost:{port}"]
        assert main([*address, "--tls-ca-file", str(pki.ca), "--tls-server-name", SERVER_NAME]) == 0
        # the system roots do not trust the test CA
        assert main([*address, "--tls", "--timeout-s", "1"]) == 1
    finally:
        server.stop(None)


def test_server_cert_from_env_is_the_trust_root(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    server, port = _serve(_server_credentials(pki))
    try:
        monkeypatch.setenv("ELSER_GRPC_PORT", str(port))
        monkeypatch.setenv("ELSER_TLS_CERT_FILE", str(pki.server_cert))
        monkeypatch.setenv("ELSER_TLS_KEY_FILE", str(pki.server_key))
        # the certificate names elser.test, not localhost
        assert main(["--timeout-s", "1"]) == 1
        monkeypatch.setenv("ELSER_HEALTHCHECK_TLS_SERVER_NAME", SERVER_NAME)
        assert main([]) == 0
        assert main(["--no-tls", "--timeout-s", "1"]) == 1  # a flag overrides the environment
    finally:
        server.stop(None)


def test_mtls(pki: Pki) -> None:
    server, port = _serve(_server_credentials(pki, client_ca=True))
    try:
        tls = [
            "--address",
            f"localhost:{port}",
            "--tls-ca-file",
            str(pki.ca),
            "--tls-server-name",
            SERVER_NAME,
        ]
        assert main([*tls, "--timeout-s", "1"]) == 1
        assert (
            main([*tls, "--tls-cert-file", str(pki.client_cert), "--tls-key-file", str(pki.client_key)]) == 0
        )
    finally:
        server.stop(None)


def test_client_cert_needs_its_key(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit, match="go together"):
        main(["--tls-cert-file", str(pki.client_cert)])
    monkeypatch.setenv("ELSER_HEALTHCHECK_CLIENT_CERT_FILE", str(pki.client_cert))
    with pytest.raises(SystemExit, match="go together"):
        main([])
    with pytest.raises(SystemExit, match="conflicts"):
        main(["--no-tls", "--tls-ca-file", str(pki.ca)])


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Target]:
    """The probe's target for `argv` in an environment whose ELSER_* variables are exactly `env`."""

    def resolved(argv: list[str], **env: str) -> Target:
        for name in [n for n in os.environ if n.startswith("ELSER_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return resolve(parser().parse_args(argv), Settings(), ProbeSettings())

    return resolved


def test_address_follows_elser_host_and_port(target: Callable[..., Target]) -> None:
    assert target([]).address == "localhost:50051"
    assert target([], ELSER_HOST="0.0.0.0", ELSER_GRPC_PORT="7").address == "localhost:7"
    assert target([], ELSER_HOST="::").address == "localhost:50051"
    assert target([], ELSER_HOST="10.1.2.3").address == "10.1.2.3:50051"
    assert target([], ELSER_HOST="fd00::1").address == "[fd00::1]:50051"
    assert target(["--address", "h:1"], ELSER_HOST="10.1.2.3").address == "h:1"


def test_flags_override_the_environment(target: Callable[..., Target], tmp_path: Path) -> None:
    env = {
        "ELSER_TLS_CERT_FILE": "/srv/server.crt",
        "ELSER_HEALTHCHECK_CA_FILE": "/srv/ca.crt",
        "ELSER_HEALTHCHECK_CLIENT_CERT_FILE": "/srv/probe.crt",
        "ELSER_HEALTHCHECK_CLIENT_KEY_FILE": "/srv/probe.key",
        "ELSER_HEALTHCHECK_TLS_SERVER_NAME": "elser-inference",
        "ELSER_API_KEYS": "first,second",
    }
    from_env = target([], **env)
    assert from_env.tls
    assert from_env.ca_file == Path("/srv/ca.crt")
    assert (from_env.cert_file, from_env.key_file) == (Path("/srv/probe.crt"), Path("/srv/probe.key"))
    assert from_env.server_name == "elser-inference"
    assert from_env.api_key == "first"
    keys = tmp_path / "keys"
    keys.write_text("# probe key\n\n  mine  \nother\n")
    argv = ["--tls-ca-file", "/x/ca", "--tls-cert-file", "/x/c", "--tls-key-file", "/x/k"]
    flags = target([*argv, "--tls-server-name", "n", "--api-key-file", str(keys)], **env)
    assert (flags.ca_file, flags.cert_file, flags.key_file) == (Path("/x/ca"), Path("/x/c"), Path("/x/k"))
    assert (flags.server_name, flags.api_key) == ("n", "mine")
    plain = target(["--no-tls"], **env)
    assert not plain.tls and plain.api_key == "first"
    # without its own CA the probe trusts the server's certificate; without TLS settings it stays plaintext
    assert target([], ELSER_TLS_CERT_FILE="/srv/s.crt").ca_file == Path("/srv/s.crt")
    assert not target([], ELSER_TLS_KEY_FILE="/srv/s.key").tls
    assert not target([], ELSER_TLS_CERT_FILE="").tls  # an empty variable is unset


# --- a real elser-server configured only through ELSER_* variables ---------------------------------------


class ProbedServer(ServerProcess):
    """A server process whose start-up wait runs the probe with the server's own environment (the plaintext
    check of ServerProcess cannot reach a TLS or key-protected listener)."""

    def __init__(self, root: Path, **env: str) -> None:
        (root / "repository").mkdir()
        super().__init__(root / "repository", root / "data", root / "server.log", **env)

    def health(self, service: str) -> int:
        """The real `elser-healthcheck` in the server's environment: exit 0 is SERVING."""
        command = [sys.executable, "-m", "elser_server.healthcheck", "--service", service, "--timeout-s", "2"]
        probed = subprocess.run(command, env=self.env, capture_output=True, timeout=60)
        return SERVING if probed.returncode == 0 else NOT_SERVING


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ProbedServer]]:
    started: list[ProbedServer] = []

    def start(**env: str) -> ProbedServer:
        root = tmp_path / f"server-{len(started)}"
        root.mkdir()
        server = ProbedServer(root, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


def _use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        if name.startswith("ELSER_"):
            monkeypatch.setenv(name, value)


def _tls_env(pki: Pki) -> dict[str, str]:
    return {"ELSER_TLS_CERT_FILE": str(pki.server_cert), "ELSER_TLS_KEY_FILE": str(pki.server_key)}


def test_tls_server_is_probed_with_its_own_env(
    pki: Pki, start_server: Callable[..., ProbedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server(**_tls_env(pki), ELSER_HTTP_ENABLED="false")
    _use_env(monkeypatch, server.env)
    # ELSER_HOST=127.0.0.1 (in the certificate), the server's certificate file as trust root
    assert main([]) == 0
    assert main(["--no-tls", "--timeout-s", "1"]) == 1
    assert main(["--tls-ca-file", str(pki.client_cert), "--timeout-s", "1"]) == 1  # not the server's issuer


def test_mtls_server_needs_the_probe_client_cert(
    pki: Pki, start_server: Callable[..., ProbedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # one environment for server and probe, as a container sets it (the server ignores ELSER_HEALTHCHECK_*)
    server = start_server(
        **_tls_env(pki),
        ELSER_TLS_CLIENT_CA_FILE=str(pki.ca),
        ELSER_TLS_REQUIRE_CLIENT_CERT="true",
        ELSER_HTTP_ENABLED="false",
        ELSER_HEALTHCHECK_CA_FILE=str(pki.ca),
        ELSER_HEALTHCHECK_CLIENT_CERT_FILE=str(pki.client_cert),
        ELSER_HEALTHCHECK_CLIENT_KEY_FILE=str(pki.client_key),
    )
    _use_env(monkeypatch, server.env)
    assert main([]) == 0
    monkeypatch.delenv("ELSER_HEALTHCHECK_CLIENT_CERT_FILE")
    monkeypatch.delenv("ELSER_HEALTHCHECK_CLIENT_KEY_FILE")
    assert main(["--timeout-s", "1"]) == 1  # no client certificate: the handshake fails
    flags = ["--tls-cert-file", str(pki.client_cert), "--tls-key-file", str(pki.client_key)]
    assert main(flags) == 0


def test_protected_health_uses_the_servers_first_key(
    pki: Pki, start_server: Callable[..., ProbedServer], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys = tmp_path / "api-keys"
    keys.write_text("# probe and clients\nfirst-key\nsecond-key\n")
    server = start_server(
        **_tls_env(pki),
        ELSER_API_KEYS_FILE=str(keys),
        ELSER_API_KEYS="third-key",
        ELSER_AUTH_HEALTH_AND_REFLECTION="true",
        ELSER_HTTP_ENABLED="false",
    )
    # the image's HEALTHCHECK command, in the server's environment
    result = subprocess.run(
        [sys.executable, *DOCKER_HEALTHCHECK], env=server.env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    _use_env(monkeypatch, server.env)
    assert main([]) == 0
    wrong = tmp_path / "wrong-key"
    wrong.write_text("not-a-key\n")
    assert main(["--api-key-file", str(wrong)]) == 1
    monkeypatch.delenv("ELSER_API_KEYS_FILE")
    monkeypatch.delenv("ELSER_API_KEYS")
    assert main([]) == 1  # no key at all
