"""The core facade both transports call (the MLServer "data plane" pattern): endpoints, deployments, inference.

In progress: the contract is documented in docs/architecture.md; implementation lands in the next commits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from elser_server.core.types import Endpoint, InferOptions, SparseEmbedding


@dataclass(frozen=True)
class PutResult:
    endpoint: Endpoint
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DeleteResult:
    acknowledged: bool
    pipelines: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)
    error_message: str | None = None


class InferenceCore:
    @property
    def ready(self) -> bool:
        raise NotImplementedError

    def add_readiness_listener(self, cb: Callable[[bool], None]) -> None:
        raise NotImplementedError

    async def put_endpoint(
        self, inference_id: str, task_type: str | None, body: object, *, timeout_s: float | None = None
    ) -> PutResult:
        raise NotImplementedError

    def get_endpoints(self, inference_id: str | None = None, task_type: str | None = None) -> list[Endpoint]:
        raise NotImplementedError

    async def delete_endpoint(
        self, inference_id: str, task_type: str | None = None, *, dry_run: bool = False, force: bool = False
    ) -> DeleteResult:
        raise NotImplementedError

    async def update_endpoint(self, inference_id: str, task_type: str | None, body: object) -> Endpoint:
        raise NotImplementedError

    async def infer(
        self,
        inference_id: str,
        task_type: str | None,
        inputs: Sequence[str],
        options: InferOptions = InferOptions(),
        *,
        deadline: float | None = None,
    ) -> list[SparseEmbedding]:
        raise NotImplementedError

    def watch_deployment(self, inference_id: str) -> AsyncIterator[object]:
        raise NotImplementedError
