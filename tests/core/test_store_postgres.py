"""PostgreSQL endpoint store on a real server: round trip, one winner per id, atomic batches, versioned migrations
under an advisory lock, the password file, the change feed, and what an unreachable server looks like."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from elser_cluster import PostgresServer
from elser_server.core.endpoint_rules import parse_put_request
from elser_server.core.errors import Code, ElserError
from elser_server.core.store import EndpointStore, SharedEndpointStore
from elser_server.core.store_postgres import MIGRATIONS, PostgresEndpointStore, connection_params
from elser_server.core.types import Endpoint
from support import PgDatabase, eventually


def endpoint(inference_id: str, num_allocations: int = 1) -> Endpoint:
    body = {
        "service": "elasticsearch",
        "service_settings": {
            "model_id": ".elser_model_2",
            "num_threads": 2,
            "num_allocations": num_allocations,
        },
        "chunking_settings": {"strategy": "word", "max_chunk_size": 100, "overlap": 20},
    }
    return parse_put_request(inference_id, "sparse_embedding", body).endpoint


@pytest.fixture
def open_store(pg_database: PgDatabase) -> Iterator[Callable[..., PostgresEndpointStore]]:
    opened: list[PostgresEndpointStore] = []

    def open_one(**kwargs: object) -> PostgresEndpointStore:
        options: dict[str, object] = {"password_file": pg_database.password_file, "timeout_s": 5.0, **kwargs}
        store = PostgresEndpointStore(pg_database.url, **options)  # type: ignore[arg-type]
        opened.append(store)
        store.open()
        return store

    yield open_one
    for store in opened:
        store.close()


def test_round_trip_get_and_a_second_process_view(open_store: Callable[..., PostgresEndpointStore]) -> None:
    store: EndpointStore = open_store()
    saved = [endpoint("b"), endpoint("a", 3), endpoint("c.d")]
    for e in saved:
        store.insert(e)
    assert store.load_all() == sorted(saved, key=lambda e: e.inference_id)
    assert store.get("a") == endpoint("a", 3)
    assert store.get("missing") is None
    other = open_store()  # another pool: what another replica reads
    assert [e.to_dict() for e in other.load_all()] == [
        e.to_dict() for e in sorted(saved, key=lambda e: e.inference_id)
    ]


def test_duplicate_insert_is_es_already_exists(open_store: Callable[..., PostgresEndpointStore]) -> None:
    store = open_store()
    store.insert(endpoint("dup"))
    with pytest.raises(ElserError) as info:
        open_store().insert(endpoint("dup", 5))
    err = info.value
    assert (err.code, err.es_type, err.http_status, err.reason) == (
        Code.ALREADY_EXISTS,
        "resource_already_exists_exception",
        400,
        "Inference endpoint [dup] already exists",
    )
    assert store.load_all() == [endpoint("dup")]


def test_racing_inserts_from_many_connections_have_one_winner(
    open_store: Callable[..., PostgresEndpointStore],
) -> None:
    stores = [open_store() for _ in range(4)]
    barrier = threading.Barrier(16)

    def attempt(i: int) -> str:
        barrier.wait()
        try:
            stores[i % 4].insert(endpoint("race", num_allocations=i + 1))
        except ElserError as e:
            return e.error_reason
        return f"ok {i + 1}"

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(attempt, range(16)))
    winners = [o for o in outcomes if o.startswith("ok")]
    assert len(winners) == 1 and outcomes.count("ENDPOINT_EXISTS") == 15
    (stored,) = stores[0].load_all()
    assert f"ok {stored.service_settings.num_allocations}" == winners[0]  # the winner's definition, whole


def test_replace_delete_and_atomic_batches(open_store: Callable[..., PostgresEndpointStore]) -> None:
    store = open_store()
    store.insert(endpoint("e"))
    store.replace(endpoint("e", 7))
    assert store.get("e") == endpoint("e", 7)
    with pytest.raises(ElserError) as info:
        store.replace(endpoint("missing"))
    assert info.value.code is Code.NOT_FOUND
    with pytest.raises(ElserError) as info:
        store.insert_all([endpoint("new-1"), endpoint("e"), endpoint("new-2")])
    assert info.value.error_reason == "ENDPOINT_EXISTS"
    assert [e.inference_id for e in store.load_all()] == ["e"]  # nothing of the failed batch
    store.insert_all([endpoint("new-1"), endpoint("new-2")])
    assert store.delete("e") is True
    assert store.delete("e") is False
    assert [e.inference_id for e in store.load_all()] == ["new-1", "new-2"]


def test_replicas_starting_at_once_migrate_once(pg_database: PgDatabase) -> None:
    barrier = threading.Barrier(8)
    stores: list[PostgresEndpointStore] = []

    def start() -> None:
        store = PostgresEndpointStore(
            pg_database.url, password_file=pg_database.password_file, timeout_s=10.0
        )
        stores.append(store)
        barrier.wait()
        store.open()

    try:
        with ThreadPoolExecutor(8) as pool:
            for future in [pool.submit(start) for _ in range(8)]:
                future.result()
        with psycopg.connect(pg_database.url_with_password) as conn:
            assert conn.execute("SELECT version FROM elser_schema_version").fetchall() == [(len(MIGRATIONS),)]
            tables = conn.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE 'elser_%' ORDER BY 1"
            ).fetchall()
            assert tables == [("elser_endpoints",), ("elser_schema_version",)]
    finally:
        for store in stores:
            store.close()


def test_forward_migration_keeps_data_and_a_newer_schema_is_refused(
    open_store: Callable[..., PostgresEndpointStore], pg_database: PgDatabase
) -> None:
    open_store().insert(endpoint("kept"))
    version_2 = (*MIGRATIONS, ("ALTER TABLE elser_endpoints ADD COLUMN note text",))
    upgraded = open_store(migrations=version_2)
    assert upgraded.schema_version == 2 and upgraded.get("kept") == endpoint("kept")
    with psycopg.connect(pg_database.url_with_password) as conn:
        assert conn.execute("SELECT version FROM elser_schema_version").fetchall() == [(2,)]
        assert conn.execute("SELECT note FROM elser_endpoints").fetchall() == [(None,)]
    with pytest.raises(ElserError) as info:
        open_store()  # the old code, on the newer schema
    assert info.value.error_reason == "STORE_SCHEMA_MISMATCH"
    assert "schema version 2, this server supports up to 1" in info.value.reason


def test_password_file_wins_and_secrets_stay_out_of_messages(
    pg_database: PgDatabase, tmp_path: object
) -> None:
    wrong = PostgresEndpointStore(
        pg_database.url_with_password.replace(pg_database.password, "wrong"), timeout_s=5.0
    )
    try:
        with pytest.raises(ElserError) as info:
            wrong.open()
    finally:
        wrong.close()
    assert info.value.error_reason == "STORE_UNAVAILABLE" and info.value.http_status == 503
    # The caller is told to retry; what the driver said (host, user) stays in the log and the cause.
    assert info.value.reason == "The endpoint store is unavailable. No change was made; retry the request."
    assert "password authentication failed" in str(info.value.__cause__)
    assert wrong.description == f"elser@127.0.0.1:{pg_database.server.port}/{pg_database.name}"

    right = PostgresEndpointStore(
        pg_database.url_with_password.replace(pg_database.password, "wrong"),
        password_file=pg_database.password_file,  # trailing newline stripped
        timeout_s=5.0,
    )
    try:
        right.open()
        assert right.load_all() == []
    finally:
        right.close()


def test_connection_defaults_do_not_override_the_url() -> None:
    params = connection_params(
        "postgresql://u@h:6543/db?connect_timeout=9&application_name=mine&sslmode=require",
        password_file=None,
        timeout_s=5.0,
        application_name="elser-server x",
    )
    assert params["connect_timeout"] == "9" and params["application_name"] == "mine"
    assert params["sslmode"] == "require" and params["keepalives"] == 1
    with pytest.raises(ValueError, match="invalid store URL"):
        connection_params(
            "postgresql://h/db?nosuchparam=1", password_file=None, timeout_s=5.0, application_name="x"
        )


class Recorder:
    """`StoreEvents` that records what the listener thread reports."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def connected(self) -> None:
        self._add("connected", "")

    def changed(self, inference_id: str) -> None:
        self._add("changed", inference_id)

    def lost(self, reason: str) -> None:
        self._add("lost", reason)

    def _add(self, kind: str, value: str) -> None:
        with self._lock:
            self.events.append((kind, value))

    def of(self, kind: str) -> list[str]:
        with self._lock:
            return [v for k, v in self.events if k == kind]


