"""`elser-store`: a single node's SQLite endpoints exported and imported into a shared PostgreSQL store (real
SQLite file, real PostgreSQL server), all or nothing, repeatable, bad files refused clearly."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from elser_server.core.endpoint_rules import parse_put_request
from elser_server.core.store import SqliteEndpointStore
from elser_server.core.types import Endpoint
from elser_server.store_cli import main
from support import PgDatabase


def endpoint(inference_id: str, num_allocations: int = 1) -> Endpoint:
    body = {
        "service": "elasticsearch",
        "service_settings": {
            "model_id": ".elser_model_2",
            "num_threads": 1,
            "num_allocations": num_allocations,
        },
    }
    return parse_put_request(inference_id, "sparse_embedding", body).endpoint


def stored_ids(db: PgDatabase) -> list[str]:
    with psycopg.connect(db.url_with_password) as conn:
        return [r[0] for r in conn.execute("SELECT inference_id FROM elser_endpoints ORDER BY 1")]


@pytest.fixture
def single_node(tmp_path: Path) -> Path:
    """A data directory whose SQLite store holds three endpoints, one of them from before ES 8.16 (no chunking)."""
    data = tmp_path / "data"
    store = SqliteEndpointStore(data / "endpoints.sqlite3")
    legacy = dataclasses.replace(endpoint("legacy"), chunking_settings=None)
    store.insert_all([endpoint("a"), endpoint("b", 2), legacy])
    store.close()
    return data


def test_sqlite_to_postgresql_and_again(single_node: Path, pg_database: PgDatabase, tmp_path: Path) -> None:
    exported = tmp_path / "endpoints.json"
    main(["export", "--data-dir", str(single_node), "-o", str(exported)])
    document = json.loads(exported.read_text())
    assert [e["inference_id"] for e in document["endpoints"]] == ["a", "b", "legacy"]
    assert "chunking_settings" not in document["endpoints"][2]  # kept as stored, not given today's defaults

    env = {
        **os.environ,
        "ELSER_STORE_URL": pg_database.url,
        "ELSER_STORE_PASSWORD_FILE": str(pg_database.password_file),
    }
    command = [sys.executable, "-m", "elser_server.store_cli", "import", str(exported)]
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "imported 3 endpoints, 0 already there\n"
    again = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert again.stdout == "imported 0 endpoints, 3 already there\n"

    # Exported back from PostgreSQL: the same definitions, whole.
    back = subprocess.run(
        [sys.executable, "-m", "elser_server.store_cli", "export"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(back.stdout) == document


def test_a_conflict_imports_nothing(single_node: Path, pg_database: PgDatabase, tmp_path: Path) -> None:
    exported = tmp_path / "endpoints.json"
    main(["export", "--data-dir", str(single_node), "-o", str(exported)])
    store_flags = ["--store-url", pg_database.url, "--store-password-file", str(pg_database.password_file)]
    conflicting = tmp_path / "conflicting.json"
    conflicting.write_text(json.dumps({"endpoints": [endpoint("b", 5).to_dict()]}))
    main(["import", str(conflicting), *store_flags])
    with pytest.raises(SystemExit) as info:
        main(["import", str(exported), *store_flags])
    assert str(info.value.code) == (
        "elser-store: nothing imported: already stored with another definition: b "
        "(delete them first, or leave them out of the file)"
    )
    assert stored_ids(pg_database) == ["b"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not JSON"),
        ('{"items": []}', 'expected {"endpoints": [...]}'),
        ('{"endpoints": [{"inference_id": "x"}]}', "endpoints[0] is not an endpoint definition"),
        (
            json.dumps({"endpoints": [{**endpoint("x").to_dict(), "surprise": 1}]}),
            "endpoints[0] has fields or values an endpoint cannot hold",
        ),
        (json.dumps({"endpoints": [endpoint("x").to_dict()] * 2}), "an inference_id appears twice"),
    ],
)
def test_bad_files_are_refused_before_touching_the_store(
    content: str, message: str, pg_database: PgDatabase, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(SystemExit) as info:
        main(
            [
                "import",
                str(bad),
                "--store-url",
                pg_database.url,
                "--store-password-file",
                str(pg_database.password_file),
            ]
        )
    assert message in str(info.value.code)
    with psycopg.connect(pg_database.url_with_password) as conn:  # not even the schema was created
        assert conn.execute("SELECT to_regclass('elser_endpoints')").fetchone() == (None,)


def test_an_unreachable_store_and_a_bad_url_are_clear() -> None:
    with pytest.raises(SystemExit) as info:
        main(["export", "--store-url", "postgresql://nobody@127.0.0.1:1/none"])
    assert str(info.value.code).startswith(
        "elser-store: The endpoint store is unavailable. No change was made; retry the request. (connection failed"
    )
    with pytest.raises(SystemExit) as info:
        main(["export", "--store-url", "mysql://x"])
    assert "must be a postgresql:// URL" in str(info.value.code)
