"""ES inference-endpoint semantics (PUT / _update / GET / DELETE / infer task-type rules), implemented once
for both transports: each passes the ES-shaped JSON body (gRPC builds it from its typed messages) and gets an
`Endpoint` or an `ElserError` carrying ES's exact error type and reason.

Behaviour choices where ES (es-compat.md) leaves room:
- PUT check order: URL task type (ES parses it in the REST layer) → inference_id pattern → reserved ids → body
  is an object → task type resolution → service → unknown top-level keys → service_settings → task type
  supported → chunking_settings → task_settings → deployment-level checks (ES runs them when the PUT starts
  the deployment, before storing, so a PUT with `num_threads: 3` fails with them).
- `service_settings.deployment_id`: this service has no trained-model deployments outside its endpoints, so
  any value is ES's 404 "Cannot find deployment [<id>]".
- `-1` for an adaptive min/max means "unset" (ES's update convention); it is stored as absent on PUT too.
- `_update` (ES 9.x): only `service_settings.num_allocations` and `service_settings.adaptive_allocations`
  (merged field by field) change; `task_settings` (ELSER has none) and `task_type` (must match) are accepted.
  Every other key (`num_threads`, `model_id`, `chunking_settings`, `service`, ...) is rejected with
  "[<key>] cannot be updated" rather than silently ignored, so a client never believes a no-op succeeded.
- The `elser` deprecation warning is emitted for every `service: elser` PUT; the missing-model_id warning only
  when `model_id` is absent.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from elser_server.core.chunking.settings import ChunkingSettings, java_str, parse_chunking_settings
from elser_server.core.errors import (
    DEPLOYMENT_RESOURCE,
    Code,
    ElserError,
    FieldViolation,
    Resource,
    invalid,
    task_type_mismatch,
)
from elser_server.core.types import AdaptiveAllocations, Endpoint, ServiceSettings, TaskType

ELSER_V1_MODEL_ID = ".elser_model_1"
ELSER_V2_MODEL_ID = ".elser_model_2"
ELSER_V2_X86_MODEL_ID = ".elser_model_2_linux-x86_64"
ELSER_MODEL_IDS = frozenset({ELSER_V1_MODEL_ID, ELSER_V2_MODEL_ID, ELSER_V2_X86_MODEL_ID})


def _platform_default_model_id() -> str:
    # ES picks the optimized variant only when every ML node is linux-x86_64; here the one node is this host.
    machine = platform.machine().lower()
    if platform.system() == "Linux" and machine in ("x86_64", "amd64"):
        return ELSER_V2_X86_MODEL_ID
    return ELSER_V2_MODEL_ID


DEFAULT_ELSER_MODEL_ID = _platform_default_model_id()
DEFAULT_ENDPOINT_ID = ".elser-2-elasticsearch"
RESERVED_ENDPOINT_IDS = frozenset(
    {
        DEFAULT_ENDPOINT_ID,
        ".multilingual-e5-small-elasticsearch",
        ".rerank-v1-elasticsearch",
        ".elser-2-elastic",
    }
)

ELASTICSEARCH_SERVICE = "elasticsearch"
ELSER_SERVICE = "elser"
SERVICE_SETTINGS = "service_settings"
ADAPTIVE = "adaptive_allocations"
MAX_THREADS_PER_ALLOCATION = 32
DEFAULT_ADAPTIVE_MAX_ALLOCATIONS = 32

NULL_MODEL_ID_WARNING = (
    "Putting elasticsearch service inference endpoints (including elser service) without a model_id field is "
    "deprecated and will be removed in a future release. Please specify a model_id field."
)
ELSER_SERVICE_WARNING = (
    "The [elser] service is deprecated and will be removed in a future release. Use the [elasticsearch] "
    "service instead, with [model_id] set to [{model_id}] in the [service_settings]"
)

_ID_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9_\-.]*[a-z0-9])?")
_TOP_LEVEL_KEYS = ("task_type", "service", SERVICE_SETTINGS, "task_settings", "chunking_settings")
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True)
class ParsedPut:
    endpoint: Endpoint
    warnings: list[str] = field(default_factory=list)


class _Errors:
    """ES's ValidationException: messages collected with the field each concerns, raised as one error
    "Validation Failed: 1: a;2: b;"."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, message: str, path: str) -> None:
        self.items.append((message, path))

    def raise_if_any(self, es_type: str, error_reason: str) -> None:
        if not self.items:
            return
        reason = "Validation Failed: " + "".join(f"{i}: {m};" for i, (m, _) in enumerate(self.items, 1))
        raise invalid(
            reason,
            es_type=es_type,
            error_reason=error_reason,
            violations=[FieldViolation(path, message) for message, path in self.items],
        )


