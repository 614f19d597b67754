"""Proto ↔ core conversions. Requests become ES-shaped values so the core validates gRPC and REST alike."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from elser.v1 import types_pb2
from elser_server.core.chunking.settings import ChunkingSettings
from elser_server.core.endpoint_rules import parse_task_type
from elser_server.core.errors import FieldViolation, invalid
from elser_server.core.es_validation import validation_failed
from elser_server.core.events import DeploymentEvent
from elser_server.core.input_type import input_type_priority, input_type_problem, parse_input_type
from elser_server.core.types import (
    DeploymentReport,
    Endpoint,
    InferOptions,
    Priority,
    ServiceSettings,
    SparseEmbedding,
)
from google.protobuf import struct_pb2, timestamp_pb2

_TASK_TYPE_PREFIX = "TASK_TYPE_"
_STRATEGY_PREFIX = "CHUNKING_STRATEGY_"
_PRIORITIES = {
    types_pb2.PRIORITY_UNSPECIFIED: Priority.AUTO,
    types_pb2.PRIORITY_INTERACTIVE: Priority.INTERACTIVE,
    types_pb2.PRIORITY_BULK: Priority.BULK,
}


def task_type_arg(task_type: int) -> str | None:
    """The core's raw task-type argument: None when unspecified, else ES's lower-case name."""
    if task_type == types_pb2.TASK_TYPE_UNSPECIFIED:
        return None
    if task_type not in types_pb2.TaskType.values():
        # proto3 keeps unknown enum numbers: the core rejects the number as ES rejects an unknown name.
        return str(task_type)
    return str(types_pb2.TaskType.Name(task_type)).removeprefix(_TASK_TYPE_PREFIX).lower()


def task_type_proto(task_type: str) -> int:
    name = _TASK_TYPE_PREFIX + task_type.upper()
    return int(types_pb2.TaskType.Value(name)) if name in types_pb2.TaskType.keys() else 0  # noqa: SIM118 (EnumTypeWrapper has no __contains__)


def _struct_dict(struct: struct_pb2.Struct, path: str) -> dict[str, Any]:
    """A Struct as the JSON object it stands for. JSON has no NaN or infinities: over REST such a body fails to
    parse, so over gRPC it is refused with REST's reason and the field that held it."""
    return {key: _json_value(value, f"{path}.{key}") for key, value in struct.fields.items()}


def _json_value(value: struct_pb2.Value, path: str) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            token = "NaN" if math.isnan(number) else "Infinity" if number > 0 else "-Infinity"
            raise invalid(
                "Failed to parse content to map",
                es_type="parse_exception",
                error_reason="INVALID_BODY",
                violations=[FieldViolation(path, f"Non-standard token '{token}': JSON numbers are finite")],
            )
        return number
    if kind == "struct_value":
        return _struct_dict(value.struct_value, path)
    if kind == "list_value":
        return [_json_value(item, f"{path}[{i}]") for i, item in enumerate(value.list_value.values)]
    if kind in ("string_value", "bool_value"):
        return getattr(value, kind)
    return None  # null_value, or no value at all


def _adaptive_body(msg: types_pb2.AdaptiveAllocations) -> dict[str, Any]:
    return {
        name: getattr(msg, name)
        for name in ("enabled", "min_number_of_allocations", "max_number_of_allocations")
        if msg.HasField(name)
    }


def _service_settings_body(msg: types_pb2.ServiceSettings) -> dict[str, Any]:
    out: dict[str, Any] = {
        name: getattr(msg, name)
        for name in ("model_id", "num_allocations", "num_threads")
        if msg.HasField(name)
    }
    if msg.HasField("adaptive_allocations"):
        out["adaptive_allocations"] = _adaptive_body(msg.adaptive_allocations)
    if msg.HasField("deployment_id"):
        out["deployment_id"] = msg.deployment_id
    return out


def chunking_body(msg: types_pb2.ChunkingSettings) -> dict[str, Any]:
    """ES `chunking_settings` with only the fields the caller set (an empty map means "the defaults")."""
    out: dict[str, Any] = {}
    if msg.strategy not in types_pb2.ChunkingStrategy.values():
        out["strategy"] = str(msg.strategy)  # an unknown number: the core's unknown-strategy error
    elif msg.strategy != types_pb2.CHUNKING_STRATEGY_UNSPECIFIED:
        out["strategy"] = types_pb2.ChunkingStrategy.Name(msg.strategy).removeprefix(_STRATEGY_PREFIX).lower()
    for name in ("max_chunk_size", "overlap", "sentence_overlap"):
        if msg.HasField(name):
            out[name] = getattr(msg, name)
    if msg.separators:
        out["separators"] = list(msg.separators)
    if msg.HasField("separator_group"):
        out["separator_group"] = msg.separator_group
    return out


def endpoint_body(msg: types_pb2.EndpointConfig) -> dict[str, Any]:
    """The ES PUT/_update body: only present fields become keys, so ES's "missing setting" rules apply."""
    body: dict[str, Any] = {}
    if msg.HasField("service"):
        body["service"] = msg.service
    task_type = task_type_arg(msg.task_type)
    if task_type is not None:
        body["task_type"] = task_type
    if msg.HasField("service_settings"):
        body["service_settings"] = _service_settings_body(msg.service_settings)
    if msg.HasField("chunking_settings"):
        body["chunking_settings"] = chunking_body(msg.chunking_settings)
    if msg.HasField("task_settings"):
        body["task_settings"] = _struct_dict(msg.task_settings, "task_settings")
    return body


