"""The REST shim on 127.0.0.1:<ephemeral> over a real core (built as the service builds it) serving the tiny
test model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from elser_server.app import build_core
from elser_server.core.service import InferenceCore
from elser_server.settings import Settings
from elser_server.transport.rest import RestTransport

MAX_BODY_BYTES = 256 * 1024


@pytest.fixture
async def core(tiny_repository: Path, tmp_path: Path) -> AsyncIterator[InferenceCore]:
    settings = Settings(
        data_dir=tmp_path,
        model_repository=str(tiny_repository),
        preload_default_endpoint=False,
        max_inputs_per_request=64,
    )
    core = build_core(settings)
    await core.start()
    yield core
    await core.close()


@pytest.fixture
async def base_url(core: InferenceCore) -> AsyncIterator[str]:
    transport = RestTransport(core, "127.0.0.1", 0, max_body_bytes=MAX_BODY_BYTES, node_name="test-node")
    port = await transport.start()
    yield f"http://127.0.0.1:{port}"
    await transport.stop()


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url) as session:
        yield session
