"""ES endpoint semantics (core/endpoint_rules.py): every PUT and task-type rule with ES's exact texts, types and
statuses. _update is in test_update_rules.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from elser_server.core import endpoint_rules
from elser_server.core.defaults import DEFAULT_ELSER_MODEL_ID, default_endpoint
from elser_server.core.endpoint_rules import (
    ELSER_SERVICE_WARNING,
    NULL_MODEL_ID_WARNING,
    check_infer_task_type,
    check_task_type,
    parse_put_request,
    validate_deployment_settings,
)
from elser_server.core.errors import Code, ElserError
from elser_server.core.types import AdaptiveAllocations, ServiceSettings, TaskType
from support import ELSER_PUT_BODY
from support import validation_failed as vf

DEFAULT_CHUNKING = {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
_DROP = object()


def body(**settings: Any) -> dict[str, Any]:
    """A valid elasticsearch-service body; keyword args override service_settings keys (_DROP removes)."""
    ss: dict[str, Any] = {"model_id": ".elser_model_2", "num_threads": 1, "num_allocations": 1}
    for key, value in settings.items():
        if value is _DROP:
            ss.pop(key, None)
        else:
            ss[key] = value
    return {"service": "elasticsearch", "service_settings": ss}


def with_top(extra: dict[str, Any], **settings: Any) -> dict[str, Any]:
    out = body(**settings)
    out.update(extra)
    return out


def put_error(body_: object, inference_id: str = "my-id", url: str | None = "sparse_embedding") -> ElserError:
    with pytest.raises(ElserError) as info:
        parse_put_request(inference_id, url, body_)
    return info.value


def id_msg(inference_id: str) -> str:
    return vf(
        f"Invalid inference_id; '{inference_id}' can contain lowercase alphanumeric (a-z and 0-9), "
        "hyphens or underscores; must start and end with alphanumeric"
    )


def type_msg(key: str, value: str, java_type: str = "Integer") -> str:
    return (
        f"field [{key}] is not of the expected type. The value [{value}] cannot be converted to a "
        f"[{java_type}]"
    )


ONE_OF = (
    "[service_settings] does not contain one of the required settings [num_allocations, adaptive_allocations]"
)
ARVE = "action_request_validation_exception"
VE = "validation_exception"
SE = "status_exception"
IAE = "illegal_argument_exception"
ELAND = (
    "Error parsing request config, model id does not match any models available on this platform. Was [{}]. "
    "You may need to load it into the cluster using eland."
)
AGNOSTIC = (
    "Error parsing request config, model id does not match any models available on this platform. Was [{}]. "
    "You may need to use a platform agnostic model."
)

# (case id, inference_id, url task type, body, es_type, reason, error_reason, first field violation)
PUT_ERRORS: list[tuple[str, str, str | None, object, str, str, str, str]] = [
    ("id-upper", "My-Id", None, body(), ARVE, id_msg("My-Id"), "INVALID_INFERENCE_ID", "inference_id"),
    ("id-leading-dash", "-abc", None, body(), ARVE, id_msg("-abc"), "INVALID_INFERENCE_ID", "inference_id"),
    ("id-trailing-dash", "abc-", None, body(), ARVE, id_msg("abc-"), "INVALID_INFERENCE_ID", "inference_id"),
    ("id-all", "_all", None, body(), ARVE, id_msg("_all"), "INVALID_INFERENCE_ID", "inference_id"),
    ("id-empty", "", None, body(), ARVE, id_msg(""), "INVALID_INFERENCE_ID", "inference_id"),
    ("id-newline", "abc\n", None, body(), ARVE, id_msg("abc\n"), "INVALID_INFERENCE_ID", "inference_id"),
    (
        "id-default-reserved-is-dotted",
        ".elser-2-elasticsearch",
        None,
        body(),
        ARVE,
        id_msg(".elser-2-elasticsearch"),
        "INVALID_INFERENCE_ID",
        "inference_id",
    ),
    (
        "url-task-type-first",
        "My-Id",
        "bad",
        body(),
        SE,
        "Unknown task_type [bad]",
        "UNKNOWN_TASK_TYPE",
        "task_type",
    ),
    ("body-none", "my-id", None, None, "parse_exception", "request body is required", "INVALID_BODY", ""),
    (
        "body-list",
        "my-id",
        None,
        [],
        "parse_exception",
        "request body must be a JSON object",
        "INVALID_BODY",
        "",
    ),
    (
        "seed-bad-task-type",
        "elser_model",
        None,
        {
            "task_type": "bad",
            "service": "elser",
            "service_settings": {"num_allocations": 1, "num_threads": 1},
            "task_settings": {},
        },
        SE,
        "Unknown task_type [bad]",
        "UNKNOWN_TASK_TYPE",
        "task_type",
    ),
    (
        "task-type-conflict",
        "my-id",
        "sparse_embedding",
        with_top({"task_type": "text_embedding"}),
        SE,
        "Cannot resolve conflicting task_type parameter in the request URL [sparse_embedding] and the "
        "request body [text_embedding]",
        "TASK_TYPE_CONFLICT",
        "task_type",
    ),
    (
        "task-type-missing",
        "my-id",
        None,
        body(),
        SE,
        "model is missing required setting [task_type]",
        "MISSING_TASK_TYPE",
        "task_type",
    ),
    (
        "task-type-url-any",
        "my-id",
        "any",
        body(),
        SE,
        "model is missing required setting [task_type]",
        "MISSING_TASK_TYPE",
        "task_type",
    ),
    (
        "task-type-body-any",
        "my-id",
        None,
        with_top({"task_type": "any"}),
        SE,
        "task_type [any] is not valid type for inference",
        "UNKNOWN_TASK_TYPE",
        "task_type",
    ),
    (
        "service-missing",
        "my-id",
        "sparse_embedding",
        {"service_settings": {"num_threads": 1, "num_allocations": 1}},
        SE,
        "Inference endpoint configuration is missing the [service] setting",
        "MISSING_SERVICE",
        "service",
    ),
    (
        "service-unknown",
        "my-id",
        "sparse_embedding",
        with_top({"service": "openai"}),
        SE,
        "Unknown service [openai]",
        "UNKNOWN_SERVICE",
        "service",
    ),
    (
        "top-level-unknown",
        "my-id",
        "sparse_embedding",
        with_top({"foo": "bar"}),
        SE,
        "Model configuration contains settings [{foo=bar}] unknown to the [elasticsearch] service",
        "UNKNOWN_SETTINGS",
        "foo",
    ),
    (
        "top-level-unknown-nested-java-rendering",
        "my-id",
        "sparse_embedding",
        with_top({"service": "elser", "foo": {"a": [1, True, None, 1.5, 1e10]}, "bar": 2}),
        SE,
        # ES parses bodies into HashMaps: keys print in hash order.
        "Model configuration contains settings [{bar=2, foo={a=[1, true, null, 1.5, 1.0E10]}}] unknown to "
        "the [elasticsearch] service",
        "UNKNOWN_SETTINGS",
        "bar",
    ),
    (
        "service-settings-missing",
        "my-id",
        "sparse_embedding",
        {"service": "elasticsearch"},
        SE,
        "Missing required field [service_settings]",
        "MISSING_SERVICE_SETTINGS",
        "service_settings",
    ),
    (
        "service-settings-not-object",
        "my-id",
        "sparse_embedding",
        {"service": "elasticsearch", "service_settings": "x"},
        VE,
        vf(type_msg("service_settings", "x", "Map")),
        "INVALID_SERVICE_SETTINGS",
        "service_settings",
    ),
    (
        "num-threads-missing",
        "my-id",
        "sparse_embedding",
        body(num_threads=_DROP),
        VE,
        vf("[service_settings] does not contain the required setting [num_threads]"),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.num_threads",
    ),
    (
        "num-threads-null-is-missing",
        "my-id",
        "sparse_embedding",
        body(num_threads=None),
        VE,
        vf("[service_settings] does not contain the required setting [num_threads]"),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.num_threads",
    ),
    (
        "num-threads-float",
        "my-id",
        "sparse_embedding",
        body(num_threads=1.5),
        VE,
        vf(type_msg("num_threads", "1.5")),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.num_threads",
    ),
    (
        "num-threads-integral-float",
        "my-id",
        "sparse_embedding",
        body(num_threads=1.0),
        VE,
        vf(type_msg("num_threads", "1.0")),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.num_threads",
    ),
    (
        "num-threads-string",
        "my-id",
        "sparse_embedding",
        body(num_threads="1"),
        VE,
        vf(type_msg("num_threads", "1")),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.num_threads",
    ),
    (
        "num-threads-bool",
        "my-id",
        "sparse_embedding",
        body(num_threads=True),
        VE,
        vf(type_msg("num_threads", "true")),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.num_threads",
    ),
    (
        "num-threads-long",
        "my-id",
        "sparse_embedding",
        body(num_threads=2**31),
        VE,
        vf(type_msg("num_threads", "2147483648")),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.num_threads",
    ),
    (
        "num-threads-zero",
        "my-id",
        "sparse_embedding",
        body(num_threads=0),
        VE,
        vf("[service_settings] Invalid value [0]. [num_threads] must be a positive integer"),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.num_threads",
    ),
    (
        "num-allocations-zero",
        "my-id",
        "sparse_embedding",
        body(num_allocations=0),
        VE,
        vf("[service_settings] Invalid value [0]. [num_allocations] must be a positive integer", ONE_OF),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.num_allocations",
    ),
    (
        "num-allocations-zero-with-adaptive",
        "my-id",
        "sparse_embedding",
        body(num_allocations=-3, adaptive_allocations={"enabled": False}),
        VE,
        vf("[service_settings] Invalid value [-3]. [num_allocations] must be a positive integer"),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.num_allocations",
    ),
    (
        "num-allocations-bool",
        "my-id",
        "sparse_embedding",
        body(num_allocations=False),
        VE,
        vf(type_msg("num_allocations", "false"), ONE_OF),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.num_allocations",
    ),
    (
        "allocations-both-missing",
        "my-id",
        "sparse_embedding",
        body(num_allocations=_DROP),
        VE,
        vf(ONE_OF),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.num_allocations",
    ),
    (
        "several-errors-in-es-order",
        "my-id",
        "sparse_embedding",
        body(num_allocations="x", num_threads=0, model_id=""),
        VE,
        vf(
            type_msg("num_allocations", "x"),
            "[service_settings] Invalid value [0]. [num_threads] must be a positive integer",
            ONE_OF,
            "[service_settings] Invalid value empty string. [model_id] must be a non-empty string",
        ),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.num_allocations",
    ),
    (
        "model-id-empty",
        "my-id",
        "sparse_embedding",
        body(model_id=""),
        VE,
        vf("[service_settings] Invalid value empty string. [model_id] must be a non-empty string"),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.model_id",
    ),
    (
        "model-id-not-string",
        "my-id",
        "sparse_embedding",
        body(model_id=7),
        VE,
        vf(type_msg("model_id", "7", "String")),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.model_id",
    ),
    (
        "model-id-absent-elasticsearch-service",
        "my-id",
        "sparse_embedding",
        body(model_id=_DROP),
        IAE,
        "Error parsing service settings, model_id must be provided",
        "MISSING_MODEL_ID",
        "service_settings.model_id",
    ),
    (
        "model-id-not-elser",
        "my-id",
        "sparse_embedding",
        body(model_id="my-model", num_threads=0),
        IAE,
        ELAND.format("my-model"),
        "UNSUPPORTED_MODEL",
        "service_settings.model_id",
    ),
    (
        "model-id-elser-v1",
        "my-id",
        "sparse_embedding",
        body(model_id=".elser_model_1"),
        IAE,
        AGNOSTIC.format(".elser_model_1"),
        "UNSUPPORTED_MODEL",
        "service_settings.model_id",
    ),
    (
        "adaptive-min-negative",
        "my-id",
        "sparse_embedding",
        body(adaptive_allocations={"enabled": True, "min_number_of_allocations": -2}, num_allocations=_DROP),
        VE,
        vf("[min_number_of_allocations] must be a non-negative integer or null"),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.adaptive_allocations.min_number_of_allocations",
    ),
    (
        "adaptive-max-zero",
        "my-id",
        "sparse_embedding",
        body(adaptive_allocations={"enabled": True, "max_number_of_allocations": 0}, num_allocations=_DROP),
        VE,
        vf("[max_number_of_allocations] must be a positive integer or null"),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.adaptive_allocations.max_number_of_allocations",
    ),
    (
        "adaptive-min-above-max",
        "my-id",
        "sparse_embedding",
        body(
            adaptive_allocations={
                "enabled": True,
                "min_number_of_allocations": 5,
                "max_number_of_allocations": 2,
            },
            num_allocations=_DROP,
        ),
        VE,
        vf("[min_number_of_allocations] must not be larger than [max_number_of_allocations]"),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.adaptive_allocations.min_number_of_allocations",
    ),
    (
        "adaptive-unknown-key-and-bad-enabled",
        "my-id",
        "sparse_embedding",
        body(adaptive_allocations={"enabled": "yes", "foo": 1}, num_allocations=_DROP),
        VE,
        vf(type_msg("enabled", "yes", "Boolean"), "[adaptive_allocations] does not allow the setting [foo]"),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.adaptive_allocations.enabled",
    ),
    (
        "adaptive-not-object",
        "my-id",
        "sparse_embedding",
        body(adaptive_allocations=True, num_allocations=_DROP),
        VE,
        vf(type_msg("adaptive_allocations", "true", "Map"), ONE_OF),
        "INVALID_SERVICE_SETTINGS",
        "service_settings.adaptive_allocations",
    ),
    (
        "service-settings-unknown-key",
        "my-id",
        "sparse_embedding",
        body(foo=1),
        SE,
        "Model configuration contains settings [{foo=1}] unknown to the [elasticsearch] service",
        "UNKNOWN_SETTINGS",
        "service_settings.foo",
    ),
    (
        "elser-text-embedding",
        "my-id",
        "text_embedding",
        with_top({"service": "elser"}),
        SE,
        "The [elser] service does not support task type [text_embedding]",
        "UNSUPPORTED_TASK_TYPE",
        "task_type",
    ),
    (
        "elasticsearch-rerank",
        "my-id",
        "rerank",
        body(),
        SE,
        "The [elasticsearch] service does not support task type [rerank]",
        "UNSUPPORTED_TASK_TYPE",
        "task_type",
    ),
    (
        "chunking-word-max-below-min",
        "my-id",
        "sparse_embedding",
        with_top({"chunking_settings": {"strategy": "word", "max_chunk_size": 9, "overlap": 1}}),
        VE,
        vf(
            "[chunking_settings] Invalid value [9.0]. [max_chunk_size] must be a greater than or equal to "
            "[10.0]"
        ),
        "INVALID_ARGUMENT",
        "chunking_settings",
    ),
    (
        "chunking-missing-strategy",
        "my-id",
        "sparse_embedding",
        with_top({"chunking_settings": {"max_chunk_size": 20}}),
        IAE,
        "Can't generate Chunker without ChunkingStrategy provided",
        "INVALID_ARGUMENT",
        "chunking_settings.strategy",
    ),
    (
        "task-settings-not-object",
        "my-id",
        "sparse_embedding",
        with_top({"task_settings": [1]}),
        VE,
        vf(type_msg("task_settings", "[1]", "Map")),
        "INVALID_TASK_SETTINGS",
        "task_settings",
    ),
    (
        "num-threads-not-power-of-two",
        "my-id",
        "sparse_embedding",
        body(num_threads=3),
        ARVE,
        vf("[threads_per_allocation] must be a power of 2 less than or equal to 32"),
        "INVALID_DEPLOYMENT_SETTINGS",
        "service_settings.num_threads",
    ),
    (
        "num-threads-above-32",
        "my-id",
        "sparse_embedding",
        body(num_threads=64),
        ARVE,
        vf("[threads_per_allocation] must be a power of 2 less than or equal to 32"),
        "INVALID_DEPLOYMENT_SETTINGS",
        "service_settings.num_threads",
    ),
    (
        "num-allocations-with-adaptive-enabled",
        "my-id",
        "sparse_embedding",
        body(num_allocations=2, adaptive_allocations={"enabled": True}),
        ARVE,
        vf("[number_of_allocations] cannot be set if adaptive allocations is enabled"),
        "INVALID_DEPLOYMENT_SETTINGS",
        "service_settings.num_allocations",
    ),
]


@pytest.mark.parametrize(
    ("inference_id", "url", "body_", "es_type", "reason", "error_reason", "field"),
    [pytest.param(*case[1:], id=case[0]) for case in PUT_ERRORS],
)
def test_put_rejections(
    inference_id: str,
    url: str | None,
    body_: object,
    es_type: str,
    reason: str,
    error_reason: str,
    field: str,
) -> None:
    before = copy.deepcopy(body_)
    err = put_error(body_, inference_id, url)
    assert (err.reason, err.es_type, err.http_status) == (reason, es_type, 400)
    assert err.code is Code.INVALID_ARGUMENT
    assert err.error_reason == error_reason
    if field:
        assert err.field_violations[0].field == field
    assert body_ == before, "the caller's body must not be mutated"


def test_reserved_id_checked_after_the_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(endpoint_rules, "RESERVED_ENDPOINT_IDS", frozenset({"reserved-one"}))
    err = put_error(body(), "reserved-one")
    assert err.reason == (
        "[reserved-one] is a reserved inference ID. Cannot create a new inference endpoint with a "
        "reserved ID."
    )
    assert (err.es_type, err.error_reason, err.code) == (SE, "RESERVED_INFERENCE_ID", Code.INVALID_ARGUMENT)


def test_deployment_id_is_not_found() -> None:
    err = put_error(body(deployment_id="some-deployment"))
    assert (err.code, err.http_status, err.es_type) == (Code.NOT_FOUND, 404, "resource_not_found_exception")
    assert err.reason == "Cannot find deployment [some-deployment]"
    assert err.error_reason == "DEPLOYMENT_NOT_FOUND"


def test_x86_model_rejected_where_it_is_not_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(endpoint_rules, "DEFAULT_ELSER_MODEL_ID", ".elser_model_2")
    err = put_error(body(model_id=".elser_model_2_linux-x86_64"))
    assert (err.reason, err.es_type) == (AGNOSTIC.format(".elser_model_2_linux-x86_64"), IAE)
    # The cross-platform model is accepted everywhere.
    parse_put_request("ok", "sparse_embedding", body(model_id=".elser_model_2"))


@pytest.mark.parametrize("inference_id", ["a", "a.b", "a_b-c.9", "0", "my-elser-model"])
def test_valid_ids(inference_id: str) -> None:
    assert parse_put_request(inference_id, "sparse_embedding", body()).endpoint.inference_id == inference_id


def test_seed_legacy_elser_body() -> None:
    parsed = parse_put_request("my-elser-model", "sparse_embedding", ELSER_PUT_BODY)
    assert parsed.endpoint.to_dict() == {
        "inference_id": "my-elser-model",
        "task_type": "sparse_embedding",
        "service": "elasticsearch",
        "service_settings": {"num_allocations": 1, "num_threads": 1, "model_id": DEFAULT_ELSER_MODEL_ID},
        "chunking_settings": DEFAULT_CHUNKING,
    }
    assert list(parsed.endpoint.to_dict()["service_settings"]) == [
        "num_allocations",
        "num_threads",
        "model_id",
    ]
    assert parsed.warnings == [
        NULL_MODEL_ID_WARNING,
        "The [elser] service is deprecated and will be removed in a future release. Use the [elasticsearch] "
        f"service instead, with [model_id] set to [{DEFAULT_ELSER_MODEL_ID}] in the [service_settings]",
    ]


def test_seed_adaptive_body() -> None:
    adaptive = {"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 4}
    parsed = parse_put_request(
        "my-elser-model",
        "sparse_embedding",
        {
            "service": "elasticsearch",
            "service_settings": {
                "model_id": DEFAULT_ELSER_MODEL_ID,
                "num_threads": 1,
                "adaptive_allocations": adaptive,
            },
            "chunking_settings": DEFAULT_CHUNKING,
        },
    )
    out = parsed.endpoint.to_dict()
    assert out == {
        "inference_id": "my-elser-model",
        "task_type": "sparse_embedding",
        "service": "elasticsearch",
        "service_settings": {
            "num_threads": 1,
            "model_id": DEFAULT_ELSER_MODEL_ID,
            "adaptive_allocations": adaptive,
        },
        "chunking_settings": DEFAULT_CHUNKING,
    }
    assert list(out) == ["inference_id", "task_type", "service", "service_settings", "chunking_settings"]
    assert parsed.warnings == []


def test_elser_service_with_model_id_warns_only_about_the_service() -> None:
    parsed = parse_put_request("e", None, with_top({"service": "elser", "task_type": "SPARSE_EMBEDDING"}))
    assert parsed.warnings == [ELSER_SERVICE_WARNING.format(model_id=DEFAULT_ELSER_MODEL_ID)]
    assert parsed.endpoint.service == "elasticsearch"
    assert parsed.endpoint.task_type is TaskType.SPARSE_EMBEDDING


def test_put_details() -> None:
    parsed = parse_put_request(
        "e",
        "Sparse_Embedding",
        with_top(
            {
                "task_type": "sparse_embedding",
                "task_settings": {"ignored": 1},
                "chunking_settings": {"strategy": "word", "max_chunk_size": 100, "overlap": 10},
            },
            num_allocations=_DROP,
            adaptive_allocations={
                "enabled": True,
                "min_number_of_allocations": -1,
                "max_number_of_allocations": 8,
            },
        ),
    )
    out = parsed.endpoint.to_dict()
    assert "task_settings" not in out  # ELSER task settings are ignored, not stored
    assert out["service_settings"]["adaptive_allocations"] == {
        "enabled": True,
        "max_number_of_allocations": 8,
    }
    assert out["chunking_settings"] == {"strategy": "word", "max_chunk_size": 100, "overlap": 10}
    # {} adaptive satisfies "one of" and prints enabled false, as ES does.
    empty = parse_put_request("e", "sparse_embedding", body(num_allocations=_DROP, adaptive_allocations={}))
    assert empty.endpoint.to_dict()["service_settings"]["adaptive_allocations"] == {"enabled": False}


def test_validate_deployment_settings_collects_in_es_order() -> None:
    with pytest.raises(ElserError) as info:
        validate_deployment_settings(
            ServiceSettings(
                ".elser_model_2",
                num_threads=6,
                num_allocations=2,
                adaptive_allocations=AdaptiveAllocations(True),
            )
        )
    assert info.value.reason == vf(
        "[number_of_allocations] cannot be set if adaptive allocations is enabled",
        "[threads_per_allocation] must be a power of 2 less than or equal to 32",
    )
    assert (info.value.es_type, info.value.code) == (ARVE, Code.INVALID_ARGUMENT)
    assert [v.field for v in info.value.field_violations] == [
        "service_settings.num_allocations",
        "service_settings.num_threads",
    ]
    for threads in (1, 2, 4, 8, 16, 32):
        validate_deployment_settings(
            ServiceSettings(".elser_model_2", num_threads=threads, num_allocations=1)
        )


@pytest.mark.parametrize("requested", [None, TaskType.ANY, TaskType.SPARSE_EMBEDDING])
def test_task_type_checks_pass(requested: TaskType | None) -> None:
    check_task_type(default_endpoint(), requested)
    check_infer_task_type(default_endpoint(), requested)


def test_task_type_checks_fail() -> None:
    with pytest.raises(ElserError) as info:
        check_task_type(default_endpoint(), TaskType.TEXT_EMBEDDING)
    assert info.value.reason == (
        "Requested task type [text_embedding] does not match the inference endpoint's task type "
        "[sparse_embedding]"
    )
    assert (info.value.code, info.value.es_type, info.value.http_status) == (
        Code.FAILED_PRECONDITION,
        SE,
        400,
    )
    with pytest.raises(ElserError) as info:
        check_infer_task_type(default_endpoint(), TaskType.RERANK)
    assert info.value.reason == (
        "Incompatible task_type, the requested type [rerank] does not match the model type [sparse_embedding]"
    )
    assert info.value.code is Code.FAILED_PRECONDITION
