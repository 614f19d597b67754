"""The core's share of the settings, grouped by concern. Settings (settings.py) holds every default; these
carry the values into the core, so the core never reads the environment itself."""

from __future__ import annotations

from dataclasses import dataclass

from elser_server.settings import Settings


@dataclass(frozen=True)
class Limits:
    max_inputs_per_request: int
    max_input_bytes: int
    default_timeout_s: float
    put_timeout_s: float
    # CPU seconds recursive chunking's separator regexes get per input (None: only the deadline bounds them)
    separator_timeout_s: float | None
    timed_out_deployment_keep_s: float


@dataclass(frozen=True)
class BatchingConfig:
    queue_capacity: int
    interactive_queue_capacity: int
    token_budget: int
    max_batch_size: int
    processors: int
    stop_grace_s: float


@dataclass(frozen=True)
class AdaptiveConfig:
    interval_s: float
    scale_to_zero_s: float
    scale_up_cooldown_s: float


@dataclass(frozen=True)
class CoreConfig:
    limits: Limits
    batching: BatchingConfig
    adaptive: AdaptiveConfig
    preload_default_endpoint: bool
    replica_name: str  # named in stats and deployment events: each replica reports its own deployments
    memory_budget: int  # bytes the deployments may use together (core/memory.py)

    @classmethod
    def from_settings(cls, settings: Settings) -> CoreConfig:
        return cls(
            limits=Limits(
                max_inputs_per_request=settings.max_inputs_per_request,
                max_input_bytes=settings.max_input_bytes,
                default_timeout_s=settings.default_timeout_s,
                put_timeout_s=settings.put_timeout_s,
                separator_timeout_s=settings.chunking_separator_timeout_s,
                timed_out_deployment_keep_s=settings.timed_out_deployment_keep_s,
            ),
            batching=BatchingConfig(
                queue_capacity=settings.queue_capacity,
                interactive_queue_capacity=settings.interactive_queue_capacity,
                token_budget=settings.token_budget,
                max_batch_size=settings.max_batch_size,
                processors=settings.effective_processors,
                stop_grace_s=settings.shutdown_grace_s,
            ),
            adaptive=AdaptiveConfig(
                interval_s=settings.adaptive_interval_s,
                scale_to_zero_s=settings.scale_to_zero_s,
                scale_up_cooldown_s=settings.scale_up_cooldown_s,
            ),
            preload_default_endpoint=settings.preload_default_endpoint,
            replica_name=settings.effective_replica_name,
            memory_budget=settings.memory_budget,
        )
