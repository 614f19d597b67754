"""Convergence of replicas sharing a PostgreSQL endpoint store: how long after a change is acknowledged by one
replica the others serve it.

    python bench/replicas.py --rounds 100            # the default model in models/repository
    python bench/replicas.py --rounds 100 --model-repository /path/to/repo

Starts a private PostgreSQL server and three replicas on loopback (deploy/local/elser_cluster.py), then, per round,
on replica A: PUT a new endpoint, _update it to 2 allocations, DELETE it. For each it measures from A's answer:
- notified (B): until replica B, which receives no request about the endpoint, has the change applied on its own
  (LISTEN/NOTIFY): its deployment started, rescaled, stopped. B is polled through GetDeploymentStats, which reports
  B's own state and never asks the store;
- on demand (C): the latency of replica C's answer to an inference sent right after the PUT's answer (C asks the
  store for an id it does not know, deploys, then answers).
Prints p50/p99/max per measure. Nothing but loopback is contacted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from elser.v1 import endpoint_service_pb2, endpoint_service_pb2_grpc, types_pb2
from elser_client import ElserClient, endpoint_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy" / "local"))
from elser_cluster import PostgresServer, Replica


def local_stats(
    stub: endpoint_service_pb2_grpc.EndpointServiceStub, inference_id: str
) -> types_pb2.DeploymentStats | None:
    """The replica's own deployment (GetDeploymentStats never asks the store); None while it has none."""
    try:
        return stub.GetDeploymentStats(
            endpoint_service_pb2.GetDeploymentStatsRequest(inference_id=inference_id), timeout=5
        ).stats
    except grpc.RpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            return None
        raise


def local_target(stub: endpoint_service_pb2_grpc.EndpointServiceStub, inference_id: str) -> int | None:
    """The target allocations of the replica's own deployment once it serves; None before, or without one."""
    stats = local_stats(stub, inference_id)
    started = stats is not None and stats.state in (
        types_pb2.DEPLOYMENT_STATE_STARTED,
        types_pb2.DEPLOYMENT_STATE_FULLY_ALLOCATED,
    )
    return int(stats.allocation.target_allocations) if started and stats is not None else None


def until(predicate: object, since: float, timeout_s: float = 30.0) -> float:
    assert callable(predicate)
    while not predicate():
        if time.perf_counter() - since > timeout_s:
            raise TimeoutError("no convergence within 30 s")
    return time.perf_counter() - since


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"{name:<34} n={len(ms):<4} p50 {statistics.median(ms):7.1f} ms   p99 {p99:7.1f} ms   max {ms[-1]:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--model-repository", default="models/repository")
    args = parser.parse_args()

    postgres = PostgresServer()
    replicas: list[Replica] = []
    try:
        postgres.start()
        directory = Path(tempfile.mkdtemp(prefix="elser-bench-replicas-"))
        env = {
            "ELSER_STORE_URL": postgres.url(),
            "ELSER_MODEL_REPOSITORY": str(Path(args.model_repository).resolve()),
            "ELSER_PRELOAD_DEFAULT_ENDPOINT": "false",
            "ELSER_LOG_LEVEL": "WARNING",
        }
        replicas = [Replica(name, directory, env) for name in ("a", "b", "c")]
        for replica in replicas:
            replica.wait_serving()
        a, b, c = replicas
        put_on_a, put_known, put_notified, update_notified, delete_notified, put_on_demand = (
            [],
            [],
            [],
            [],
            [],
            [],
        )
        with (
            ElserClient(a.target) as on_a,
            ElserClient(c.target) as on_c,
            grpc.insecure_channel(b.target) as b_channel,
        ):
            b_stub = endpoint_service_pb2_grpc.EndpointServiceStub(b_channel)
            # Warm-up: every replica installs and loads the model once (that is a first deployment's cost).
            on_a.put_endpoint("warm-up")
            on_c.infer("warm-up", ["warm up"])
            until(lambda: local_target(b_stub, "warm-up") == 1, time.perf_counter())
            for i in range(args.rounds):
                inference_id = f"round-{i}"
                sent = time.perf_counter()
                on_a.put_endpoint(inference_id, endpoint_config(num_allocations=1))
                acked = time.perf_counter()
                put_on_a.append(acked - sent)

                def watch_b(inference_id: str = inference_id, acked: float = acked) -> None:
                    put_known.append(until(lambda: local_stats(b_stub, inference_id) is not None, acked))
                    put_notified.append(until(lambda: local_target(b_stub, inference_id) == 1, acked))

                watcher = threading.Thread(target=watch_b)  # B is watched while C answers
                watcher.start()
                on_c.infer(inference_id, ["servable at once?"])
                put_on_demand.append(time.perf_counter() - acked)
                watcher.join()

                on_a.update_endpoint(
                    inference_id,
                    types_pb2.EndpointConfig(service_settings=types_pb2.ServiceSettings(num_allocations=2)),
                )
                acked = time.perf_counter()
                update_notified.append(until(lambda i=inference_id: local_target(b_stub, i) == 2, acked))

                on_a.delete_endpoint(inference_id)
                acked = time.perf_counter()
                delete_notified.append(until(lambda i=inference_id: local_target(b_stub, i) is None, acked))
        print(summary("PUT on A (deploy, validate, store)", put_on_a))
        print(summary("PUT → known on B (notified)", put_known))
        print(summary("PUT → servable on B (+ its deploy)", put_notified))
        print(summary("PUT → first answer on C (on demand)", put_on_demand))
        print(summary("_update → applied on B (notified)", update_notified))
        print(summary("DELETE → stopped on B (notified)", delete_notified))
    finally:
        for replica in replicas:
            replica.kill()
        postgres.close()


if __name__ == "__main__":
    main()
