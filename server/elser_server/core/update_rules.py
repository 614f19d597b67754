"""ES 9.1 `_update` of an inference endpoint (RestUpdateInferenceModelAction, UpdateInferenceModelAction,
TransportUpdateInferenceModelAction), in ES's order:

1. the URL task type (the REST layer), then the id pattern (the request's validate(), so the reserved
   `.elser-2-elasticsearch` is refused before any lookup);
2. the body's shape (Request.getContentAsSettings): not empty; `task_type` a string; `service_settings` and
   `task_settings` objects; no other top-level key ("Request contained fields which cannot be updated ...");
3. the task type (ServiceUtils.resolveTaskType), then the lookup (404), then "Task type must match ...";
4. `service_settings`: `num_allocations` and `adaptive_allocations`, the latter merged field by field
   (AdaptiveAllocationsSettings.merge: absent keeps, -1 resets a bound). `task_settings` are accepted and
   ignored (ELSER has none). An update that changes nothing answers the endpoint as it is.

Choices where ES 9.1 is lenient or silent (docs/es-compatibility.md):
- Any other `service_settings` key (`num_threads`, `model_id`, ...) is refused with ES's unknown-settings
  message, as later ES versions do, where 9.1 ignores it: a client never believes a no-op succeeded.
- No task type in the URL nor the body means the endpoint's own, where ES 9.1 answers "model is missing
  required setting [task_type]".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from elser_server.core.endpoint_rules import (
    ADAPTIVE,
    SERVICE_SETTINGS,
    body_object,
    check_id_format,
    normalized_adaptive,
    parse_adaptive,
    parse_task_type,
    resolve_task_type,
    unknown_settings,
    unset_minus_one,
    validate_adaptive,
)
from elser_server.core.errors import ElserError, FieldViolation, invalid, task_type_mismatch
from elser_server.core.es_validation import (
    ValidationErrors,
    java_hash_order,
    java_map_str,
    take_map,
    take_positive_int,
)
from elser_server.core.types import AdaptiveAllocations, Endpoint, TaskType

TASK_SETTINGS = "task_settings"


@dataclass(frozen=True)
class UpdateRequest:
    """An `_update` that passed every check made before the endpoint is looked up. Empty settings objects are
    None, as in ES."""

    task_type: TaskType  # ANY: neither the URL nor the body named one
    service_settings: dict[str, Any] | None
    task_settings: dict[str, Any] | None


def check_update_request(inference_id: str, url_task_type: str | None, body: object) -> UpdateRequest:
    """Steps 1-3 above, up to the lookup."""
    url_tt = parse_task_type(url_task_type)
    check_id_format(inference_id)
    config = body_object(body)
    if not config:
        raise _body_error("Request body is empty")
    inserted = list(config)
    body_task_type: TaskType | None = None
    if "task_type" in config:
        value = config["task_type"]
        if not isinstance(value, str):
            # ES answers 500 here: the check sits in code that only ever expected a string.
            raise _body_error(
                f"Failed to parse [task_type] in update request [{java_map_str(config, inserted)}]",
                field="task_type",
                http_status=500,
            )
        body_task_type = parse_task_type(value)
        del config["task_type"]
    service_settings = _settings_object(config, SERVICE_SETTINGS, "service settings", inserted)
    task_settings = _settings_object(config, TASK_SETTINGS, "task settings", inserted)
    if config:
        raise _body_error(
            "Request contained fields which cannot be updated, remove these fields and try again "
            f"[{java_map_str(config, inserted)}]",
            violations=[
                FieldViolation(key, "cannot be updated") for key in java_hash_order(inserted) if key in config
            ],
        )
    task_type = resolve_task_type(
        url_tt, None if body_task_type is None else body_task_type.value, required=False
    )
    return UpdateRequest(task_type, service_settings or None, task_settings or None)


def apply_update(existing: Endpoint, update: UpdateRequest) -> Endpoint:
    """Step 3's task-type check and step 4 on the stored endpoint: the endpoint to store."""
    if update.task_type is not TaskType.ANY and update.task_type is not existing.task_type:
        raise task_type_mismatch("Task type must match the task type of the existing endpoint")
    if update.service_settings is None:
        return existing
    raw = dict(update.service_settings)
    inserted = list(raw)
    errors = ValidationErrors()
    num_allocations = take_positive_int(
        raw,
        "num_allocations",
        SERVICE_SETTINGS,
        errors,
        required=False,
        path=f"{SERVICE_SETTINGS}.num_allocations",
    )
    adaptive_raw = take_map(raw, ADAPTIVE, errors, f"{SERVICE_SETTINGS}.{ADAPTIVE}")
    adaptive = None if adaptive_raw is None else parse_adaptive(adaptive_raw, errors)
    errors.raise_if_any("validation_exception", "INVALID_UPDATE")
    if raw:
        raise unknown_settings(raw, f"{SERVICE_SETTINGS}.", inserted)

    current = existing.service_settings
    merged = current.adaptive_allocations
    if adaptive is not None:
        merged = normalized_adaptive(adaptive) if merged is None else _merge_adaptive(merged, adaptive)
        validate_adaptive(merged.min_number_of_allocations, merged.max_number_of_allocations, errors)
    if num_allocations is not None and merged is not None and merged.enabled:
        errors.add(
            "[number_of_allocations] cannot be set if adaptive allocations is enabled",
            f"{SERVICE_SETTINGS}.num_allocations",
        )
    errors.raise_if_any("validation_exception", "INVALID_UPDATE")
    settings = replace(
        current,
        num_allocations=current.num_allocations if num_allocations is None else num_allocations,
        adaptive_allocations=merged,
    )
    return replace(existing, service_settings=settings)


def parse_update_request(existing: Endpoint, url_task_type: str | None, body: object) -> Endpoint:
    """Every `_update` rule against a known endpoint: check_update_request, then apply_update."""
    return apply_update(existing, check_update_request(existing.inference_id, url_task_type, body))


def _settings_object(
    config: dict[str, Any], key: str, what: str, inserted: list[str]
) -> dict[str, Any] | None:
    """A settings object of the body (removed from `config`); a key that is there but no object is refused
    with the body as it stands."""
    if key not in config:
        return None
    value = config[key]
    if not isinstance(value, Mapping):
        raise _body_error(
            f"Unable to parse {what} in the request [{java_map_str(config, inserted)}]", field=key
        )
    del config[key]
    return {str(k): v for k, v in value.items()}


def _body_error(
    reason: str,
    *,
    field: str | None = None,
    violations: Sequence[FieldViolation] = (),
    http_status: int = 400,
) -> ElserError:
    return invalid(
        reason, error_reason="INVALID_UPDATE", field=field, violations=violations, http_status=http_status
    )


def _merge_adaptive(current: AdaptiveAllocations, update: AdaptiveAllocations) -> AdaptiveAllocations:
    """ES AdaptiveAllocationsSettings.merge: absent keeps the current value, -1 resets a bound."""

    def bound(now: int | None, new: int | None) -> int | None:
        return now if new is None else unset_minus_one(new)

    return AdaptiveAllocations(
        current.enabled if update.enabled is None else update.enabled,
        bound(current.min_number_of_allocations, update.min_number_of_allocations),
        bound(current.max_number_of_allocations, update.max_number_of_allocations),
    )
