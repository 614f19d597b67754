"""Real `elser-server` processes sharing one real PostgreSQL store (tiny model): changes made on one replica reach
the others, two PUTs of one id have one winner, a SIGKILL mid-PUT leaves whole endpoints only, a replica started
later or cut off from the store catches up, and a stopped store leaves known endpoints serving and refuses changes
whole (503 / UNAVAILABLE), over both transports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from elser.v1 import endpoint_service_pb2, endpoint_service_pb2_grpc
from elser_client import ElserClient, ElserClientError, endpoint_config
from elser_client.errors import AlreadyExists, NotFound, Unavailable
from elser_cluster import PostgresServer
from grpcdetails import rich
from psycopg import sql
from serverprocess import ServerProcess
from support import PgDatabase, eventually

Replicas = Callable[..., ServerProcess]


def rest(
    server: ServerProcess, method: str, path: str, body: object = None
) -> tuple[int, Any, dict[str, Any]]:
    """(status, headers, JSON body) of one ES REST call."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        server.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def es_body(num_allocations: int = 1) -> dict[str, Any]:
    return {
        "service": "elasticsearch",
        "service_settings": {
            "model_id": ".elser_model_2",
            "num_allocations": num_allocations,
            "num_threads": 1,
        },
    }


def metrics(server: ServerProcess) -> str:
    url = f"http://127.0.0.1:{server.env['ELSER_METRICS_PORT']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def local_ids(server: ServerProcess) -> set[str]:
    """Endpoints a replica serves now, from its metrics (its own view: nothing asks the store)."""
    return {
        line.split('deployment="')[1].split('"')[0]
        for line in metrics(server).splitlines()
        if line.startswith("elser_queue_capacity{")
    } - {".elser-2-elasticsearch"}


def local_target(server: ServerProcess, inference_id: str) -> int | None:
    """A replica's own deployment target (GetDeploymentStats never asks the store); None while it has none."""
    try:
        stats = server.stats(inference_id)
    except grpc.RpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return int(stats.allocation.target_allocations)


@pytest.fixture
def replicas(tiny_repository: Path, tmp_path: Path, pg_database: PgDatabase) -> Iterator[Replicas]:
    """Start a replica named `name` on the test's database (env overrides as keyword arguments)."""
    started: list[ServerProcess] = []

    def start(name: str, **env: str) -> ServerProcess:
        settings = {
            "ELSER_STORE_URL": pg_database.url,
            "ELSER_STORE_PASSWORD_FILE": str(pg_database.password_file),
            "ELSER_REPLICA_NAME": name,
            "ELSER_STORE_RESYNC_INTERVAL_S": "3600",  # the tests see notifications, not the safety net
            **env,
        }
        server = ServerProcess(tiny_repository, tmp_path / name, tmp_path / f"{name}.log", **settings)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.mark.slow