def _type_error(key: str, value: object, java_type: str) -> str:
    return (
        f"field [{key}] is not of the expected type. The value [{java_str(value)}] cannot be converted to a "
        f"[{java_type}]"
    )


def _is_java_int(value: object) -> bool:
    # JSON true/false, floats and numbers beyond 32 bits are other Java types in ES, never an Integer.
    return isinstance(value, int) and not isinstance(value, bool) and _INT_MIN <= value <= _INT_MAX


def _take_int(d: dict[str, Any], key: str, path: str, errors: _Errors) -> tuple[bool, int | None]:
    """ES removeAsType(Integer): (ok, value); JSON null counts as absent."""
    value = d.pop(key, None)
    if value is None:
        return True, None
    if _is_java_int(value):
        return True, value
    errors.add(_type_error(key, value, "Integer"), path)
    return False, None


def _take_positive_int(d: dict[str, Any], key: str, errors: _Errors, *, required: bool) -> int | None:
    path = f"{SERVICE_SETTINGS}.{key}"
    ok, value = _take_int(d, key, path, errors)
    if not ok:
        return None
    if value is None:
        if required:
            errors.add(f"[{SERVICE_SETTINGS}] does not contain the required setting [{key}]", path)
        return None
    if value <= 0:
        errors.add(f"[{SERVICE_SETTINGS}] Invalid value [{value}]. [{key}] must be a positive integer", path)
        return None
    return value


def parse_task_type(value: str | None, *, field_path: str = "task_type") -> TaskType:
    """ES TaskType.fromString (case-insensitive); None (no task type in the URL) is ANY."""
    if value is None:
        return TaskType.ANY
    try:
        return TaskType(value.lower())
    except ValueError:
        raise invalid(
            f"Unknown task_type [{value}]", error_reason="UNKNOWN_TASK_TYPE", field=field_path
        ) from None


def _check_inference_id(inference_id: str) -> None:
    if _ID_PATTERN.fullmatch(inference_id) is None or inference_id == "_all":
        raise invalid(
            f"Validation Failed: 1: Invalid inference_id; '{inference_id}' can contain lowercase "
            "alphanumeric (a-z and 0-9), hyphens or underscores; must start and end with alphanumeric;",
            es_type="action_request_validation_exception",
            error_reason="INVALID_INFERENCE_ID",
            field="inference_id",
        )
    if inference_id in RESERVED_ENDPOINT_IDS:
        raise invalid(
            f"[{inference_id}] is a reserved inference ID. Cannot create a new inference endpoint with a "
            "reserved ID.",
            error_reason="RESERVED_INFERENCE_ID",
            field="inference_id",
        )


def _body_object(body: object) -> dict[str, Any]:
    if body is None:
        raise invalid("request body is required", es_type="parse_exception", error_reason="INVALID_BODY")
    if not isinstance(body, Mapping):
        raise invalid(
            "request body must be a JSON object", es_type="parse_exception", error_reason="INVALID_BODY"
        )
    return {str(k): v for k, v in body.items()}


def _resolve_task_type(url_task_type: TaskType, body_task_type: object) -> TaskType:
    """ES ServiceUtils.resolveTaskType: the URL and body task types must agree; one of them is required."""
    if body_task_type is None:
        if url_task_type is TaskType.ANY:
            raise invalid(
                "model is missing required setting [task_type]",
                error_reason="MISSING_TASK_TYPE",
                field="task_type",
            )
        return url_task_type
    parsed = parse_task_type(java_str(body_task_type))
    if parsed is TaskType.ANY:
        raise invalid(
            "task_type [any] is not valid type for inference",
            error_reason="UNKNOWN_TASK_TYPE",
            field="task_type",
        )
    if url_task_type is not TaskType.ANY and parsed is not url_task_type:
        raise invalid(
            "Cannot resolve conflicting task_type parameter in the request URL "
            f"[{url_task_type.value}] and the request body [{java_str(body_task_type)}]",
            error_reason="TASK_TYPE_CONFLICT",
            field="task_type",
        )
    return parsed


