"""ES inference-endpoint rules for PUT, GET/DELETE and inference (task types, ids, service settings),
implemented once for both transports: each passes the ES-shaped JSON body (gRPC builds it from its typed
messages) and gets an `Endpoint` or an `ElserError` carrying ES's exact error type and reason.

Behaviour choices where ES leaves room (docs/es-compatibility.md lists them):
- PUT check order: URL task type (ES parses it in the REST layer) → inference_id pattern → reserved ids → body
  is an object → task type resolution → service → unknown top-level keys → service_settings → task type
  supported → chunking_settings → task_settings → deployment-level checks (ES runs them when the PUT starts
  the deployment, before storing, so a PUT with `num_threads: 3` fails with them).
- `service_settings.deployment_id`: this service has no trained-model deployments outside its endpoints, so
  any value is ES's 404 "Cannot find deployment [<id>]".
- `-1` for an adaptive min/max means "unset" (ES's update convention); it is stored as absent on PUT too.
- `_update` has its own module, core/update_rules.py.
- The `elser` deprecation warning is emitted for every `service: elser` PUT; the missing-model_id warning only
  when `model_id` is absent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from elser_server.core.chunking.settings import parse_chunking_settings
from elser_server.core.defaults import (
    DEFAULT_ELSER_MODEL_ID,
    ELASTICSEARCH_SERVICE,
    ELSER_MODEL_IDS,
    ELSER_SERVICE,
    ELSER_V1_MODEL_ID,
    ELSER_V2_X86_MODEL_ID,
    RESERVED_ENDPOINT_IDS,
)
from elser_server.core.errors import (
    ElserError,
    FieldViolation,
    deployment_not_found,
    invalid,
    task_type_mismatch,
)
from elser_server.core.es_validation import (
    ValidationErrors,
    java_hash_order,
    java_map_str,
    java_str,
    take_int,
    take_map,
    take_positive_int,
    type_error,
    validation_failed,
)
from elser_server.core.types import AdaptiveAllocations, Endpoint, InferOptions, ServiceSettings, TaskType

SERVICE_SETTINGS = "service_settings"
ADAPTIVE = "adaptive_allocations"
MAX_THREADS_PER_ALLOCATION = 32

NULL_MODEL_ID_WARNING = (
    "Putting elasticsearch service inference endpoints (including elser service) without a model_id field is "
    "deprecated and will be removed in a future release. Please specify a model_id field."
)
ELSER_SERVICE_WARNING = (
    "The [elser] service is deprecated and will be removed in a future release. Use the [elasticsearch] "
    "service instead, with [model_id] set to [{model_id}] in the [service_settings]"
)

_ID_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9_\-.]*[a-z0-9])?")


@dataclass(frozen=True)
class ParsedPut:
    endpoint: Endpoint
    warnings: list[str] = field(default_factory=list)


def _take_positive_int(
    d: dict[str, Any], key: str, errors: ValidationErrors, *, required: bool
) -> int | None:
    return take_positive_int(
        d, key, SERVICE_SETTINGS, errors, required=required, path=f"{SERVICE_SETTINGS}.{key}"
    )


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


def check_id_format(inference_id: str) -> None:
    """MlStrings.isValidId, as the PUT and `_update` requests' validate() apply it before anything else."""
    if _ID_PATTERN.fullmatch(inference_id) is None or inference_id == "_all":
        raise invalid(
            f"Validation Failed: 1: Invalid inference_id; '{inference_id}' can contain lowercase "
            "alphanumeric (a-z and 0-9), hyphens or underscores; must start and end with alphanumeric;",
            es_type="action_request_validation_exception",
            error_reason="INVALID_INFERENCE_ID",
            field="inference_id",
        )


def _check_inference_id(inference_id: str) -> None:
    check_id_format(inference_id)
    if inference_id in RESERVED_ENDPOINT_IDS:
        raise invalid(
            f"[{inference_id}] is a reserved inference ID. Cannot create a new inference endpoint with a "
            "reserved ID.",
            error_reason="RESERVED_INFERENCE_ID",
            field="inference_id",
        )


def body_object(body: object) -> dict[str, Any]:
    if body is None:
        raise invalid("request body is required", es_type="parse_exception", error_reason="INVALID_BODY")
    if not isinstance(body, Mapping):
        raise invalid(
            "request body must be a JSON object", es_type="parse_exception", error_reason="INVALID_BODY"
        )
    return {str(k): v for k, v in body.items()}


def resolve_task_type(url_task_type: TaskType, body_task_type: object, *, required: bool = True) -> TaskType:
    """ES ServiceUtils.resolveTaskType: the URL and body task types must agree; one of them is required
    (`required=False`: neither is ANY)."""
    if body_task_type is None:
        if url_task_type is TaskType.ANY and required:
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


def unknown_settings(leftovers: Mapping[str, Any], path_prefix: str, inserted: Sequence[str]) -> ElserError:
    """ServiceUtils.unknownSettingsError. `inserted`: the keys the map held before ES removed the known ones.
    8.16+ names the elasticsearch service even when the request said "elser"."""
    return invalid(
        f"Model configuration contains settings [{java_map_str(leftovers, inserted)}] unknown to the "
        f"[{ELASTICSEARCH_SERVICE}] service",
        error_reason="UNKNOWN_SETTINGS",
        violations=[
            FieldViolation(path_prefix + k, "unknown setting")
            for k in java_hash_order(inserted)
            if k in leftovers
        ],
    )


