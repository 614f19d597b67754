"""ES's _update of an endpoint (core/update_rules.py): what may change, how adaptive settings merge, and the
rejections with ES's exact texts, types and statuses."""

from __future__ import annotations

from typing import Any

import pytest
from elser_server.core.endpoint_rules import parse_put_request
from elser_server.core.errors import Code, ElserError
from elser_server.core.update_rules import parse_update_request
from support import PUT_BODY, put_body
from support import validation_failed as vf

SE = "status_exception"
VE = "validation_exception"

FIXED = parse_put_request("up", "sparse_embedding", PUT_BODY).endpoint
ADAPTIVE = parse_put_request(
    "up",
    "sparse_embedding",
    put_body(
        adaptive_allocations={"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 4}
    ),
).endpoint


def ss_of(endpoint: Any) -> dict[str, Any]:
    out: dict[str, Any] = endpoint.to_dict()["service_settings"]
    return out


def test_update_num_allocations() -> None:
    updated = parse_update_request(FIXED, None, {"service_settings": {"num_allocations": 4}})
    assert ss_of(updated) == {"num_allocations": 4, "num_threads": 1, "model_id": ".elser_model_2"}
    assert updated.chunking_settings == FIXED.chunking_settings


def test_update_enables_adaptive_and_keeps_allocations() -> None:
    updated = parse_update_request(
        FIXED, "sparse_embedding", {"service_settings": {"adaptive_allocations": {"enabled": True}}}
    )
    assert ss_of(updated)["num_allocations"] == 1
    assert ss_of(updated)["adaptive_allocations"] == {"enabled": True}


def test_update_merges_adaptive_field_by_field() -> None:
    updated = parse_update_request(
        ADAPTIVE, None, {"service_settings": {"adaptive_allocations": {"max_number_of_allocations": 8}}}
    )
    assert ss_of(updated)["adaptive_allocations"] == {
        "enabled": True,
        "min_number_of_allocations": 1,
        "max_number_of_allocations": 8,
    }
    reset = parse_update_request(
        ADAPTIVE, None, {"service_settings": {"adaptive_allocations": {"min_number_of_allocations": -1}}}
    )
    assert ss_of(reset)["adaptive_allocations"] == {"enabled": True, "max_number_of_allocations": 4}
    disabled = parse_update_request(
        ADAPTIVE,
        None,
        {"service_settings": {"num_allocations": 3, "adaptive_allocations": {"enabled": False}}},
    )
    assert ss_of(disabled)["num_allocations"] == 3
    assert ss_of(disabled)["adaptive_allocations"]["enabled"] is False


def test_update_task_settings_only_is_a_no_op() -> None:
    assert parse_update_request(FIXED, None, {"task_settings": {}}) == FIXED


def update_error(existing: Any, url: str | None, body_: object, **kw: Any) -> ElserError:
    with pytest.raises(ElserError) as info:
        parse_update_request(existing, url, body_, **kw)
    return info.value


@pytest.mark.parametrize(
    ("url", "body_"),
    [("text_embedding", {"service_settings": {"num_allocations": 2}}), (None, {"task_type": "rerank"})],
)
def test_update_task_type_must_match(url: str | None, body_: dict[str, Any]) -> None:
    err = update_error(FIXED, url, body_)
    assert err.reason == "Task type must match the task type of the existing endpoint"
    assert (err.code, err.es_type, err.http_status) == (Code.FAILED_PRECONDITION, SE, 400)


def test_update_unknown_url_task_type() -> None:
    assert update_error(FIXED, "bad", {}).reason == "Unknown task_type [bad]"


def test_update_failed_to_parse() -> None:
    err = update_error(FIXED, None, {"service_settings": {"num_allocations": "2"}})
    assert (
        err.reason == "Failed to parse [num_allocations] of update request "
        '[{"service_settings":{"num_allocations":"2"}}]'
    )
    assert (err.es_type, err.error_reason) == (SE, "INVALID_UPDATE")
    raw = '{ "service_settings": { } }'
    assert update_error(FIXED, None, {"service_settings": {}}, raw_body=raw).reason == (
        f"Failed to parse [num_allocations] of update request [{raw}]"
    )
    assert update_error(FIXED, None, {}).reason == "Failed to parse [num_allocations] of update request [{}]"


@pytest.mark.parametrize(
    ("existing", "body_", "reason"),
    [
        (
            FIXED,
            {"service_settings": {"num_allocations": 0}},
            vf("[service_settings] Invalid value [0]. [num_allocations] must be a positive integer"),
        ),
        (
            ADAPTIVE,
            {"service_settings": {"num_allocations": 2}},
            vf("[number_of_allocations] cannot be set if adaptive allocations is enabled"),
        ),
        (
            ADAPTIVE,
            {"service_settings": {"adaptive_allocations": {"min_number_of_allocations": 9}}},
            vf("[min_number_of_allocations] must not be larger than [max_number_of_allocations]"),
        ),
        (
            FIXED,
            {
                "service_settings": {"num_allocations": 2, "num_threads": 2, "model_id": "x"},
                "chunking_settings": {},
            },
            vf(
                "[chunking_settings] cannot be updated",
                "[num_threads] cannot be updated",
                "[model_id] cannot be updated",
            ),
        ),
        (
            FIXED,
            {"service_settings": {"adaptive_allocations": {"foo": 1}}},
            vf("[adaptive_allocations] does not allow the setting [foo]"),
        ),
    ],
)
def test_update_validation(existing: Any, body_: dict[str, Any], reason: str) -> None:
    err = update_error(existing, None, body_)
    assert (err.reason, err.es_type, err.code, err.http_status) == (reason, VE, Code.INVALID_ARGUMENT, 400)
