"""The whole service as users run it: `elser-server` in its own process, driven over real gRPC and HTTP."""

from __future__ import annotations

import signal
import threading
import urllib.request

import pytest
from elser_client import ElserClient, Unavailable
from grpc_health.v1 import health_pb2
from serverprocess import ServerFactory
from support import eventually

LONG_TEXT = " ".join(f"word{i % 97} token{i % 31}" for i in range(400))


def test_restart_brings_endpoints_back(start_server: ServerFactory) -> None:
    first = start_server()
    with ElserClient(first.target) as client:
        client.put_endpoint("persisted")
        before = client.infer("persisted", ["restart me"])[0]
    assert first.terminate() == 0

    second = start_server()
    with ElserClient(second.target) as client:
        assert client.get_endpoint("persisted").inference_id == "persisted"
        after = client.infer("persisted", ["restart me"])[0]
    assert list(after.token_ids) == list(before.token_ids)
    second.wait_health("elser.v1.InferenceService", health_pb2.HealthCheckResponse.SERVING)
    with urllib.request.urlopen(f"http://127.0.0.1:{second.http_port}/_inference/persisted") as response:
        assert b'"persisted"' in response.read()


def test_sigterm_drains_in_flight_work(start_server: ServerFactory) -> None:
    server = start_server(
        ELSER_DRAIN_S="0.2", ELSER_SHUTDOWN_GRACE_S="300", ELSER_MAX_INPUTS_PER_REQUEST="1024"
    )
    with ElserClient(server.target, timeout_s=300) as client:
        client.put_endpoint("drain")
        server.wait_health("elser.v1.InferenceService", health_pb2.HealthCheckResponse.SERVING)
        outcome: dict[str, object] = {}

        def long_call() -> None:
            # About a second of work or more (backend-dependent), outlasting the short drain period, so the
            # shutdown waits for it; top_k keeps the answer small (see the closing-connection caveat in
            # docs/operating.md).
            try:
                outcome["result"] = client.infer("drain", [LONG_TEXT] * 1024, top_k=1)
            except Exception as exc:  # reported below
                outcome["error"] = exc

        worker = threading.Thread(target=long_call)
        worker.start()
        eventually(lambda: server.stats("drain").queued > 0, 60, "the long call's texts in the queue")
        server.proc.send_signal(signal.SIGTERM)
        server.wait_health("elser.v1.InferenceService", health_pb2.HealthCheckResponse.NOT_SERVING, 5)
        assert server.health("") == health_pb2.HealthCheckResponse.NOT_SERVING
        worker.join(300)
        assert "error" not in outcome, f"{outcome.get('error')}\nserver log:\n{server.output()}"
        assert len(outcome["result"]) == 1024  # type: ignore[arg-type]

        def refused() -> bool:
            try:
                client.infer("drain", ["after shutdown"], timeout_s=5)
            except Unavailable:
                return True
            return False  # still within the drain period: served, as it should be

        eventually(refused, 30, "new calls to be refused once the drain period is over")
    assert server.proc.wait(timeout=60) == 0


def test_sigterm_ends_watches_instead_of_waiting_for_them(
    start_server: ServerFactory,
) -> None:
    server = start_server(ELSER_SHUTDOWN_GRACE_S="300")
    with ElserClient(server.target) as client:
        client.put_endpoint("watched")
        watch = client.watch_deployment("watched")
        assert next(watch).deployment_id == "watched"
        server.proc.send_signal(signal.SIGTERM)
        with pytest.raises(Unavailable) as exc:
            for _ in watch:
                pass
        assert exc.value.error_reason == "SHUTTING_DOWN"
    # Well inside the 300 s grace: an open watch does not hold the shutdown.
    assert server.proc.wait(timeout=60) == 0, server.output()