def parse_adaptive(raw: dict[str, Any], errors: ValidationErrors) -> AdaptiveAllocations:
    """ES removeAsAdaptiveAllocationsSettings + AdaptiveAllocationsSettings.validate. Values are kept raw
    (-1 included) so that `_update` can tell "reset" (-1) from "keep" (absent)."""
    prefix = f"{SERVICE_SETTINGS}.{ADAPTIVE}."
    enabled = raw.pop("enabled", None)
    if enabled is not None and not isinstance(enabled, bool):
        errors.add(type_error("enabled", enabled, "Boolean"), prefix + "enabled")
        enabled = None
    _, minimum = take_int(raw, "min_number_of_allocations", errors, prefix + "min_number_of_allocations")
    _, maximum = take_int(raw, "max_number_of_allocations", errors, prefix + "max_number_of_allocations")
    for key in raw:
        errors.add(f"[{ADAPTIVE}] does not allow the setting [{key}]", prefix + key)
    validate_adaptive(unset_minus_one(minimum), unset_minus_one(maximum), errors)
    return AdaptiveAllocations(enabled, minimum, maximum)


def unset_minus_one(value: int | None) -> int | None:
    return None if value == -1 else value


def validate_adaptive(minimum: int | None, maximum: int | None, errors: ValidationErrors) -> None:
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


def normalized_adaptive(adaptive: AdaptiveAllocations) -> AdaptiveAllocations:
    return AdaptiveAllocations(
        adaptive.enabled,
        unset_minus_one(adaptive.min_number_of_allocations),
        unset_minus_one(adaptive.max_number_of_allocations),
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
    inserted = list(raw)
    deployment_id = raw.get("deployment_id")
    if deployment_id is not None:
        raise deployment_not_found(java_str(deployment_id), field=f"{SERVICE_SETTINGS}.deployment_id")
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
    errors = ValidationErrors()
    num_allocations = _take_positive_int(raw, "num_allocations", errors, required=False)
    num_threads = _take_positive_int(raw, "num_threads", errors, required=True)
    adaptive_raw = take_map(raw, ADAPTIVE, errors, f"{SERVICE_SETTINGS}.{ADAPTIVE}")
    adaptive = None if adaptive_raw is None else parse_adaptive(adaptive_raw, errors)
    if num_allocations is None and adaptive is None:
        errors.add(
            f"[{SERVICE_SETTINGS}] does not contain one of the required settings "
            f"[num_allocations, {ADAPTIVE}]",
            f"{SERVICE_SETTINGS}.num_allocations",
        )
    model_id = raw.pop("model_id")
    if not isinstance(model_id, str):
        errors.add(type_error("model_id", model_id, "String"), f"{SERVICE_SETTINGS}.model_id")
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
        raise unknown_settings(raw, f"{SERVICE_SETTINGS}.", inserted)
    return ServiceSettings(
        model_id=model_id,
        num_threads=num_threads,
        num_allocations=num_allocations,
        adaptive_allocations=None if adaptive is None else normalized_adaptive(adaptive),
    )


def parse_put_request(inference_id: str, url_task_type: str | None, body: object) -> ParsedPut:
    """Validate a create request exactly as ES does (see the module docstring for the order) and build the
    endpoint to store; `warnings` are ES's deprecation warnings (REST: `Warning` headers)."""
    url_tt = parse_task_type(url_task_type)
    _check_inference_id(inference_id)
    config = body_object(body)
    inserted = list(config)
    task_type = resolve_task_type(url_tt, config.pop("task_type", None))

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
        raise unknown_settings(config, "", inserted)
    if raw_settings is None:
        raise invalid(
            f"Missing required field [{SERVICE_SETTINGS}]",
            error_reason="MISSING_SERVICE_SETTINGS",
            field=SERVICE_SETTINGS,
        )
    errors = ValidationErrors()
    settings_map = take_map({SERVICE_SETTINGS: raw_settings}, SERVICE_SETTINGS, errors, SERVICE_SETTINGS)
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
    take_map({"task_settings": task_settings}, "task_settings", errors, "task_settings")
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
    errors = ValidationErrors()
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


def validate_infer_inputs(
    inputs: Sequence[str], options: InferOptions, *, max_inputs: int, max_input_bytes: int
) -> None:
    """InferenceAction.Request.validate for the inputs, plus this service's size limits and the gRPC-only
    options, as one ES validation error."""
    if not inputs:
        raise invalid(
            validation_failed(["Field [input] cannot be an empty array"]),
            es_type="action_request_validation_exception",
            field="input",
            error_reason="EMPTY_INPUT",
        )
    if len(inputs) > max_inputs:
        raise invalid(
            validation_failed(
                [f"Too many inputs [{len(inputs)}]: at most [{max_inputs}] are accepted per request"]
            ),
            es_type="action_request_validation_exception",
            field="input",
            error_reason="TOO_MANY_INPUTS",
        )
    errors = ValidationErrors()
    for i, text in enumerate(inputs):
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            errors.add(f"input [{i}] is not valid Unicode text", f"input[{i}]")
            continue
        if size > max_input_bytes:
            errors.add(
                f"input [{i}] is [{size}] bytes, larger than the limit of [{max_input_bytes}] bytes",
                f"input[{i}]",
            )
    if options.top_k is not None and options.top_k < 0:
        errors.add("top_k must not be negative", "top_k")
    if options.min_weight is not None and options.min_weight < 0:
        errors.add("min_weight must not be negative", "min_weight")
    errors.raise_if_any("action_request_validation_exception", "INVALID_INPUT")
