"""The REST shim on 127.0.0.1:<ephemeral> over a real core (built as the service builds it) serving the tiny
test model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from elser_server.core.service import InferenceCore
from elser_server.transport.rest import RestTransport
from support import make_core, server_settings


@pytest.fixture
def max_body_bytes() -> int:
    """The transport's request body limit (small, so that a test can exceed it)."""
    return 256 * 1024


@pytest.fixture
async def core(tiny_repository: Path, tmp_path: Path) -> AsyncIterator[InferenceCore]:
    core = make_core(tiny_repository, tmp_path, max_inputs_per_request=64)
    await core.start()
    yield core
    await core.close()


@pytest.fixture
async def base_url(core: InferenceCore, tmp_path: Path, max_body_bytes: int) -> AsyncIterator[str]:
    settings = server_settings(data_dir=tmp_path, max_request_bytes=max_body_bytes)
    transport = RestTransport(core, settings, node_name="test-node")
    port = await transport.start()
    yield f"http://127.0.0.1:{port}"
    await transport.stop()


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url) as session:
        yield session
