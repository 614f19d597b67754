"""A real grpc.aio server on 127.0.0.1:<ephemeral> over a real core serving the tiny test model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from elser_server.core.models import ModelManager
from elser_server.core.service import InferenceCore, Limits
from elser_server.core.store import SqliteEndpointStore
from elser_server.transport.grpc.server import GrpcTransport

PUT_BODY = {
    "service": "elasticsearch",
    "service_settings": {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1},
}


@pytest.fixture
async def core(tiny_repository: Path, tmp_path: Path) -> AsyncIterator[InferenceCore]:
    core = InferenceCore(
        SqliteEndpointStore(tmp_path / "endpoints.sqlite3"),
        ModelManager(str(tiny_repository), tmp_path / "models"),
        limits=Limits(max_inputs_per_request=64),
    )
    await core.start()
    yield core
    await core.close()


@pytest.fixture
async def port(core: InferenceCore) -> AsyncIterator[int]:
    transport = GrpcTransport(core, host="127.0.0.1", port=0)
    bound = await transport.start()
    yield bound
    await transport.stop(0)


@pytest.fixture
async def channel(port: int) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
