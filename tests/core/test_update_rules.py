"""ES's _update of an endpoint (core/update_rules.py): what may change, how adaptive settings merge, and the
rejections with ES's exact texts, types and statuses."""

from __future__ import annotations

from typing import Any

import pytest
from elser_server.core.endpoint_rules import parse_put_request
from elser_server.core.errors import Code, ElserError
from elser_server.core.update_rules import check_update_request, parse_update_request
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


@pytest.mark.parametrize(
    ("url", "body_", "reason", "status"),
    [
        # UpdateInferenceModelAction.Request.getContentAsSettings (ES 9.1), in its order
        (None, {}, "Request body is empty", 400),
        (
            None,
            {"task_type": 5, "foo": 1},
            "Failed to parse [task_type] in update request [{foo=1, task_type=5}]",
            500,
        ),
        (None, {"task_type": "bad"}, "Unknown task_type [bad]", 400),
        (
            None,
            {"task_type": "sparse_embedding", "service_settings": 5},
            "Unable to parse service settings in the request [{service_settings=5}]",
            400,
        ),
        (
            None,
            {"service_settings": {"num_allocations": 2}, "task_settings": []},
            "Unable to parse task settings in the request [{task_settings=[]}]",
            400,
        ),
        (
            None,
            {"service": "elasticsearch", "service_settings": {"num_allocations": 2}},
            "Request contained fields which cannot be updated, remove these fields and try again "
            "[{service=elasticsearch}]",
            400,
        ),
        (
            None,
            {"service_settings": {"num_allocations": 2}, "chunking_settings": {}},
            "Request contained fields which cannot be updated, remove these fields and try again "
            "[{chunking_settings={}}]",
            400,
        ),
        # ServiceUtils.resolveTaskType
        (None, {"task_type": "any"}, "task_type [any] is not valid type for inference", 400),
        (
            "sparse_embedding",
            {"task_type": "TEXT_EMBEDDING"},
            "Cannot resolve conflicting task_type parameter in the request URL [sparse_embedding] and the "
            "request body [text_embedding]",
            400,
        ),
        # ES 9.1 ignores other service settings; later versions and this service refuse them.
        (
            None,
            {"service_settings": {"num_allocations": 2, "num_threads": 2, "model_id": "x"}},
            "Model configuration contains settings [{num_threads=2, model_id=x}] unknown to the "
            "[elasticsearch] service",
            400,
        ),
    ],
)
def test_update_request_rejections(url: str | None, body_: dict[str, Any], reason: str, status: int) -> None:
    err = update_error(FIXED, url, body_)
    assert (err.reason, err.es_type, err.http_status, err.code) == (reason, SE, status, Code.INVALID_ARGUMENT)


def test_update_id_is_checked_before_anything_is_looked_up() -> None:
    with pytest.raises(ElserError) as info:
        check_update_request(".elser-2-elasticsearch", None, {"service_settings": {"num_allocations": 2}})
    assert info.value.es_type == "action_request_validation_exception"
    assert info.value.reason == (
        "Validation Failed: 1: Invalid inference_id; '.elser-2-elasticsearch' can contain lowercase "
        "alphanumeric (a-z and 0-9), hyphens or underscores; must start and end with alphanumeric;"
    )


@pytest.mark.parametrize(
    "body_",
    [{"service_settings": {}}, {"task_type": "sparse_embedding"}, {"task_settings": {"anything": 1}}],
)
def test_update_without_changes_answers_the_endpoint(body_: dict[str, Any]) -> None:
    assert parse_update_request(FIXED, None, body_) == FIXED


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
            {"service_settings": {"num_allocations": "2"}},
            vf(
                "field [num_allocations] is not of the expected type. The value [2] cannot be converted to a "
                "[Integer]"
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
