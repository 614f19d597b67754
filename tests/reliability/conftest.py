"""Fixtures of the load and fault suite: server processes on the tiny model, killed at the end of each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serverprocess import ServerProcess

ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def start_server(tiny_repository: Path, tmp_path: Path) -> Iterator[ServerFactory]:
    """Start `elser-server` on the tiny repository and `tmp_path/data` (env overrides as keyword args)."""
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
