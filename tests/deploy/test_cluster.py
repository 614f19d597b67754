"""The local multi-replica stack (`make cluster`): PostgreSQL, three `elser-server` replicas, Debian's nginx as the
HTTP/2 load balancer. Every call goes through nginx only: the official `elasticsearch` client and the project's
gRPC client create, use, update and delete endpoints and see one consistent service whichever replica answers,
and a replica SIGTERMed mid-traffic costs them nothing beyond retries."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch, NotFoundError
from elser.v1 import endpoint_service_pb2
from elser_client import ElserClient
from elser_client.errors import NotFound
from elser_cluster import LocalCluster
from support import PUT_BODY, eventually

ROUNDS = 12  # calls per check: round robin over 3 replicas lands on each of them several times


@pytest.fixture(scope="module")
def cluster(tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    stack = LocalCluster(
        tmp_path_factory.mktemp("cluster"),
        count=3,
        env={
            "ELSER_MODEL_REPOSITORY": str(tiny_repository),
            "ELSER_PRELOAD_DEFAULT_ENDPOINT": "false",
            "ELSER_DRAIN_S": "1",
            "ELSER_SHUTDOWN_GRACE_S": "5",
        },
    )
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture
def es(cluster: LocalCluster) -> Iterator[Elasticsearch]:
    client = Elasticsearch(cluster.http_url, request_timeout=60)
    yield client
    client.close()


@pytest.fixture
def grpc_client(cluster: LocalCluster) -> Iterator[ElserClient]:
    with ElserClient(cluster.grpc_target, timeout_s=60) as client:
        yield client


def stats_replica(client: ElserClient, inference_id: str) -> str:
    request = endpoint_service_pb2.GetDeploymentStatsRequest(inference_id=inference_id)
    return str(client.endpoints.GetDeploymentStats(request, timeout=10).stats.replica)


@pytest.mark.slow
def test_both_clients_see_one_consistent_service_whichever_replica_answers(
    cluster: LocalCluster, es: Elasticsearch, grpc_client: ElserClient
) -> None:
    names = {r.name for r in cluster.replicas}
    created = es.inference.put(inference_id="via-es", task_type="sparse_embedding", inference_config=PUT_BODY)
    assert created.body["inference_id"] == "via-es"
    grpc_client.put_endpoint("via-grpc")

    answered_rest: set[str] = set()
    answered_grpc: set[str] = set()
    for _ in range(ROUNDS):
        for inference_id in ("via-es", "via-grpc"):
            got = es.inference.get(inference_id=inference_id)
            assert [e["inference_id"] for e in got.body["endpoints"]] == [inference_id]
            answered_rest.add(got.meta.headers["X-Elser-Replica"])
            assert (
                len(
                    es.inference.sparse_embedding(inference_id=inference_id, input="hello").body[
                        "sparse_embedding"
                    ]
                )
                == 1
            )
            assert len(grpc_client.infer(inference_id, ["hello"])) == 1
            answered_grpc.add(stats_replica(grpc_client, inference_id))
        listed = {e["inference_id"] for e in es.inference.get().body["endpoints"]}
        assert {"via-es", "via-grpc"} <= listed
        assert {e.inference_id for e in grpc_client.list_endpoints()} == listed
    assert answered_rest == names and answered_grpc == names  # nginx spread the calls over every replica

    es.inference.update(
        inference_id="via-grpc", inference_config={"service_settings": {"num_allocations": 2}}
    )
    for _ in range(ROUNDS):
        got = es.inference.get(inference_id="via-grpc").body["endpoints"][0]
        assert got["service_settings"]["num_allocations"] == 2
        assert grpc_client.get_endpoint("via-grpc").service_settings.num_allocations == 2

    grpc_client.delete_endpoint("via-es")
    es.inference.delete(inference_id="via-grpc")
    for _ in range(ROUNDS):
        for inference_id in ("via-es", "via-grpc"):
            with pytest.raises(NotFoundError):
                es.inference.get(inference_id=inference_id)
            with pytest.raises(NotFound):
                grpc_client.get_endpoint(inference_id)
        assert not {"via-es", "via-grpc"} & {e["inference_id"] for e in es.inference.get().body["endpoints"]}

    # Inference follows the replica's own state, notified within milliseconds of the commit.
    def gone_everywhere() -> bool:
        try:
            grpc_client.infer("via-es", ["still there?"])
        except NotFound:
            return True
        return False

    for _ in range(ROUNDS):
        eventually(gone_everywhere, 10, "inference answers 404 after the delete")


@pytest.mark.slow
def test_a_replica_sigtermed_mid_traffic_costs_the_clients_nothing(
    cluster: LocalCluster, es: Elasticsearch, grpc_client: ElserClient
) -> None:
    es.inference.put(inference_id="traffic", task_type="sparse_embedding", inference_config=PUT_BODY)
    for _ in range(ROUNDS):  # deployed on every replica before the traffic starts
        grpc_client.infer("traffic", ["warm"])
    stop = threading.Event()
    errors: list[BaseException] = []
    done = {"grpc": 0, "rest": 0}

    def grpc_traffic() -> None:
        with ElserClient(cluster.grpc_target, timeout_s=30) as client:
            while not stop.is_set():
                try:
                    client.infer("traffic", ["mid-traffic query"])
                    done["grpc"] += 1
                except Exception as error:
                    errors.append(error)

    def rest_traffic() -> None:
        client = Elasticsearch(cluster.http_url, request_timeout=30)
        try:
            while not stop.is_set():
                try:
                    client.inference.sparse_embedding(inference_id="traffic", input="mid-traffic query")
                    done["rest"] += 1
                except Exception as error:
                    errors.append(error)
        finally:
            client.close()

    workers = [threading.Thread(target=grpc_traffic), threading.Thread(target=rest_traffic)]
    for w in workers:
        w.start()
    try:
        eventually(lambda: done["grpc"] > 20 and done["rest"] > 20, 10, "traffic flows")
        victim = cluster.replicas[1]
        assert victim.terminate() == 0  # SIGTERM: drains, then exits cleanly
        before = dict(done)
        eventually(
            lambda: done["grpc"] > before["grpc"] + 50 and done["rest"] > before["rest"] + 50,
            10,
            "traffic goes on",
        )
    finally:
        stop.set()
        for w in workers:
            w.join(60)
    assert errors == []
    assert grpc_client.get_endpoint("traffic").inference_id == "traffic"