def test_every_committed_write_is_notified_whoever_wrote(
    open_store: Callable[..., PostgresEndpointStore], pg_database: PgDatabase
) -> None:
    store: SharedEndpointStore = open_store()
    recorder = Recorder()
    listener = store.listen(recorder)
    try:
        eventually(lambda: recorder.of("connected") == [""], 30, "listening")
        writer = open_store()
        writer.insert(endpoint("n1"))
        writer.replace(endpoint("n1", 2))
        writer.delete("n1")
        with pytest.raises(ElserError):
            writer.insert_all([endpoint("n2"), endpoint("n2")])  # rolled back: never notified
        with psycopg.connect(pg_database.url_with_password, autocommit=True) as conn:  # a person with psql
            conn.execute("DELETE FROM elser_endpoints")
            conn.execute(
                "INSERT INTO elser_endpoints (inference_id, config) VALUES ('by-hand', %s)",
                (psycopg.types.json.Jsonb(endpoint("by-hand").to_dict()),),
            )
        eventually(lambda: recorder.of("changed")[-1:] == ["by-hand"], 30, "the hand-made insert notified")
        assert recorder.of("changed") == ["n1", "n1", "n1", "by-hand"]
        # The listener's connection is killed (a failover, an idle-connection reaper): it comes back by itself.
        with psycopg.connect(pg_database.url_with_password, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%' AND datname = %s",
                (pg_database.name,),
            )
        eventually(lambda: len(recorder.of("connected")) == 2, 30, "listening again")
        assert len(recorder.of("lost")) == 1
        writer.insert(endpoint("after"))
        eventually(lambda: recorder.of("changed")[-1:] == ["after"], 30, "notified after reconnecting")
    finally:
        listener.stop()


