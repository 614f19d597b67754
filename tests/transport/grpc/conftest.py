"""A real grpc.aio server on 127.0.0.1:<ephemeral> over a real core serving the tiny test model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from elser_server.core.service import InferenceCore
from elser_server.transport.grpc.server import GrpcTransport
from support import make_core, server_settings


@pytest.fixture
async def core(tiny_repository: Path, tmp_path: Path) -> AsyncIterator[InferenceCore]:
    core = make_core(tiny_repository, tmp_path, max_inputs_per_request=64)
    await core.start()
    yield core
    await core.close()


@pytest.fixture
async def port(core: InferenceCore, tmp_path: Path) -> AsyncIterator[int]:
    transport = GrpcTransport(core, server_settings(data_dir=tmp_path))
    bound = await transport.start()
    yield bound
    await transport.stop(0)


@pytest.fixture
async def channel(port: int) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