def test_changes_on_one_replica_reach_the_others(replicas: Replicas, pg_database: PgDatabase) -> None:
    a, b = replicas("a"), replicas("b")
    # The password comes from a file: neither the command line (`ps`) nor the URL carries it.
    assert pg_database.password not in Path(f"/proc/{a.proc.pid}/cmdline").read_text()
    assert pg_database.password not in a.env["ELSER_STORE_URL"]

    status, headers, _ = rest(a, "PUT", "/_inference/sparse_embedding/shared", es_body())
    assert status == 200 and headers["X-Elser-Replica"] == "a"
    eventually(lambda: local_target(b, "shared") == 1, 60, "b deploys the endpoint a stored")
    with ElserClient(b.target) as client:
        assert len(client.infer("shared", ["served by b"])) == 1
        assert client.get_endpoint("shared").service_settings.num_allocations == 1
        assert b.stats("shared").replica == "b"
        status, _, report = rest(b, "GET", "/_elser/deployments/shared/_stats")
        assert status == 200 and report["deployment_stats"]["replica"] == "b"
        watch = client.watch_deployment("shared", timeout_s=60)
        assert next(watch).replica == "b"

        status, _, updated = rest(
            b, "PUT", "/_inference/shared/_update", {"service_settings": {"num_allocations": 2}}
        )
        assert status == 200 and updated["service_settings"]["num_allocations"] == 2
        eventually(lambda: local_target(a, "shared") == 2, 60, "a scales to the update made on b")

        assert rest(a, "DELETE", "/_inference/shared")[0] == 200
        eventually(lambda: local_target(b, "shared") is None, 60, "b stops the deployment a deleted")
        events = list(watch)
        assert events[-1].reason == "inference endpoint deleted"
        with pytest.raises(NotFound):
            client.infer("shared", ["gone"])
    status, _, missing = rest(b, "GET", "/_inference/shared")
    assert status == 404 and missing["error"]["type"] == "resource_not_found_exception"

    # Two replicas PUT one new id at once: one wins, the other gets ES's "already exists", both serve the winner.
    outcomes: dict[str, tuple[int, dict[str, Any]]] = {}
    go = threading.Barrier(2)

    def put(server: ServerProcess, allocations: int) -> None:
        go.wait()
        status, _, answer = rest(server, "PUT", "/_inference/sparse_embedding/race", es_body(allocations))
        outcomes[server.env["ELSER_REPLICA_NAME"]] = (status, answer)

    threads = [threading.Thread(target=put, args=(a, 1)), threading.Thread(target=put, args=(b, 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(status for status, _ in outcomes.values())
    assert statuses == [200, 400], outcomes
    (winner,) = [answer for status, answer in outcomes.values() if status == 200]
    (loser,) = [answer for status, answer in outcomes.values() if status == 400]
    assert loser["error"]["type"] == "resource_already_exists_exception"
    assert loser["error"]["reason"] == "Inference endpoint [race] already exists"
    wanted = winner["service_settings"]["num_allocations"]
    for server in (a, b):
        eventually(lambda server=server: local_target(server, "race") == wanted, 60, "the winner everywhere")  # type: ignore[misc]

    # A replica started later serves everything in the store.
    c = replicas("c")
    assert local_ids(c) == {"race"}
    with ElserClient(c.target) as client, pytest.raises(AlreadyExists):
        client.put_endpoint("race")


@pytest.mark.slow
def test_sigkill_during_puts_leaves_only_whole_endpoints(replicas: Replicas, pg_database: PgDatabase) -> None:
    a, b = replicas("a"), replicas("b")
    sent: dict[str, int] = {}
    acknowledged: list[str] = []

    def put_many() -> None:
        with ElserClient(a.target, timeout_s=30) as client:
            for i in range(200):
                inference_id = f"put-{i}"
                sent[inference_id] = i % 2 + 1  # the allocation count tells the definitions apart
                try:
                    client.put_endpoint(inference_id, endpoint_config(num_allocations=sent[inference_id]))
                except ElserClientError:
                    return  # a died under this call: not acknowledged
                acknowledged.append(inference_id)

    worker = threading.Thread(target=put_many)
    worker.start()
    try:
        eventually(lambda: len(acknowledged) >= 4, 60, "four acknowledged PUTs")
        a.kill()
    finally:
        worker.join(60)

    with psycopg.connect(pg_database.url_with_password) as conn:
        rows = conn.execute("SELECT inference_id, config FROM elser_endpoints").fetchall()
    stored = {inference_id: config for inference_id, config in rows}
    assert set(acknowledged) <= set(stored)
    assert set(stored) <= set(sent)  # at most the one in flight besides: wholly there or not at all
    for inference_id, config in stored.items():
        assert config == {
            "inference_id": inference_id,
            "task_type": "sparse_embedding",
            "service": "elasticsearch",
            "service_settings": {
                "num_allocations": sent[inference_id],
                "num_threads": 1,
                "model_id": ".elser_model_2",
            },
            "chunking_settings": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1},
        }
    with ElserClient(b.target) as client:
        assert {e.inference_id for e in client.list_endpoints()} == {*stored, ".elser-2-elasticsearch"}
        for inference_id in stored:
            assert len(client.infer(inference_id, ["after the kill"])) == 1


@pytest.mark.slow
def test_a_replica_cut_off_from_the_store_serves_refuses_changes_and_catches_up(
    replicas: Replicas, pg_database: PgDatabase
) -> None:
    server = pg_database.server
    # a logs in as its own role (a member of the owner role): revoking its login cuts it off alone.
    role = f"{pg_database.name}_a"
    server.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE elser").format(
            sql.Identifier(role), pg_database.password
        )
    )
    b = replicas("b")
    a = replicas("a", ELSER_STORE_URL=pg_database.url.replace("elser@", f"{role}@"))
    with ElserClient(b.target) as client:
        client.put_endpoint("kept", endpoint_config(num_allocations=1))
        client.put_endpoint("doomed")
    eventually(lambda: local_ids(a) == {"kept", "doomed"}, 60, "a serves both")

    server.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))
    server.execute(
        sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {}").format(role)
    )
    eventually(
        lambda: rest(a, "GET", "/_inference/kept")[1].get("X-Elser-Store-State") == "unavailable",
        60,
        "a notices",
    )
    with ElserClient(b.target) as client:  # meanwhile b changes everything
        client.put_endpoint("added")
        client.delete_endpoint("doomed")
    assert rest(b, "PUT", "/_inference/kept/_update", {"service_settings": {"num_allocations": 2}})[0] == 200
    status, _, refused = rest(a, "PUT", "/_inference/sparse_embedding/other", es_body())
    assert status == 503 and refused["error"]["type"] == "status_exception"
    assert "The endpoint store is unavailable" in refused["error"]["reason"]
    with ElserClient(a.target) as client:
        assert len(client.infer("doomed", ["last known state"])) == 1

    server.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))
    eventually(lambda: local_ids(a) == {"kept", "added"}, 60, "a catches up after reconnecting")
    eventually(lambda: local_target(a, "kept") == 2, 60, "a applies the update it missed")
    assert "X-Elser-Store-State" not in rest(a, "GET", "/_inference/kept")[1]