def _unknown_settings(leftovers: Mapping[str, Any], path_prefix: str) -> ElserError:
    # 8.16+ names the elasticsearch service even when the request said "elser".
    return invalid(
        f"Model configuration contains settings [{java_str(dict(leftovers))}] unknown to the "
        f"[{ELASTICSEARCH_SERVICE}] service",
        error_reason="UNKNOWN_SETTINGS",
        violations=[FieldViolation(path_prefix + k, "unknown setting") for k in leftovers],
    )


def _take_map(d: dict[str, Any], key: str, path: str, errors: _Errors) -> dict[str, Any] | None:
    value = d.pop(key, None)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        errors.add(_type_error(key, value, "Map"), path)
        return None
    return {str(k): v for k, v in value.items()}


def _parse_adaptive(raw: dict[str, Any], errors: _Errors) -> AdaptiveAllocations:
    """ES removeAsAdaptiveAllocationsSettings + AdaptiveAllocationsSettings.validate. Values are kept raw
    (-1 included) so that `_update` can tell "reset" (-1) from "keep" (absent)."""
    prefix = f"{SERVICE_SETTINGS}.{ADAPTIVE}."
    enabled = raw.pop("enabled", None)
    if enabled is not None and not isinstance(enabled, bool):
        errors.add(_type_error("enabled", enabled, "Boolean"), prefix + "enabled")
        enabled = None
    _, minimum = _take_int(raw, "min_number_of_allocations", prefix + "min_number_of_allocations", errors)
    _, maximum = _take_int(raw, "max_number_of_allocations", prefix + "max_number_of_allocations", errors)
    for key in raw:
        errors.add(f"[{ADAPTIVE}] does not allow the setting [{key}]", prefix + key)
    _validate_adaptive(_unset_minus_one(minimum), _unset_minus_one(maximum), errors)
    return AdaptiveAllocations(enabled, minimum, maximum)


def _unset_minus_one(value: int | None) -> int | None:
    return None if value == -1 else value


def _validate_adaptive(minimum: int | None, maximum: int | None, errors: _Errors) -> None:
    prefix = f"{SERVICE_SETTINGS}.{ADAPTIVE}."
    if minimum is not None and minimum < 0:
        errors.add(
            "[min_number_of_allocations] must be a non-negative integer or null",
            prefix + "min_number_of_allocations",
        )
    if maximum is not None and maximum < 1:
        errors.add(
            "[max_number_of_allocations] must be a positive integer or null",
            prefix + "max_number_of_allocations",
        )
    if minimum is not None and maximum is not None and minimum > maximum:
        errors.add(
            "[min_number_of_allocations] must not be larger than [max_number_of_allocations]",
            prefix + "min_number_of_allocations",
        )


def _normalized(adaptive: AdaptiveAllocations) -> AdaptiveAllocations:
    return AdaptiveAllocations(
        adaptive.enabled,
        _unset_minus_one(adaptive.min_number_of_allocations),
        _unset_minus_one(adaptive.max_number_of_allocations),
    )


def _check_model_id_known(model_id: object) -> None:
    if isinstance(model_id, str) and model_id and model_id not in ELSER_MODEL_IDS:
        raise invalid(
            "Error parsing request config, model id does not match any models available on this platform. "
            f"Was [{model_id}]. You may need to load it into the cluster using eland.",
            es_type="illegal_argument_exception",
            error_reason="UNSUPPORTED_MODEL",
            field=f"{SERVICE_SETTINGS}.model_id",
        )


def _check_model_id_platform(model_id: str) -> None:
    # ES accepts the cross-platform v2 everywhere, the x86 variant only where it is the default, never v1.
    if model_id == ELSER_V1_MODEL_ID or (model_id == ELSER_V2_X86_MODEL_ID != DEFAULT_ELSER_MODEL_ID):
        raise invalid(
            "Error parsing request config, model id does not match any models available on this platform. "
            f"Was [{model_id}]. You may need to use a platform agnostic model.",
            es_type="illegal_argument_exception",
            error_reason="UNSUPPORTED_MODEL",
            field=f"{SERVICE_SETTINGS}.model_id",
        )


