"""The whole service as users run it: `elser-server` in its own process, driven over real gRPC and HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from elser_client import ElserClient, Unavailable
from grpc_health.v1 import health_pb2, health_pb2_grpc

LONG_TEXT = " ".join(f"word{i % 97} token{i % 31}" for i in range(400))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, repo: Path, data: Path, **env: str) -> None:
        self.grpc_port, self.http_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "ELSER_HOST": "127.0.0.1",
            "ELSER_GRPC_PORT": str(self.grpc_port),
            "ELSER_HTTP_PORT": str(self.http_port),
            "ELSER_DATA_DIR": str(data),
            "ELSER_MODEL_REPOSITORY": str(repo),
            "ELSER_PRELOAD_DEFAULT_ENDPOINT": "false",
            "ELSER_DRAIN_S": "0.5",
            "ELSER_METRICS_PORT": "0",  # the default 9464 may be taken by another server on this machine
            **env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "elser_server"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.target = f"127.0.0.1:{self.grpc_port}"
        self.wait_health("", health_pb2.HealthCheckResponse.SERVING)

    def health(self, service: str) -> int:
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status)

    def wait_health(self, service: str, status: int, timeout_s: float = 60) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{out}")
            try:
                if self.health(service) == status:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"health of {service!r} never became {status}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def server_factory(tiny_repository: Path, tmp_path: Path) -> Iterator[type[Server]]:
    started: list[Server] = []

    class Factory(Server):
        def __init__(self, **env: str) -> None:
            super().__init__(tiny_repository, tmp_path / "data", **env)
            started.append(self)

    yield Factory
    for s in started:
        s.kill()


def test_restart_brings_endpoints_back(server_factory: type[Server]) -> None:
    first = server_factory()
    with ElserClient(first.target) as client:
        client.put_endpoint("persisted")
        before = client.infer("persisted", ["restart me"])[0]
    assert first.stop() == 0

    second = server_factory()
    with ElserClient(second.target) as client:
        assert client.get_endpoint("persisted").inference_id == "persisted"
        after = client.infer("persisted", ["restart me"])[0]
    assert list(after.token_ids) == list(before.token_ids)
    second.wait_health("elser.v1.InferenceService", health_pb2.HealthCheckResponse.SERVING)
    with urllib.request.urlopen(f"http://127.0.0.1:{second.http_port}/_inference/persisted") as response:
        assert b'"persisted"' in response.read()


def test_sigterm_drains_in_flight_work(server_factory: type[Server]) -> None:
    server = server_factory(ELSER_DRAIN_S="2", ELSER_MAX_INPUTS_PER_REQUEST="1024")
    with ElserClient(server.target, timeout_s=120) as client:
        client.put_endpoint("drain")
        server.wait_health("elser.v1.InferenceService", health_pb2.HealthCheckResponse.SERVING)
        outcome: dict[str, object] = {}

        def long_call() -> None:
            try:
                outcome["result"] = client.infer("drain", [LONG_TEXT] * 1024)
            except Exception as exc:  # reported below
                outcome["error"] = exc

        worker = threading.Thread(target=long_call)
        worker.start()
        time.sleep(0.5)  # the call is queued/running now
        server.proc.send_signal(signal.SIGTERM)
        server.wait_health("elser.v1.InferenceService", health_pb2.HealthCheckResponse.NOT_SERVING, 5)
        assert server.health("") == health_pb2.HealthCheckResponse.NOT_SERVING
        worker.join(120)
        assert "error" not in outcome, outcome.get("error")
        assert len(outcome["result"]) == 1024  # type: ignore[arg-type]
        with pytest.raises(Unavailable):
            client.infer("drain", ["after shutdown"], timeout_s=5)
    assert server.proc.wait(timeout=60) == 0
