"""The test kit: helpers shared by test modules (conftest.py files are not importable by name: several
exist). A core or settings as the service builds them, ES PUT bodies (their gRPC twin is the client's
`endpoint_config`) and validation text, bounded waits (`eventually`: never a fixed sleep), the tiny model."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from elser_cluster import PostgresServer
from elser_server.app import Service, build_core
from elser_server.core.memory import Footprint, estimate_footprint
from elser_server.core.model_manager import ModelManager
from elser_server.core.service import InferenceCore
from elser_server.model.checkpoint import BertConfig, tiny_vocab, wordpiece_tokenizer, write_random_checkpoint
from elser_server.model.convert import convert
from elser_server.model.package import ModelPackage
from elser_server.model.repository import publish
from elser_server.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REPOSITORY = REPO_ROOT / "models" / "repository"
TINY_MODEL_IDS = (".elser_model_2", ".elser_model_2_linux-x86_64")

T = TypeVar("T")

TINY_CONFIG = BertConfig(
    vocab_size=0,  # set from the generated vocabulary
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    max_position_embeddings=512,
    type_vocab_size=2,
    layer_norm_eps=1e-12,
)


# Wider and deeper than the tiny model: a batch takes long enough (milliseconds per text) that a test can act
# while one runs, or offer load that really outruns the queue.
SLOW_CONFIG = dataclasses.replace(
    TINY_CONFIG, hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024
)


def make_tiny_checkpoint(out: Path, seed: int = 0, **variant: bool) -> Path:
    tokenizer = wordpiece_tokenizer(tiny_vocab())
    config = dataclasses.replace(TINY_CONFIG, vocab_size=tokenizer.get_vocab_size())
    return write_random_checkpoint(out, config, tokenizer, seed, **variant)


def make_slow_repository(root: Path, model_id: str = ".elser_model_2") -> Path:
    """A model repository under `root` with the SLOW_CONFIG model published as `model_id`."""
    tokenizer = wordpiece_tokenizer(tiny_vocab())
    config = dataclasses.replace(SLOW_CONFIG, vocab_size=tokenizer.get_vocab_size())
    checkpoint = write_random_checkpoint(root / "checkpoint", config, tokenizer)
    package = convert(checkpoint, root / "package", model_id=model_id)
    publish(package.path, root / "repo", model_id)
    return root / "repo"


def put_body(model_id: str = ".elser_model_2", **service_settings: Any) -> dict[str, Any]:
    """An elasticsearch-service PUT body: one thread and, unless `adaptive_allocations` is given, one allocation;
    `service_settings` add or override fields."""
    settings: dict[str, Any] = {"model_id": model_id}
    if "adaptive_allocations" not in service_settings:
        settings["num_allocations"] = 1
    settings |= {"num_threads": 1, **service_settings}
    return {"service": "elasticsearch", "service_settings": settings}


PUT_BODY = put_body()
# The deprecated `elser` service: no model_id (ES picks ELSER's variant for the platform).
ELSER_PUT_BODY = {"service": "elser", "service_settings": {"num_allocations": 1, "num_threads": 1}}


def validation_failed(*messages: str) -> str:
    """ES's text for collected validation errors: "Validation Failed: 1: first;2: second;"."""
    return "Validation Failed: " + "".join(f"{i}: {m};" for i, m in enumerate(messages, 1))


def server_settings(
    repository: str | Path = DEFAULT_REPOSITORY, data_dir: Path = Path("data"), **overrides: Any
) -> Settings:
    """Settings for an in-process service or core: loopback, ephemeral ports, the given model repository,
    no preloaded default endpoint and a short drain; `overrides` are Settings fields."""
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


def footprint_as_served(
    package: ModelPackage, model_id: str = ".elser_model_2", **overrides: Any
) -> Footprint:
    """The memory admission estimate of `model_id` (on `package`) in a service with default settings but
    `overrides` (Settings fields): for the backend and precision such a service would run it in."""
    settings = Settings(**overrides)
    models = ModelManager(
        settings.model_repository,
        settings.model_cache_dir,
        runtime=settings.runtime,
        precision=settings.precision,
    )
    return estimate_footprint(package, settings.token_budget, models.layout_for(model_id, package))


def make_core(repository: str | Path, data_dir: Path, **overrides: Any) -> InferenceCore:
    """A core built as the service builds it (app.build_core), not started; `overrides` are Settings fields."""
    return build_core(server_settings(repository, data_dir, **overrides))


@asynccontextmanager
async def running(settings: Settings, **options: Any) -> AsyncIterator[Service]:
    """The whole service (core + gRPC + REST + metrics) in the test's event loop."""
    service = Service(settings, **options)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def eventually(
    predicate: Callable[[], T],
    timeout_s: float = 30.0,
    what: str = "the condition",
    *,
    interval_s: float = 0.01,
) -> T:
    """Poll `predicate` every `interval_s` until it returns something true, and return that; fail after
    `timeout_s` naming `what`. An exception from `predicate` ends the wait at once."""
    deadline = time.monotonic() + timeout_s
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)
    return result


async def eventually_async(
    predicate: Callable[[], T | Awaitable[T]],
    timeout_s: float = 30.0,
    what: str = "the condition",
    *,
    interval_s: float = 0.01,
) -> T:
    """`eventually` for the event loop (it runs between polls): `predicate` may be a coroutine function."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return cast(T, result)
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


# Chunking settings of each strategy as ES's chunker tests use them on blank input (WordBoundaryChunkerTests
# testEmptyString/testWhitespace, EmbeddingRequestChunkerTests testBlankInput_*/testWhitespaceInput_*,
# RecursiveChunkerTests testChunkEmptyInput, NoopChunker), and blank texts: ES gives each one chunk, the
# whole input, and embeds that text as it embeds any input.
BLANK_CHUNKING: dict[str, dict[str, object]] = {
    "word-10-5": {"strategy": "word", "max_chunk_size": 10, "overlap": 5},
    "word-100-10": {"strategy": "word", "max_chunk_size": 100, "overlap": 10},
    "sentence-250-1": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1},
    "sentence-20-0": {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 0},
    "recursive-plaintext": {"strategy": "recursive", "max_chunk_size": 10},
    "recursive-markdown": {"strategy": "recursive", "max_chunk_size": 10, "separator_group": "markdown"},
    "recursive-custom": {"strategy": "recursive", "max_chunk_size": 10, "separators": [" ", "\\s+"]},
    "none": {"strategy": "none"},
}
BLANK_TEXTS = ["", " ", "   ", "\n\n", "\t \u3000\u2028", "\r\n"]


@dataclass(frozen=True)
class PgDatabase:
    """A fresh database owned by role `elser`: `url` has no password, `password_file` holds it."""

    server: PostgresServer
    name: str
    url: str
    password: str
    password_file: Path

    @property
    def url_with_password(self) -> str:
        return self.url.replace("elser@", f"elser:{self.password}@", 1)
