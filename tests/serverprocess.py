"""Real `elser-server` processes on free loopback ports, and a throttled model repository over HTTP."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from elser.v1 import endpoint_service_pb2, endpoint_service_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import eventually

SERVING = health_pb2.HealthCheckResponse.SERVING
INFERENCE_SERVICE = "elser.v1.InferenceService"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`python -m elser_server` on free loopback ports; output goes to a file (a full pipe would block it)."""

    def __init__(
        self, repo: str | Path, data: Path, log: Path, *, open_files_limit: int | None = None, **env: str
    ) -> None:
        """`open_files_limit`: the server's RLIMIT_NOFILE (soft and hard)."""
        self.log = log
        self._open_files_limit = open_files_limit
        # A free port can be taken by a parallel test between probing and binding: then try fresh ones.
        for _ in range(3):
            self._spawn(repo, data, env)
            try:
                self.wait_health("")
                return
            except AssertionError:
                if self.alive() or "address already in use" not in self.output():
                    self.kill()
                    raise
        raise AssertionError(f"ports kept being taken:\n{self.output()}")

    def _spawn(self, repo: str | Path, data: Path, env: dict[str, str]) -> None:
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        self.env = {
            **os.environ,
            "ELSER_HOST": "127.0.0.1",
            "ELSER_GRPC_PORT": str(self.grpc_port),
            "ELSER_HTTP_PORT": str(self.http_port),
            "ELSER_DATA_DIR": str(data),
            "ELSER_MODEL_REPOSITORY": str(repo),
            "ELSER_PRELOAD_DEFAULT_ENDPOINT": "false",
            "ELSER_METRICS_PORT": str(self.metrics_port),
            "ELSER_DRAIN_S": "0.2",
            **env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self._command(), env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.target = f"127.0.0.1:{self.grpc_port}"
        self.base_url = f"http://127.0.0.1:{self.http_port}"

    def _command(self) -> list[str]:
        if self._open_files_limit is None:
            return [sys.executable, "-m", "elser_server"]
        # The limit is set by the child itself (preexec_fn is unsafe in a process with threads).
        limit = self._open_files_limit
        return [
            sys.executable,
            "-c",
            f"import resource, runpy; resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit})); "
            "runpy.run_module('elser_server', run_name='__main__')",
        ]

    def metrics(self) -> str:
        """The Prometheus text the server exposes now."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            return str(response.read().decode())

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def health(self, service: str) -> int:
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status)

    def wait_health(self, service: str, status: int = SERVING, timeout_s: float = 60) -> None:
        def settled() -> bool:
            if not self.alive():
                return True
            try:
                return self.health(service) == status
            except grpc.RpcError:
                return False

        try:
            eventually(settled, timeout_s, f"health of {service!r} to become {status}", interval_s=0.05)
        except AssertionError as timeout:
            raise AssertionError(f"{timeout}:\n{self.output()}") from None
        if not self.alive():
            raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.output()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kib(self) -> int:
        """Resident set size of the server process (VmRSS in /proc/<pid>/status)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    def stats(self, inference_id: str) -> Any:
        with grpc.insecure_channel(self.target) as channel:
            stub = endpoint_service_pb2_grpc.EndpointServiceStub(channel)
            request = endpoint_service_pb2.GetDeploymentStatsRequest(inference_id=inference_id)
            return stub.GetDeploymentStats(request, timeout=5).stats

    def terminate(self, timeout_s: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


# Starts a ServerProcess: repository first, ELSER_* overrides as keyword arguments (the `start_server` fixtures).
ServerFactory = Callable[..., ServerProcess]


class SlowRepository:
    """Serves a model repository directory over loopback HTTP, sleeping between 8 KiB pieces of ONNX files
    (`delay_s`), so a download is slow enough to be interrupted."""

    def __init__(self, root: Path, delay_s: float = 0.0) -> None:
        self.root = root
        self.delay_s = delay_s
        self.onnx_bytes_sent = 0
        self.hits: Counter[str] = Counter()  # GET requests per file name
        repo = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                repo.hits[self.path.lstrip("/")] += 1
                path = repo.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    for i in range(0, len(data), 1 << 13):
                        self.wfile.write(data[i : i + (1 << 13)])
                        if path.suffix == ".onnx":
                            repo.onnx_bytes_sent += len(data[i : i + (1 << 13)])
                            time.sleep(repo.delay_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the downloading server was killed

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