def test_an_unreachable_server_is_store_unavailable_then_recovers() -> None:
    server = PostgresServer()
    try:
        server.start()
        store = PostgresEndpointStore(server.url(), timeout_s=1.0)
        recorder = Recorder()
        try:
            store.open()
            store.insert(endpoint("before"))
            listener = store.listen(recorder)
            eventually(lambda: bool(recorder.of("connected")), 30, "listening")
            server.stop()
            eventually(lambda: bool(recorder.of("lost")), 30, "the listener noticed")
            for operation in (
                store.load_all,
                lambda: store.get("before"),
                lambda: store.insert(endpoint("during")),
                lambda: store.replace(endpoint("before", 2)),
                lambda: store.delete("before"),
            ):
                started = time.monotonic()
                with pytest.raises(ElserError) as info:
                    operation()
                assert info.value.error_reason == "STORE_UNAVAILABLE" and info.value.http_status == 503
                assert time.monotonic() - started < 10  # bounded by the store timeout, not hanging
            server.start()
            eventually(lambda: len(recorder.of("connected")) == 2, 30, "listening again")
            assert [e.inference_id for e in store.load_all()] == ["before"]  # the failed writes wrote nothing
            store.insert(endpoint("after"))
            listener.stop()
        finally:
            store.close()
    finally:
        server.close()
