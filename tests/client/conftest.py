"""A real grpc.aio server over a real core with the tiny test model, for the client package."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from elser_server.core.models import ModelManager
from elser_server.core.service import InferenceCore
from elser_server.core.store import SqliteEndpointStore
from elser_server.transport.grpc.server import GrpcTransport


@pytest.fixture
async def target(tiny_repository: Path, tmp_path: Path) -> AsyncIterator[str]:
    core = InferenceCore(
        SqliteEndpointStore(tmp_path / "endpoints.sqlite3"),
        ModelManager(str(tiny_repository), tmp_path / "models"),
    )
    await core.start()
    transport = GrpcTransport(core, host="127.0.0.1", port=0)
    port = await transport.start()
    yield f"127.0.0.1:{port}"
    await transport.stop(0)
    await core.close()
