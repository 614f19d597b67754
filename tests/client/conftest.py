"""A real grpc.aio server over a real core with the tiny test model, for the client package."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from elser_server.transport.grpc.server import GrpcTransport
from support import make_core, server_settings


@pytest.fixture
async def target(tiny_repository: Path, tmp_path: Path) -> AsyncIterator[str]:
    settings = server_settings(tiny_repository, tmp_path)
    core = make_core(tiny_repository, tmp_path)
    await core.start()
    transport = GrpcTransport(core, settings)
    port = await transport.start()
    yield f"127.0.0.1:{port}"
    await transport.stop(0)
    await core.close()