def _parse_service_settings(service: str, raw: dict[str, Any], warnings: list[str]) -> ServiceSettings:
    """ES ElasticsearchInternalService.parseRequestConfig (ELSER branch) for `service_settings`."""
    deployment_id = raw.get("deployment_id")
    if deployment_id is not None:
        raise ElserError(
            Code.NOT_FOUND,
            f"Cannot find deployment [{java_str(deployment_id)}]",
            "resource_not_found_exception",
            404,
            "DEPLOYMENT_NOT_FOUND",
            field_violations=(FieldViolation(f"{SERVICE_SETTINGS}.deployment_id", "no such deployment"),),
            resource=Resource(DEPLOYMENT_RESOURCE, java_str(deployment_id)),
        )
    raw.pop("deployment_id", None)
    if raw.get("model_id") is None:
        if service != ELSER_SERVICE:
            raise invalid(
                "Error parsing service settings, model_id must be provided",
                es_type="illegal_argument_exception",
                error_reason="MISSING_MODEL_ID",
                field=f"{SERVICE_SETTINGS}.model_id",
            )
        warnings.append(NULL_MODEL_ID_WARNING)
        raw["model_id"] = DEFAULT_ELSER_MODEL_ID
    _check_model_id_known(raw["model_id"])

    # ES's fromMap order: every problem below is collected into one validation_exception.
    errors = _Errors()
    num_allocations = _take_positive_int(raw, "num_allocations", errors, required=False)
    num_threads = _take_positive_int(raw, "num_threads", errors, required=True)
    adaptive_raw = _take_map(raw, ADAPTIVE, f"{SERVICE_SETTINGS}.{ADAPTIVE}", errors)
    adaptive = None if adaptive_raw is None else _parse_adaptive(adaptive_raw, errors)
    if num_allocations is None and adaptive is None:
        errors.add(
            f"[{SERVICE_SETTINGS}] does not contain one of the required settings "
            f"[num_allocations, {ADAPTIVE}]",
            f"{SERVICE_SETTINGS}.num_allocations",
        )
    model_id = raw.pop("model_id")
    if not isinstance(model_id, str):
        errors.add(_type_error("model_id", model_id, "String"), f"{SERVICE_SETTINGS}.model_id")
    elif not model_id:
        errors.add(
            f"[{SERVICE_SETTINGS}] Invalid value empty string. [model_id] must be a non-empty string",
            f"{SERVICE_SETTINGS}.model_id",
        )
    errors.raise_if_any("validation_exception", "INVALID_SERVICE_SETTINGS")
    assert isinstance(model_id, str) and num_threads is not None  # guaranteed by the checks above

    _check_model_id_platform(model_id)
    if service == ELSER_SERVICE:
        warnings.append(ELSER_SERVICE_WARNING.format(model_id=DEFAULT_ELSER_MODEL_ID))
    if raw:
        raise _unknown_settings(raw, f"{SERVICE_SETTINGS}.")
    return ServiceSettings(
        model_id=model_id,
        num_threads=num_threads,
        num_allocations=num_allocations,
        adaptive_allocations=None if adaptive is None else _normalized(adaptive),
    )


def parse_put_request(inference_id: str, url_task_type: str | None, body: object) -> ParsedPut:
    """Validate a create request exactly as ES does (see the module docstring for the order) and build the
    endpoint to store; `warnings` are ES's deprecation warnings (REST: `Warning` headers)."""
    url_tt = parse_task_type(url_task_type)
    _check_inference_id(inference_id)
    config = _body_object(body)
    task_type = _resolve_task_type(url_tt, config.pop("task_type", None))

    service = config.pop("service", None)
    if service is None:
        raise invalid(
            "Inference endpoint configuration is missing the [service] setting",
            error_reason="MISSING_SERVICE",
            field="service",
        )
    if service not in (ELASTICSEARCH_SERVICE, ELSER_SERVICE):
        raise invalid(
            f"Unknown service [{java_str(service)}]", error_reason="UNKNOWN_SERVICE", field="service"
        )
    assert isinstance(service, str)

    raw_settings = config.pop(SERVICE_SETTINGS, None)
    task_settings = config.pop("task_settings", None)
    chunking = config.pop("chunking_settings", None)
    if config:
        raise _unknown_settings(config, "")
    if raw_settings is None:
        raise invalid(
            f"Missing required field [{SERVICE_SETTINGS}]",
            error_reason="MISSING_SERVICE_SETTINGS",
            field=SERVICE_SETTINGS,
        )
    errors = _Errors()
    settings_map = _take_map({SERVICE_SETTINGS: raw_settings}, SERVICE_SETTINGS, SERVICE_SETTINGS, errors)
    errors.raise_if_any("validation_exception", "INVALID_SERVICE_SETTINGS")
    assert settings_map is not None

    warnings: list[str] = []
    settings = _parse_service_settings(service, settings_map, warnings)
    if task_type is not TaskType.SPARSE_EMBEDDING:
        raise invalid(
            f"The [{service}] service does not support task type [{task_type.value}]",
            error_reason="UNSUPPORTED_TASK_TYPE",
            field="task_type",
        )
    chunking_settings = parse_chunking_settings(chunking)
    # ELSER has no task settings: ES ignores their content, but they must still be an object.
    _take_map({"task_settings": task_settings}, "task_settings", "task_settings", errors)
    errors.raise_if_any("validation_exception", "INVALID_TASK_SETTINGS")
    validate_deployment_settings(settings)
    endpoint = Endpoint(
        inference_id=inference_id,
        task_type=task_type,
        service_settings=settings,
        chunking_settings=chunking_settings,
        service=ELASTICSEARCH_SERVICE,
    )
    return ParsedPut(endpoint, warnings)


