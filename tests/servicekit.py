"""The whole service (app.Service: core + gRPC + REST + metrics) in the test's event loop, on ephemeral
127.0.0.1 ports, serving the tiny test model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from elser_server.app import Service
from elser_server.settings import Settings
from serverprocess import PUT_BODY, free_port

__all__ = ["PUT_BODY", "free_port", "running", "service_settings"]


def service_settings(repository: Path, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "grpc_port": 0,
        "http_port": 0,
        "metrics_port": 0,
        "data_dir": data_dir,
        "model_repository": str(repository),
        "preload_default_endpoint": False,
        "drain_s": 0.0,
        "shutdown_grace_s": 1.0,
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def running(settings: Settings, **options: Any) -> AsyncIterator[Service]:
    service = Service(settings, **options)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
