"""Domain types shared by the core and both transports (ES semantics, no transport types)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from elser_server.core.chunking.chunker import Chunk
from elser_server.core.chunking.settings import ChunkingSettings, parse_chunking_settings

if TYPE_CHECKING:
    from elser_server.core.errors import ElserError
    from elser_server.core.events import DeploymentEvent, Phase
    from elser_server.core.stats import DeploymentStats
    from elser_server.runtime.layout import Layout


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
    # Only on the endpoint of a PUT that timed out, never stored: its deployment's state (an extension).
    deployment_state: Phase | None = None

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
        if self.deployment_state is not None:
            out["deployment_state"] = self.deployment_state.value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Endpoint:
        """Inverse of `to_dict()` for trusted (stored) data."""
        ss = d["service_settings"]
        adaptive = ss.get("adaptive_allocations")
        chunking = d.get("chunking_settings")
        return cls(
            inference_id=d["inference_id"],
            task_type=TaskType(d["task_type"]),
            service=d["service"],
            service_settings=ServiceSettings(
                model_id=ss["model_id"],
                num_threads=ss["num_threads"],
                num_allocations=ss.get("num_allocations"),
                adaptive_allocations=None
                if adaptive is None
                else AdaptiveAllocations(
                    adaptive.get("enabled"),
                    adaptive.get("min_number_of_allocations"),
                    adaptive.get("max_number_of_allocations"),
                ),
                deployment_id=ss.get("deployment_id"),
            ),
            chunking_settings=None if chunking is None else parse_chunking_settings(chunking, stored=True),
            task_settings=dict(d.get("task_settings", {})),
        )


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


@dataclass(frozen=True)
class PutResult:
    endpoint: Endpoint
    warnings: list[str] = field(default_factory=list)  # ES deprecation warnings (REST: `Warning` headers)


@dataclass(frozen=True)
class DeleteResult:
    acknowledged: bool
    pipelines: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)
    error_message: str | None = None


@dataclass(frozen=True)
class ChunkEmbedding:
    """One chunk of input `input_index` (chunks numbered in text order) and its embedding."""

    input_index: int
    chunk_index: int
    chunk: Chunk
    embedding: SparseEmbedding


@dataclass(frozen=True)
class ChunkedInputDone:
    """Every chunk of input `input_index` was sent (`chunk_count`), or it failed with `error` alone."""

    input_index: int
    chunk_count: int
    error: ElserError | None = None


@dataclass(frozen=True)
class DeploymentReport:
    """What GetDeploymentStats / the stats route show (after ES deployment_stats)."""

    snapshot: DeploymentEvent
    stats: DeploymentStats
    threads_per_allocation: int
    queue_capacity: int
    queued: int = 0
    start_time: float | None = None
    replica: str = ""  # the replica this report is about (each replica reports its own deployment)
    layout: Layout | None = None  # how the model runs (backend, precision); None until an allocation starts