def validate_deployment_settings(settings: ServiceSettings) -> None:
    """ES StartTrainedModelDeploymentAction.Request.validate (run when a deployment starts), in ES's order."""
    errors = _Errors()
    adaptive = settings.adaptive_allocations
    if settings.num_allocations is not None:
        if settings.num_allocations < 1:
            errors.add(
                "[number_of_allocations] must be a positive integer", f"{SERVICE_SETTINGS}.num_allocations"
            )
        if adaptive is not None and adaptive.enabled:
            errors.add(
                "[number_of_allocations] cannot be set if adaptive allocations is enabled",
                f"{SERVICE_SETTINGS}.num_allocations",
            )
    threads = settings.num_threads
    if threads < 1:
        errors.add("[threads_per_allocation] must be a positive integer", f"{SERVICE_SETTINGS}.num_threads")
    if threads > MAX_THREADS_PER_ALLOCATION or threads & (threads - 1) != 0:
        errors.add(
            "[threads_per_allocation] must be a power of 2 less than or equal to "
            f"{MAX_THREADS_PER_ALLOCATION}",
            f"{SERVICE_SETTINGS}.num_threads",
        )
    errors.raise_if_any("action_request_validation_exception", "INVALID_DEPLOYMENT_SETTINGS")


def check_task_type(endpoint: Endpoint, requested: TaskType | None) -> None:
    """GET/DELETE with a task type in the URL: it must be the endpoint's (None/ANY match anything)."""
    if requested is not None and requested is not TaskType.ANY and requested is not endpoint.task_type:
        raise task_type_mismatch(
            f"Requested task type [{requested.value}] does not match the inference endpoint's task type "
            f"[{endpoint.task_type.value}]"
        )


def check_infer_task_type(endpoint: Endpoint, requested: TaskType | None) -> None:
    """Inference with a task type in the URL: same rule, ES's inference-action wording."""
    if requested is not None and requested is not TaskType.ANY and requested is not endpoint.task_type:
        raise task_type_mismatch(
            f"Incompatible task_type, the requested type [{requested.value}] does not match the model type "
            f"[{endpoint.task_type.value}]"
        )


def default_endpoint() -> Endpoint:
    """The preconfigured `.elser-2-elasticsearch` (listed always, deployed on first use)."""
    return Endpoint(
        inference_id=DEFAULT_ENDPOINT_ID,
        task_type=TaskType.SPARSE_EMBEDDING,
        service_settings=ServiceSettings(
            model_id=DEFAULT_ELSER_MODEL_ID,
            num_threads=1,
            adaptive_allocations=AdaptiveAllocations(True, 0, DEFAULT_ADAPTIVE_MAX_ALLOCATIONS),
        ),
        chunking_settings=parse_chunking_settings(None),
        service=ELASTICSEARCH_SERVICE,
    )


def _failed_to_parse_update(body: Mapping[str, Any], raw_body: str | None) -> ElserError:
    text = raw_body if raw_body is not None else json.dumps(body, separators=(",", ":"))
    return invalid(
        f"Failed to parse [num_allocations] of update request [{text}]",
        error_reason="INVALID_UPDATE",
        field=f"{SERVICE_SETTINGS}.num_allocations",
    )