@pytest.mark.slow
def test_postgres_stopped_and_restarted(tiny_repository: Path, tmp_path: Path) -> None:
    pg = PostgresServer()
    started: list[ServerProcess] = []
    try:
        pg.start()

        def replica(name: str) -> ServerProcess:
            server = ServerProcess(
                tiny_repository,
                tmp_path / name,
                tmp_path / f"{name}.log",
                ELSER_STORE_URL=pg.url(),
                ELSER_REPLICA_NAME=name,
                ELSER_STORE_TIMEOUT_S="2",
            )
            started.append(server)
            return server

        a, b = replica("a"), replica("b")
        assert rest(a, "PUT", "/_inference/sparse_embedding/kept", es_body())[0] == 200
        eventually(lambda: local_ids(b) == {"kept"}, 60, "b serves it")

        assert "elser_store_available 1.0" in metrics(a)
        pg.stop()
        eventually(lambda: "X-Elser-Store-State" in rest(a, "GET", "/")[1], 60, "a notices the outage")
        assert "elser_store_available 0.0" in metrics(a)
        for server in (a, b):
            status, headers, listed = rest(server, "GET", "/_inference/kept")
            assert status == 200 and headers["X-Elser-Store-State"] == "unavailable"
            assert listed["endpoints"][0]["inference_id"] == "kept"
            status, _, embedded = rest(server, "POST", "/_inference/kept", {"input": "still served"})
            assert status == 200 and len(embedded["sparse_embedding"]) == 1
        for method, path, body in (
            ("PUT", "/_inference/sparse_embedding/new", es_body()),
            ("PUT", "/_inference/kept/_update", {"service_settings": {"num_allocations": 2}}),
            ("DELETE", "/_inference/kept", None),
        ):
            status, headers, refused = rest(a, method, path, body)
            assert status == 503, refused
            assert refused == {
                "error": {
                    "root_cause": [{"type": "status_exception", "reason": refused["error"]["reason"]}],
                    "type": "status_exception",
                    "reason": refused["error"]["reason"],
                },
                "status": 503,
            }
            assert refused["error"]["reason"].startswith("The endpoint store is unavailable")
            assert headers["Retry-After"] == "1"
        with grpc.insecure_channel(b.target) as channel:
            stub = endpoint_service_pb2_grpc.EndpointServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.DeleteEndpoint(
                    endpoint_service_pb2.DeleteEndpointRequest(inference_id="kept"), timeout=10
                )
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
            details = rich(info.value)  # type: ignore[arg-type]
            assert details["ErrorInfo"].reason == "STORE_UNAVAILABLE"
            assert details["ErrorInfo"].metadata["http_status"] == "503" and "RetryInfo" in details
            _, call = stub.ListEndpoints.with_call(endpoint_service_pb2.ListEndpointsRequest(), timeout=10)
            assert ("elser-store-state", "unavailable") in call.trailing_metadata()
        with ElserClient(b.target) as client, pytest.raises(Unavailable):
            client.put_endpoint("new")

        pg.start()
        for server in (a, b):
            eventually(
                lambda server=server: "X-Elser-Store-State" not in rest(server, "GET", "/")[1],
                60,
                "reconnected",
            )  # type: ignore[misc]
        assert rest(b, "PUT", "/_inference/sparse_embedding/new", es_body())[0] == 200
        assert rest(a, "DELETE", "/_inference/kept")[0] == 200
        for server in (a, b):
            eventually(
                lambda server=server: local_ids(server) == {"new"}, 60, "changes after the restart converge"
            )  # type: ignore[misc]
        with psycopg.connect(pg.url()) as conn:
            assert conn.execute("SELECT inference_id FROM elser_endpoints").fetchall() == [("new",)]
    finally:
        for server in started:
            server.kill()
        pg.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ELSER_STORE_URL": "postgresql://elser@127.0.0.1:1/elser", "ELSER_STORE_STARTUP_TIMEOUT_S": "1"},
            "elser-server: endpoint store elser@127.0.0.1:1/elser still unreachable after 1s: connection",
        ),
        (
            {
                "ELSER_STORE_URL": "postgresql://elser@127.0.0.1:1/elser",
                "ELSER_STORE_PASSWORD_FILE": "/nonexistent/pw",
            },
            "elser-server: cannot read the store password file: No such file or directory: /nonexistent/pw",
        ),
        ({"ELSER_STORE_URL": "mysql://elser@db/elser"}, "must be a postgresql:// URL"),
    ],
    ids=["unreachable", "no-password-file", "not-postgresql"],
)
def test_a_store_that_cannot_be_used_stops_start_up_with_the_reason(
    env: dict[str, str], message: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "elser_server"],
        env={
            **os.environ,
            "ELSER_DATA_DIR": str(tmp_path),
            "ELSER_GRPC_PORT": "0",
            "ELSER_HTTP_PORT": "0",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
