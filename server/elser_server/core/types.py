"""Domain types shared by the core and both transports (ES semantics, no transport types)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from elser_server.core.chunking.settings import ChunkingSettings


class TaskType(enum.StrEnum):
    SPARSE_EMBEDDING = "sparse_embedding"
    TEXT_EMBEDDING = "text_embedding"
    RERANK = "rerank"
    COMPLETION = "completion"
    CHAT_COMPLETION = "chat_completion"
    EMBEDDING = "embedding"
    ANY = "any"


class Priority(enum.Enum):
    """Queue lane. AUTO picks INTERACTIVE for small requests (search-style) and BULK otherwise."""

    AUTO = "auto"
    INTERACTIVE = "interactive"
    BULK = "bulk"


@dataclass(frozen=True)
class AdaptiveAllocations:
    enabled: bool | None = None
    min_number_of_allocations: int | None = None
    max_number_of_allocations: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"enabled": bool(self.enabled)}
        if self.min_number_of_allocations is not None:
            out["min_number_of_allocations"] = self.min_number_of_allocations
        if self.max_number_of_allocations is not None:
            out["max_number_of_allocations"] = self.max_number_of_allocations
        return out


@dataclass(frozen=True)
class ServiceSettings:
    model_id: str
    num_threads: int
    num_allocations: int | None = None
    adaptive_allocations: AdaptiveAllocations | None = None
    deployment_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """ES ElasticsearchInternalServiceSettings order and presence rules."""
        out: dict[str, Any] = {}
        if self.num_allocations is not None:
            out["num_allocations"] = self.num_allocations
        out["num_threads"] = self.num_threads
        out["model_id"] = self.model_id
        if self.adaptive_allocations is not None:
            out["adaptive_allocations"] = self.adaptive_allocations.to_dict()
        if self.deployment_id is not None:
            out["deployment_id"] = self.deployment_id
        return out


@dataclass(frozen=True)
class Endpoint:
    inference_id: str
    task_type: TaskType
    service_settings: ServiceSettings
    chunking_settings: ChunkingSettings | None
    service: str = "elasticsearch"
    task_settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ES endpoint object, keys in ES's order (task_settings omitted when empty)."""
        out: dict[str, Any] = {
            "inference_id": self.inference_id,
            "task_type": self.task_type.value,
            "service": self.service,
            "service_settings": self.service_settings.to_dict(),
        }
        if self.task_settings:
            out["task_settings"] = dict(self.task_settings)
        if self.chunking_settings is not None:
            out["chunking_settings"] = self.chunking_settings.to_dict()
        return out


@dataclass(frozen=True)
class InferOptions:
    return_tokens: bool = True
    top_k: int | None = None
    min_weight: float | None = None
    priority: Priority = Priority.AUTO


@dataclass(frozen=True)
class SparseEmbedding:
    """One input's sparse vector: vocabulary ids and weights sorted by descending weight (weights > 0)."""

    token_ids: npt.NDArray[np.uint32]
    weights: npt.NDArray[np.float32]
    is_truncated: bool
    num_tokens: int
    tokens: tuple[str, ...] | None = None