def _update_task_type(existing: Endpoint, url_task_type: str | None, body_task_type: object) -> None:
    mismatch = "Task type must match the task type of the existing endpoint"
    url_tt = parse_task_type(url_task_type)
    if url_tt is not TaskType.ANY and url_tt is not existing.task_type:
        raise task_type_mismatch(mismatch)
    if body_task_type is not None and parse_task_type(java_str(body_task_type)) is not existing.task_type:
        raise task_type_mismatch(mismatch)


def parse_update_request(
    existing: Endpoint, url_task_type: str | None, body: object, *, raw_body: str | None = None
) -> Endpoint:
    """ES 9.x `_update` for elasticsearch-service endpoints: `num_allocations` and/or `adaptive_allocations`
    merged field by field into `existing` (absent keeps, -1 resets a bound). `raw_body` is the request text
    ES echoes in its "Failed to parse" message (compact JSON of `body` when not given)."""
    config = _body_object(body)
    original = dict(config)
    _update_task_type(existing, url_task_type, config.pop("task_type", None))
    errors = _Errors()
    task_settings = _take_map(config, "task_settings", "task_settings", errors)
    update = _take_map(config, SERVICE_SETTINGS, SERVICE_SETTINGS, errors)
    for key in config:
        errors.add(f"[{key}] cannot be updated", key)
    num_allocations: int | None = None
    adaptive: AdaptiveAllocations | None = None
    if update is not None:
        raw_num = update.get("num_allocations")
        if raw_num is not None and not _is_java_int(raw_num):
            raise _failed_to_parse_update(original, raw_body)
        num_allocations = _take_positive_int(update, "num_allocations", errors, required=False)
        adaptive_raw = _take_map(update, ADAPTIVE, f"{SERVICE_SETTINGS}.{ADAPTIVE}", errors)
        adaptive = None if adaptive_raw is None else _parse_adaptive(adaptive_raw, errors)
        for key in update:
            errors.add(f"[{key}] cannot be updated", f"{SERVICE_SETTINGS}.{key}")
    errors.raise_if_any("validation_exception", "INVALID_UPDATE")
    if num_allocations is None and adaptive is None:
        # Only an (ignored) ELSER task_settings object is a valid no-op update.
        if task_settings is None or update is not None:
            raise _failed_to_parse_update(original, raw_body)
        return existing

    current = existing.service_settings
    merged = current.adaptive_allocations
    if adaptive is not None:
        merged = _normalized(adaptive) if merged is None else _merge_adaptive(merged, adaptive)
        _validate_adaptive(merged.min_number_of_allocations, merged.max_number_of_allocations, errors)
    if num_allocations is not None and merged is not None and merged.enabled:
        errors.add(
            "[number_of_allocations] cannot be set if adaptive allocations is enabled",
            f"{SERVICE_SETTINGS}.num_allocations",
        )
    errors.raise_if_any("validation_exception", "INVALID_UPDATE")
    settings = dataclasses.replace(
        current,
        num_allocations=current.num_allocations if num_allocations is None else num_allocations,
        adaptive_allocations=merged,
    )
    return dataclasses.replace(existing, service_settings=settings)


def _merge_adaptive(current: AdaptiveAllocations, update: AdaptiveAllocations) -> AdaptiveAllocations:
    """ES AdaptiveAllocationsSettings.merge: absent keeps the current value, -1 resets a bound."""

    def bound(now: int | None, new: int | None) -> int | None:
        return now if new is None else _unset_minus_one(new)

    return AdaptiveAllocations(
        current.enabled if update.enabled is None else update.enabled,
        bound(current.min_number_of_allocations, update.min_number_of_allocations),
        bound(current.max_number_of_allocations, update.max_number_of_allocations),
    )


def endpoint_from_dict(d: Mapping[str, Any]) -> Endpoint:
    """Inverse of `Endpoint.to_dict()` for trusted (stored) data."""
    ss = d[SERVICE_SETTINGS]
    adaptive = ss.get(ADAPTIVE)
    chunking = d.get("chunking_settings")
    chunking_settings: ChunkingSettings | None = (
        None if chunking is None else parse_chunking_settings(chunking, stored=True)
    )
    return Endpoint(
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
        chunking_settings=chunking_settings,
        task_settings=dict(d.get("task_settings", {})),
    )
