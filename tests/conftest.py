"""Shared fixtures: a tiny random BERT-MLM generated in the test run (no download), its package and repository,
the real default model when `elser-model fetch-default models/repository` has built it, its golden vectors
(tests/data) and server processes."""

from __future__ import annotations

import itertools
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elser_cluster import PostgresServer
from elser_server.model.convert import convert
from elser_server.model.package import ModelPackage
from elser_server.model.repository import install, publish
from serverprocess import ServerFactory, ServerProcess
from support import DEFAULT_REPOSITORY, REPO_ROOT, TINY_MODEL_IDS, PgDatabase, make_tiny_checkpoint

GOLDEN_FILE = Path(__file__).parent / "data" / "splade-tiny.golden.json"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoint")


@pytest.fixture(scope="session")
def tiny_package(tiny_checkpoint: Path) -> ModelPackage:
    return convert(tiny_checkpoint, tiny_checkpoint.parent / "package", model_id=".elser_model_2")


@pytest.fixture(scope="session")
def tiny_repository(tiny_package: ModelPackage, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with the tiny model published under ELSER's ids (for server tests)."""
    repo = tmp_path_factory.mktemp("tiny-repo")
    for model_id in TINY_MODEL_IDS:
        publish(tiny_package.path, repo, model_id)
    return repo


@pytest.fixture
def start_server(tiny_repository: Path, tmp_path: Path) -> Iterator[ServerFactory]:
    """Start `elser-server` processes (on the tiny repository unless given another, `tmp_path/data`; ELSER_*
    overrides as keyword arguments), killed at the end of the test."""
    started: list[ServerProcess] = []

    def start(
        repo: str | Path = tiny_repository, *, open_files_limit: int | None = None, **env: str
    ) -> ServerProcess:
        server = ServerProcess(
            repo,
            tmp_path / "data",
            tmp_path / f"server-{len(started)}.log",
            open_files_limit=open_files_limit,
            **env,
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


def _installed_default(model_id: str, cache: Path) -> ModelPackage:
    if not (DEFAULT_REPOSITORY / "elser_model_2.metadata.json").is_file():
        pytest.skip(
            f"default model not built: run `elser-model fetch-default {DEFAULT_REPOSITORY.relative_to(REPO_ROOT)}`"
            " (make model)"
        )
    return ModelPackage.load(install(DEFAULT_REPOSITORY, model_id, cache))


@pytest.fixture(scope="session")
def default_package(tmp_path_factory: pytest.TempPathFactory) -> ModelPackage:
    return _installed_default(".elser_model_2", tmp_path_factory.mktemp("model-cache"))


@pytest.fixture(scope="session")
def default_int8_package(tmp_path_factory: pytest.TempPathFactory) -> ModelPackage:
    return _installed_default(".elser_model_2_int8", tmp_path_factory.mktemp("model-cache-int8"))


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    """PyTorch reference vectors of the default model (tests/data/README.md says how they were made)."""
    data: dict[str, Any] = json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One private PostgreSQL server for the whole run (each test gets its own database: `pg_database`)."""
    server = PostgresServer()
    server.start()
    yield server
    server.close()


_ROLE_PASSWORD = secrets.token_hex(12)
_database_numbers = itertools.count()


@pytest.fixture
def pg_database(postgres: PostgresServer, tmp_path: Path) -> PgDatabase:
    name = f"elser_test_{next(_database_numbers)}"
    url = postgres.create_database(name, "elser", _ROLE_PASSWORD)
    password_file = tmp_path / "store-password"
    password_file.write_text(_ROLE_PASSWORD + "\n")
    return PgDatabase(postgres, name, url, _ROLE_PASSWORD, password_file)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ELSER_NO_SKIPS set (.ci/run sets it), a skipped test fails the run: in CI nothing may be missing."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if os.environ.get("ELSER_NO_SKIPS") and skipped and exitstatus == pytest.ExitCode.OK:
        reporter.write_line(f"ELSER_NO_SKIPS: {len(skipped)} skipped test(s) fail the run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
