"""ES `_update` of an inference endpoint (ES 9.x, elasticsearch service): only `num_allocations` and
`adaptive_allocations` change; `adaptive_allocations` is merged field by field (absent keeps, -1 resets a
bound); `task_settings` (ELSER has none) and a matching `task_type` are accepted. Every other key is rejected
rather than silently ignored, so a client never believes a no-op succeeded."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from elser_server.core.endpoint_rules import (
    ADAPTIVE,
    SERVICE_SETTINGS,
    body_object,
    normalized_adaptive,
    parse_adaptive,
    parse_task_type,
    unset_minus_one,
    validate_adaptive,
)
from elser_server.core.errors import ElserError, invalid, task_type_mismatch
from elser_server.core.es_validation import (
    ValidationErrors,
    is_java_int,
    java_str,
    take_map,
    take_positive_int,
)
from elser_server.core.types import AdaptiveAllocations, Endpoint, TaskType


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
    config = body_object(body)
    original = dict(config)
    _update_task_type(existing, url_task_type, config.pop("task_type", None))
    errors = ValidationErrors()
    task_settings = take_map(config, "task_settings", errors, "task_settings")
    update = take_map(config, SERVICE_SETTINGS, errors, SERVICE_SETTINGS)
    for key in config:
        errors.add(f"[{key}] cannot be updated", key)
    num_allocations: int | None = None
    adaptive: AdaptiveAllocations | None = None
    if update is not None:
        raw_num = update.get("num_allocations")
        if raw_num is not None and not is_java_int(raw_num):
            raise _failed_to_parse_update(original, raw_body)
        num_allocations = take_positive_int(
            update,
            "num_allocations",
            SERVICE_SETTINGS,
            errors,
            required=False,
            path=f"{SERVICE_SETTINGS}.num_allocations",
        )
        adaptive_raw = take_map(update, ADAPTIVE, errors, f"{SERVICE_SETTINGS}.{ADAPTIVE}")
        adaptive = None if adaptive_raw is None else parse_adaptive(adaptive_raw, errors)
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
        merged = normalized_adaptive(adaptive) if merged is None else _merge_adaptive(merged, adaptive)
        validate_adaptive(merged.min_number_of_allocations, merged.max_number_of_allocations, errors)
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
        return now if new is None else unset_minus_one(new)

    return AdaptiveAllocations(
        current.enabled if update.enabled is None else update.enabled,
        bound(current.min_number_of_allocations, update.min_number_of_allocations),
        bound(current.max_number_of_allocations, update.max_number_of_allocations),
    )
