"""SQLite endpoint store: round trip, uniqueness, persistence across reopen, crash atomicity."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from elser_server.core.defaults import default_endpoint
from elser_server.core.endpoint_rules import parse_put_request
from elser_server.core.errors import Code, ElserError
from elser_server.core.store import EndpointStore, SqliteEndpointStore
from elser_server.core.types import Endpoint
from support import put_body


def endpoint(inference_id: str, num_allocations: int = 1) -> Endpoint:
    body = put_body(num_threads=2, num_allocations=num_allocations)
    body["chunking_settings"] = {"strategy": "word", "max_chunk_size": 100, "overlap": 20}
    return parse_put_request(inference_id, "sparse_embedding", body).endpoint


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "endpoints.db"


def test_round_trip_and_reopen(db: Path) -> None:
    store: EndpointStore = SqliteEndpointStore(db)
    saved = [endpoint("b"), default_endpoint(), endpoint("a", 3)]
    for e in saved:
        store.insert(e)
    assert store.load_all() == sorted(saved, key=lambda e: e.inference_id)
    store.close()
    reopened = SqliteEndpointStore(db)
    assert [e.to_dict() for e in reopened.load_all()] == [
        e.to_dict() for e in sorted(saved, key=lambda e: e.inference_id)
    ]
    reopened.close()


def test_duplicate_insert_is_already_exists(db: Path) -> None:
    store = SqliteEndpointStore(db)
    store.insert(endpoint("dup"))
    with pytest.raises(ElserError) as info:
        store.insert(endpoint("dup", 5))
    err = info.value
    assert (err.code, err.es_type, err.http_status) == (
        Code.ALREADY_EXISTS,
        "resource_already_exists_exception",
        400,
    )
    assert err.reason == "Inference endpoint [dup] already exists"
    assert store.load_all() == [endpoint("dup")]
    store.close()


def test_concurrent_inserts_of_one_id_have_one_winner(db: Path) -> None:
    store = SqliteEndpointStore(db)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        try:
            store.insert(endpoint("race"))
            result = "ok"
        except ElserError as e:
            result = e.error_reason
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ENDPOINT_EXISTS"] * 15 + ["ok"]
    store.close()


def test_replace_and_delete(db: Path) -> None:
    store = SqliteEndpointStore(db)
    store.insert(endpoint("e"))
    store.replace(endpoint("e", 7))
    assert store.load_all()[0].service_settings.num_allocations == 7
    with pytest.raises(ElserError) as info:
        store.replace(endpoint("missing"))
    assert info.value.code is Code.NOT_FOUND
    assert store.delete("e") is True
    assert store.delete("e") is False
    assert store.load_all() == []
    store.close()


def test_schema_pragmas_and_timestamps(db: Path) -> None:
    store = SqliteEndpointStore(db)
    before = time.time()
    store.insert(endpoint("t"))
    store.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    created, updated, service = conn.execute(
        "SELECT created_at, updated_at, json_extract(config, '$.service') FROM endpoints"
    ).fetchone()
    assert before <= created == updated and service == "elasticsearch"
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(ElserError) as info:
        SqliteEndpointStore(db)
    assert info.value.error_reason == "STORE_SCHEMA_MISMATCH"


_WRITER = """
import dataclasses, sys
from elser_server.core.defaults import default_endpoint
from elser_server.core.store import SqliteEndpointStore

store = SqliteEndpointStore(sys.argv[1])
base = default_endpoint()
i = 0
while True:
    e = dataclasses.replace(base, inference_id=f"e-{i:06d}")
    store.insert(e)
    store.replace(e)
    print(e.inference_id, flush=True)
    i += 1
"""


@pytest.mark.parametrize("acked_before_kill", [1, 50, 200])
def test_sigkill_during_writes_keeps_every_acknowledged_insert(db: Path, acked_before_kill: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db)], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert proc.stdout is not None
    acked: list[str] = []
    try:
        while len(acked) < acked_before_kill:
            line = proc.stdout.readline()
            assert line, "writer exited early"
            acked.append(line.strip())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # Lines printed before the kill are acknowledged writes too.
    acked += [line.strip() for line in proc.stdout.read().splitlines() if line.strip()]
    proc.stdout.close()

    store = SqliteEndpointStore(db)
    stored = {e.inference_id for e in store.load_all()}
    store.close()
    assert set(acked) <= stored
    assert len(stored) - len(set(acked)) <= 1  # at most the insert whose ack was never printed
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