def _service_settings_proto(settings: ServiceSettings) -> types_pb2.ServiceSettings:
    msg = types_pb2.ServiceSettings(
        model_id=settings.model_id,
        num_threads=settings.num_threads,
        num_allocations=settings.num_allocations,
        deployment_id=settings.deployment_id,
    )
    adaptive = settings.adaptive_allocations
    if adaptive is not None:
        msg.adaptive_allocations.CopyFrom(
            types_pb2.AdaptiveAllocations(
                enabled=bool(adaptive.enabled),
                min_number_of_allocations=adaptive.min_number_of_allocations,
                max_number_of_allocations=adaptive.max_number_of_allocations,
            )
        )
    return msg


def chunking_proto(settings: ChunkingSettings) -> types_pb2.ChunkingSettings:
    return types_pb2.ChunkingSettings(
        strategy=types_pb2.ChunkingStrategy.Value(_STRATEGY_PREFIX + settings.strategy.value.upper()),
        max_chunk_size=settings.max_chunk_size,
        overlap=settings.overlap,
        sentence_overlap=settings.sentence_overlap,
        separators=settings.separators or (),
    )


def endpoint_proto(endpoint: Endpoint) -> types_pb2.Endpoint:
    msg = types_pb2.Endpoint(
        inference_id=endpoint.inference_id,
        task_type=task_type_proto(endpoint.task_type.value),
        service=endpoint.service,
        service_settings=_service_settings_proto(endpoint.service_settings),
    )
    if endpoint.chunking_settings is not None:
        msg.chunking_settings.CopyFrom(chunking_proto(endpoint.chunking_settings))
    if endpoint.task_settings:
        msg.task_settings.update(endpoint.task_settings)
    if endpoint.deployment_state is not None:
        msg.deployment_state = types_pb2.DeploymentState.Value(
            "DEPLOYMENT_STATE_" + endpoint.deployment_state.name
        )
    return msg


def infer_options(msg: types_pb2.InferenceOptions) -> InferOptions:
    return InferOptions(
        return_tokens=msg.return_tokens,
        top_k=msg.top_k if msg.HasField("top_k") else None,
        min_weight=msg.min_weight if msg.HasField("min_weight") else None,
        priority=_PRIORITIES.get(msg.priority, Priority.AUTO),
    )


def with_input_type(options: InferOptions, task_type: int, input_type: str) -> InferOptions:
    """ES `input_type` checked as ES's REST layer and InferenceAction.Request.validate do; it picks the lane
    when the options leave the priority to the server."""
    requested = parse_task_type(task_type_arg(task_type))
    parsed = parse_input_type(input_type)
    problem = input_type_problem(requested, parsed)
    if problem is not None:
        raise invalid(
            validation_failed([problem]),
            es_type="action_request_validation_exception",
            error_reason="INVALID_INPUT",
            field="input_type",
        )
    if options.priority is not Priority.AUTO:
        return options
    return replace(options, priority=input_type_priority(parsed))


def embedding_proto(embedding: SparseEmbedding) -> types_pb2.SparseEmbedding:
    return types_pb2.SparseEmbedding(
        token_ids=embedding.token_ids.tolist(),
        weights=embedding.weights.tolist(),
        tokens=embedding.tokens or (),
        is_truncated=embedding.is_truncated,
        num_tokens=embedding.num_tokens,
    )


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def deployment_event_proto(event: DeploymentEvent, replica: str = "") -> types_pb2.DeploymentEvent:
    return types_pb2.DeploymentEvent(
        replica=replica,
        time=_timestamp(event.time),
        deployment_id=event.deployment_id,
        model_id=event.model_id,
        state=types_pb2.DeploymentState.Value("DEPLOYMENT_STATE_" + event.phase.name),
        download=types_pb2.DownloadProgress(bytes_done=event.bytes_done, bytes_total=event.bytes_total),
        allocation=types_pb2.AllocationStatus(
            target_allocations=event.target_allocations,
            current_allocations=event.current_allocations,
            cause=types_pb2.AllocationCause.Value("ALLOCATION_CAUSE_" + event.cause.name),
        ),
        reason=event.reason or "",
    )


def deployment_stats_proto(report: DeploymentReport) -> types_pb2.DeploymentStats:
    event = deployment_event_proto(report.snapshot)
    stats = report.stats
    msg = types_pb2.DeploymentStats(
        deployment_id=event.deployment_id,
        model_id=event.model_id,
        state=event.state,
        allocation=event.allocation,
        threads_per_allocation=report.threads_per_allocation,
        queue_capacity=report.queue_capacity,
        queued=report.queued,
        inference_count=stats.inference_count,
        error_count=stats.error_count,
        rejected_count=stats.rejected_execution_count,
        timeout_count=stats.timeout_count,
        dropped_count=stats.dropped_count,
        average_inference_time_ms=stats.average_inference_time_ms or 0.0,
        average_queue_time_ms=stats.average_queue_time_ms or 0.0,
        p99_inference_time_ms=stats.p99_inference_time_ms or 0.0,
        peak_throughput_per_minute=stats.peak_throughput_per_minute,
        replica=report.replica,
    )
    if report.layout is not None:
        msg.runtime.CopyFrom(
            types_pb2.RuntimeLayout(
                backend=types_pb2.RuntimeBackend.Value("RUNTIME_BACKEND_" + report.layout.backend.upper()),
                precision=types_pb2.Precision.Value("PRECISION_" + report.layout.precision.upper()),
                reason=report.layout.reason,
            )
        )
    if report.start_time is not None:
        msg.start_time.CopyFrom(_timestamp(report.start_time))
    if stats.last_access is not None:
        msg.last_access.CopyFrom(_timestamp(stats.last_access))
    return msg
