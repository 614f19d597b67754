"""es-compat §2 and §3.2 over gRPC: the rules of tests/transport/rest/test_es_rules.py (its CASES table), sent as
the typed elser.v1 messages. Each error must arrive with its gRPC code, ES's reason text as the status message and
the google.rpc details the transport attaches (ErrorInfo with ES's type and HTTP status; BadRequest field
violations; ResourceInfo for missing/existing endpoints; PreconditionFailure for task-type mismatches).

The REST table is not imported: its module needs tests/transport/rest on sys.path (`from es_bodies import …`),
which only holds when pytest collects that directory. Its rows are restated here in the same order.

REST rows NOT restated, because the typed proto cannot express the request:
- task_type by name `bad` (URL, body and infer) and chunking strategy `x`: proto enums carry numbers, so an
  unknown *name* cannot be sent; the unknown-*number* variants below check the same rules.
- body task_type `any`: `any` is TASK_TYPE_UNSPECIFIED, i.e. "not given" — not a value the server can reject.
- unknown keys (`foo` in the body, in service_settings, in adaptive_allocations (`k`), in word/sentence/recursive
  chunking settings) and `unknown field [foo]` in an inference body: the messages have no such fields (a
  client's unknown field never reaches the server as a key).
- type errors (num_threads `"1"` / `1.5`, sentence_overlap `"1"` / `0.5`): the fields are int32.
- inference body `{}` ("Field [input] cannot be null"): a missing and an empty repeated field are the same
  thing in proto3; the empty-array row covers it.
- inference `input_type`, `return_documents`, `top_n`: InferRequest has no such fields.
- recursive `separators: []`: an empty repeated field is "not given", not an empty list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from elser.v1 import endpoint_service_pb2 as es_pb2
from elser.v1 import endpoint_service_pb2_grpc as es_grpc
from elser.v1 import inference_service_pb2 as is_pb2
from elser.v1 import inference_service_pb2_grpc as is_grpc
from elser.v1 import types_pb2
from google.protobuf.message import Message
from grpcdetails import rich

MODEL = ".elser_model_2"
SPARSE = types_pb2.TASK_TYPE_SPARSE_EMBEDDING
TEXT = types_pb2.TASK_TYPE_TEXT_EMBEDDING
UNKNOWN_ENUM = 99  # proto3 keeps unknown enum numbers: the server sees 99

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXISTS = grpc.StatusCode.ALREADY_EXISTS
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION

ENDPOINT_RESOURCE = "elser.v1.Endpoint"
SS = "service_settings"
CS = "chunking_settings"


def settings(**values: Any) -> types_pb2.ServiceSettings:
    adaptive = values.pop("adaptive_allocations", None)
    msg = types_pb2.ServiceSettings(**values)
    if adaptive is not None:
        msg.adaptive_allocations.CopyFrom(types_pb2.AdaptiveAllocations(**adaptive))
    return msg


def es(**values: Any) -> types_pb2.EndpointConfig:
    """An `elasticsearch` body with the model id and `values` as its service settings."""
    return types_pb2.EndpointConfig(
        service="elasticsearch", service_settings=settings(model_id=MODEL, **values)
    )


ES_BODY = es(num_allocations=1, num_threads=1)
ELSER_BODY = types_pb2.EndpointConfig(
    service="elser", service_settings=settings(num_allocations=1, num_threads=1)
)

_STRATEGIES = {
    "word": types_pb2.CHUNKING_STRATEGY_WORD,
    "sentence": types_pb2.CHUNKING_STRATEGY_SENTENCE,
    "recursive": types_pb2.CHUNKING_STRATEGY_RECURSIVE,
}


def chunking(strategy: str | int | None = None, **values: Any) -> types_pb2.EndpointConfig:
    body = types_pb2.EndpointConfig()
    body.CopyFrom(ES_BODY)
    chunks = types_pb2.ChunkingSettings(**values)
    if strategy is not None:
        chunks.strategy = _STRATEGIES[strategy] if isinstance(strategy, str) else strategy  # type: ignore[assignment]
    body.chunking_settings.CopyFrom(chunks)
    return body


def put(inference_id: str, body: types_pb2.EndpointConfig, task_type: int = SPARSE) -> tuple[str, Message]:
    return "PutEndpoint", es_pb2.PutEndpointRequest(
        inference_id=inference_id, task_type=task_type, endpoint=body
    )


def update(inference_id: str, body: types_pb2.EndpointConfig, task_type: int = 0) -> tuple[str, Message]:
    return "UpdateEndpoint", es_pb2.UpdateEndpointRequest(
        inference_id=inference_id, task_type=task_type, endpoint=body
    )


def get(inference_id: str, task_type: int = 0) -> tuple[str, Message]:
    return "GetEndpoint", es_pb2.GetEndpointRequest(inference_id=inference_id, task_type=task_type)


def delete(inference_id: str, task_type: int = 0) -> tuple[str, Message]:
    return "DeleteEndpoint", es_pb2.DeleteEndpointRequest(inference_id=inference_id, task_type=task_type)


def infer(inference_id: str, *texts: str, task_type: int = 0) -> tuple[str, Message]:
    return "Infer", is_pb2.InferRequest(inference_id=inference_id, task_type=task_type, input=texts)


def validation(message: str) -> str:
    return f"Validation Failed: 1: {message};"


INVALID_ID = (
    "Validation Failed: 1: Invalid inference_id; '{}' can contain lowercase alphanumeric (a-z and 0-9), "
    "hyphens or underscores; must start and end with alphanumeric;"
)


@dataclass(frozen=True)
class Rule:
    """One expected failure. `violations`: BadRequest (field, description) pairs; None: no BadRequest.
    `resource`: the ResourceInfo name (of type elser.v1.Endpoint); None: no ResourceInfo."""

    call: tuple[str, Message]
    code: grpc.StatusCode
    es_type: str
    reason: str
    error_reason: str
    violations: list[tuple[str, str]] | None = None
    http_status: int = 400
    resource: str | None = None


def only(field_path: str, reason: str) -> list[tuple[str, str]]:
    """The single violation `invalid(..., field=…)` attaches: the field and the whole reason."""
    return [(field_path, reason)]


def rule_id(rule: Rule) -> str:
    return f"{rule.call[0]}-{rule.error_reason}"


def chunk_rule(body: types_pb2.EndpointConfig, message: str) -> Rule:
    """A chunking-settings validation error: one violation on `chunking_settings` with the whole reason."""
    reason = validation(message)
    return Rule(put("x", body), INVALID, "validation_exception", reason, "INVALID_ARGUMENT", only(CS, reason))


CASES: list[Rule] = [
    # §2.2 naming, §2.3 service and task type
    *[
        Rule(
            put(bad, ES_BODY),
            INVALID,
            "action_request_validation_exception",
            INVALID_ID.format(bad),
            "INVALID_INFERENCE_ID",
            only("inference_id", INVALID_ID.format(bad)),
        )
        for bad in ("My-Id", "-abc", "abc-", "_all", ".elser-2-elasticsearch")
    ],
    # REST `{"task_type": "bad"}` in the body of PUT /_inference/elser_model (no URL task type).
    Rule(
        put(
            "elser_model",
            types_pb2.EndpointConfig(
                service="elser",
                task_type=UNKNOWN_ENUM,  # type: ignore[arg-type]
                service_settings=settings(num_allocations=1, num_threads=1),
            ),
            task_type=0,
        ),
        INVALID,
        "status_exception",
        f"Unknown task_type [{UNKNOWN_ENUM}]",
        "UNKNOWN_TASK_TYPE",
        only("task_type", f"Unknown task_type [{UNKNOWN_ENUM}]"),
    ),
    # REST PUT /_inference/bad/x
    Rule(
        put("x", ES_BODY, task_type=UNKNOWN_ENUM),
        INVALID,
        "status_exception",
        f"Unknown task_type [{UNKNOWN_ENUM}]",
        "UNKNOWN_TASK_TYPE",
        only("task_type", f"Unknown task_type [{UNKNOWN_ENUM}]"),
    ),
    # REST POST /_inference/bad/existing
    Rule(
        infer("existing", "x", task_type=UNKNOWN_ENUM),
        INVALID,
        "status_exception",
        f"Unknown task_type [{UNKNOWN_ENUM}]",
        "UNKNOWN_TASK_TYPE",
        only("task_type", f"Unknown task_type [{UNKNOWN_ENUM}]"),
    ),
    Rule(
        put(
            "x",
            types_pb2.EndpointConfig(
                service="elasticsearch", task_type=TEXT, service_settings=ES_BODY.service_settings
            ),
        ),
        INVALID,
        "status_exception",
        "Cannot resolve conflicting task_type parameter in the request URL [sparse_embedding] and the request body "
        "[text_embedding]",
        "TASK_TYPE_CONFLICT",
        only(
            "task_type",
            "Cannot resolve conflicting task_type parameter in the request URL [sparse_embedding] and the request "
            "body [text_embedding]",
        ),
    ),
    Rule(
        put("x", types_pb2.EndpointConfig(service_settings=types_pb2.ServiceSettings())),
        INVALID,
        "status_exception",
        "Inference endpoint configuration is missing the [service] setting",
        "MISSING_SERVICE",
        only("service", "Inference endpoint configuration is missing the [service] setting"),
    ),
    Rule(
        put("x", types_pb2.EndpointConfig(service="foo", service_settings=types_pb2.ServiceSettings())),
        INVALID,
        "status_exception",
        "Unknown service [foo]",
        "UNKNOWN_SERVICE",
        only("service", "Unknown service [foo]"),
    ),
    Rule(
        put("x", types_pb2.EndpointConfig(service="elasticsearch")),
        INVALID,
        "status_exception",
        "Missing required field [service_settings]",
        "MISSING_SERVICE_SETTINGS",
        only(SS, "Missing required field [service_settings]"),
    ),
    Rule(
        put("x", ES_BODY, task_type=TEXT),
        INVALID,
        "status_exception",
        "The [elasticsearch] service does not support task type [text_embedding]",
        "UNSUPPORTED_TASK_TYPE",
        only("task_type", "The [elasticsearch] service does not support task type [text_embedding]"),
    ),
    Rule(
        put("x", ELSER_BODY, task_type=TEXT),
        INVALID,
        "status_exception",
        "The [elser] service does not support task type [text_embedding]",
        "UNSUPPORTED_TASK_TYPE",
        only("task_type", "The [elser] service does not support task type [text_embedding]"),
    ),
    # §2.5 service settings
    Rule(
        put("x", es(num_allocations=1)),
        INVALID,
        "validation_exception",
        validation("[service_settings] does not contain the required setting [num_threads]"),
        "INVALID_SERVICE_SETTINGS",
        [(f"{SS}.num_threads", "[service_settings] does not contain the required setting [num_threads]")],
    ),
    Rule(
        put("x", es(num_allocations=1, num_threads=0)),
        INVALID,
        "validation_exception",
        validation("[service_settings] Invalid value [0]. [num_threads] must be a positive integer"),
        "INVALID_SERVICE_SETTINGS",
        [
            (
                f"{SS}.num_threads",
                "[service_settings] Invalid value [0]. [num_threads] must be a positive integer",
            )
        ],
    ),
    Rule(
        put("x", es(num_allocations=0, num_threads=1)),
        INVALID,
        "validation_exception",
        "Validation Failed: 1: [service_settings] Invalid value [0]. [num_allocations] must be a positive integer;"
        "2: [service_settings] does not contain one of the required settings [num_allocations, adaptive_allocations];",
        "INVALID_SERVICE_SETTINGS",
        [
            (
                f"{SS}.num_allocations",
                "[service_settings] Invalid value [0]. [num_allocations] must be a positive integer",
            ),
            (
                f"{SS}.num_allocations",
                "[service_settings] does not contain one of the required settings "
                "[num_allocations, adaptive_allocations]",
            ),
        ],
    ),
    Rule(
        put("x", es(num_threads=1)),
        INVALID,
        "validation_exception",
        validation(
            "[service_settings] does not contain one of the required settings [num_allocations, adaptive_allocations]"
        ),
        "INVALID_SERVICE_SETTINGS",
        [
            (
                f"{SS}.num_allocations",
                "[service_settings] does not contain one of the required settings "
                "[num_allocations, adaptive_allocations]",
            )
        ],
    ),
    *[
        Rule(
            put("x", es(num_allocations=1, num_threads=threads)),
            INVALID,
            "action_request_validation_exception",
            validation("[threads_per_allocation] must be a power of 2 less than or equal to 32"),
            "INVALID_DEPLOYMENT_SETTINGS",
            [(f"{SS}.num_threads", "[threads_per_allocation] must be a power of 2 less than or equal to 32")],
        )
        for threads in (3, 64)
    ],
    Rule(
        put("x", es(num_allocations=1, num_threads=1, adaptive_allocations={"enabled": True})),
        INVALID,
        "action_request_validation_exception",
        validation("[number_of_allocations] cannot be set if adaptive allocations is enabled"),
        "INVALID_DEPLOYMENT_SETTINGS",
        [
            (
                f"{SS}.num_allocations",
                "[number_of_allocations] cannot be set if adaptive allocations is enabled",
            )
        ],
    ),
    Rule(
        put(
            "x",
            es(
                num_threads=1,
                adaptive_allocations={
                    "enabled": True,
                    "min_number_of_allocations": 5,
                    "max_number_of_allocations": 2,
                },
            ),
        ),
        INVALID,
        "validation_exception",
        validation("[min_number_of_allocations] must not be larger than [max_number_of_allocations]"),
        "INVALID_SERVICE_SETTINGS",
        [
            (
                f"{SS}.adaptive_allocations.min_number_of_allocations",
                "[min_number_of_allocations] must not be larger than [max_number_of_allocations]",
            )
        ],
    ),
    Rule(
        put(
            "x",
            types_pb2.EndpointConfig(
                service="elasticsearch", service_settings=settings(num_allocations=1, num_threads=1)
            ),
        ),
        INVALID,
        "illegal_argument_exception",
        "Error parsing service settings, model_id must be provided",
        "MISSING_MODEL_ID",
        only(f"{SS}.model_id", "Error parsing service settings, model_id must be provided"),
    ),
    Rule(
        put(
            "x",
            types_pb2.EndpointConfig(
                service="elasticsearch",
                service_settings=settings(model_id=".elser_model_1", num_allocations=1, num_threads=1),
            ),
        ),
        INVALID,
        "illegal_argument_exception",
        "Error parsing request config, model id does not match any models available on this platform. "
        "Was [.elser_model_1]. You may need to use a platform agnostic model.",
        "UNSUPPORTED_MODEL",
        only(
            f"{SS}.model_id",
            "Error parsing request config, model id does not match any models available on this platform. "
            "Was [.elser_model_1]. You may need to use a platform agnostic model.",
        ),
    ),
    Rule(
        put(
            "x",
            types_pb2.EndpointConfig(
                service="elasticsearch",
                service_settings=settings(model_id="", num_allocations=1, num_threads=1),
            ),
        ),
        INVALID,
        "validation_exception",
        validation("[service_settings] Invalid value empty string. [model_id] must be a non-empty string"),
        "INVALID_SERVICE_SETTINGS",
        [
            (
                f"{SS}.model_id",
                "[service_settings] Invalid value empty string. [model_id] must be a non-empty string",
            )
        ],
    ),
    Rule(
        # -1 is ES's "unset" placeholder (§1.6), so -2 is the first value that is below zero.
        put("x", es(num_threads=1, adaptive_allocations={"enabled": True, "min_number_of_allocations": -2})),
        INVALID,
        "validation_exception",
        validation("[min_number_of_allocations] must be a non-negative integer or null"),
        "INVALID_SERVICE_SETTINGS",
        [
            (
                f"{SS}.adaptive_allocations.min_number_of_allocations",
                "[min_number_of_allocations] must be a non-negative integer or null",
            )
        ],
    ),
    Rule(
        put("x", es(num_threads=1, adaptive_allocations={"enabled": True, "max_number_of_allocations": 0})),
        INVALID,
        "validation_exception",
        validation("[max_number_of_allocations] must be a positive integer or null"),
        "INVALID_SERVICE_SETTINGS",
        [
            (
                f"{SS}.adaptive_allocations.max_number_of_allocations",
                "[max_number_of_allocations] must be a positive integer or null",
            )
        ],
    ),
    Rule(
        put(
            "x",
            types_pb2.EndpointConfig(
                service="elasticsearch",
                service_settings=settings(model_id="foo", num_allocations=1, num_threads=1),
            ),
        ),
        INVALID,
        "illegal_argument_exception",
        "Error parsing request config, model id does not match any models available on this platform. "
        "Was [foo]. You may need to load it into the cluster using eland.",
        "UNSUPPORTED_MODEL",
        only(
            f"{SS}.model_id",
            "Error parsing request config, model id does not match any models available on this platform. "
            "Was [foo]. You may need to load it into the cluster using eland.",
        ),
    ),
    # §2.7 existence, task-type checks, reserved endpoints
    Rule(
        put("existing", ES_BODY),
        EXISTS,
        "resource_already_exists_exception",
        "Inference endpoint [existing] already exists",
        "ENDPOINT_EXISTS",
        resource="existing",
    ),
    *[
        Rule(
            call,
            NOT_FOUND,
            "resource_not_found_exception",
            f"Inference endpoint not found [{missing}]",
            "ENDPOINT_NOT_FOUND",
            http_status=404,
            resource=missing,
        )
        for missing, call in (
            ("inference_to_get", get("inference_to_get")),
            ("sparse_embedding", get("sparse_embedding")),  # REST GET /_inference/sparse_embedding: an id
            ("nope", delete("nope")),
            ("nope", infer("nope", "x")),
        )
    ],
    *[
        Rule(
            call,
            PRECONDITION,
            "status_exception",
            "Requested task type [text_embedding] does not match the inference endpoint's task type "
            "[sparse_embedding]",
            "TASK_TYPE_MISMATCH",
        )
        for call in (get("existing", TEXT), delete("existing", TEXT))
    ],
    Rule(
        infer("existing", "x", task_type=TEXT),
        PRECONDITION,
        "status_exception",
        "Incompatible task_type, the requested type [text_embedding] does not match the model type "
        "[sparse_embedding]",
        "TASK_TYPE_MISMATCH",
    ),
    Rule(
        update(
            "existing", types_pb2.EndpointConfig(service_settings=settings(num_allocations=2)), task_type=TEXT
        ),
        PRECONDITION,
        "status_exception",
        "Task type must match the task type of the existing endpoint",
        "TASK_TYPE_MISMATCH",
    ),
    Rule(
        delete(".elser-2-elasticsearch"),
        INVALID,
        "status_exception",
        "[.elser-2-elasticsearch] is a reserved inference endpoint. Cannot delete a reserved inference endpoint.",
        "RESERVED_INFERENCE_ID",
        None,  # unlike PUT of a reserved id, DELETE's refusal names no field
    ),
    # §1.6 _update
    Rule(
        update(
            "existing",
            types_pb2.EndpointConfig(
                service_settings=settings(num_allocations=2, adaptive_allocations={"enabled": True})
            ),
        ),
        INVALID,
        "validation_exception",
        validation("[number_of_allocations] cannot be set if adaptive allocations is enabled"),
        "INVALID_UPDATE",
        [
            (
                f"{SS}.num_allocations",
                "[number_of_allocations] cannot be set if adaptive allocations is enabled",
            )
        ],
    ),
    Rule(
        update("nope", types_pb2.EndpointConfig(service_settings=settings(num_allocations=2))),
        NOT_FOUND,
        "resource_not_found_exception",
        "Inference endpoint not found [nope]",
        "ENDPOINT_NOT_FOUND",
        http_status=404,
        resource="nope",
    ),
    # §1.5 inference request
    Rule(
        infer("existing"),
        INVALID,
        "action_request_validation_exception",
        validation("Field [input] cannot be an empty array"),
        "EMPTY_INPUT",
        only("input", validation("Field [input] cannot be an empty array")),
    ),
    # §3.2 chunking settings
    Rule(
        put("x", chunking(max_chunk_size=20)),
        INVALID,
        "illegal_argument_exception",
        "Can't generate Chunker without ChunkingStrategy provided",
        "INVALID_ARGUMENT",
        only(f"{CS}.strategy", "Can't generate Chunker without ChunkingStrategy provided"),
    ),
    *[
        chunk_rule(chunking(strategy, **values), message)
        for strategy, values, message in [
            (
                "word",
                {"max_chunk_size": 9, "overlap": 1},
                "[chunking_settings] Invalid value [9.0]. [max_chunk_size] must be a greater than or equal to [10.0]",
            ),
            (
                "word",
                {"max_chunk_size": 301, "overlap": 1},
                "[chunking_settings] Invalid value [301.0]. [max_chunk_size] must be a less than or equal to "
                "[300.0]",
            ),
            (
                "word",
                {"max_chunk_size": 10, "overlap": 6},
                "[chunking_settings] Invalid value [6.0]. [overlap] must be a less than or equal to [5.0]",
            ),
            (
                "word",
                {"max_chunk_size": 10},
                "[chunking_settings] does not contain the required setting [overlap]",
            ),
            (
                "sentence",
                {"max_chunk_size": 19},
                "[chunking_settings] Invalid value [19.0]. [max_chunk_size] must be a greater than or equal to "
                "[20.0]",
            ),
            (
                "sentence",
                {"max_chunk_size": 20, "sentence_overlap": 2},
                "sentence_overlap[2] must be either 0 or 1",
            ),
            *[
                (s, extra, "[chunking_settings] does not contain the required setting [max_chunk_size]")
                for s, extra in (("word", {"overlap": 1}), ("sentence", {}), ("recursive", {}))
            ],
            *[
                (
                    s,
                    {"max_chunk_size": 0, **extra},
                    "[chunking_settings] Invalid value [0]. [max_chunk_size] must be a positive integer",
                )
                for s, extra in (("word", {"overlap": 1}), ("sentence", {}), ("recursive", {}))
            ],
            (
                "word",
                {"max_chunk_size": 10, "overlap": 0},
                "[chunking_settings] Invalid value [0]. [overlap] must be a positive integer",
            ),
            # max/2 is integer division: 11 allows at most 5.
            (
                "word",
                {"max_chunk_size": 11, "overlap": 6},
                "[chunking_settings] Invalid value [6.0]. [overlap] must be a less than or equal to [5.0]",
            ),
            # An invalid max_chunk_size is the only error: the overlap is then not checked.
            (
                "word",
                {"max_chunk_size": 5, "overlap": 3},
                "[chunking_settings] Invalid value [5.0]. [max_chunk_size] must be a greater than or equal to "
                "[10.0]",
            ),
            (
                "recursive",
                {"max_chunk_size": 20, "separators": ["\n"], "separator_group": "markdown"},
                "Recursive chunking settings can not have both separators and separator_group",
            ),
        ]
    ],
    # REST strategy `x`: an unknown enum number reaches the same rule.
    Rule(
        put("x", chunking(UNKNOWN_ENUM)),
        INVALID,
        "illegal_argument_exception",
        f"Invalid chunkingStrategy {UNKNOWN_ENUM}",
        "INVALID_ARGUMENT",
        only(f"{CS}.strategy", f"Invalid chunkingStrategy {UNKNOWN_ENUM}"),
    ),
]


@pytest.mark.parametrize("rule", CASES, ids=[f"{i:02d}-{rule_id(r)}" for i, r in enumerate(CASES)])
async def test_rule(channel: grpc.aio.Channel, rule: Rule) -> None:
    endpoints = es_grpc.EndpointServiceStub(channel)
    inference = is_grpc.InferenceServiceStub(channel)
    await endpoints.PutEndpoint(put("existing", ES_BODY)[1], timeout=60)

    method, request = rule.call
    stub = inference if method == "Infer" else endpoints
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, method)(request, timeout=60)
    error = caught.value

    assert (error.code(), error.details()) == (rule.code, rule.reason)
    details = rich(error)
    info = details.pop("ErrorInfo")
    assert (info.domain, info.reason, dict(info.metadata)) == (
        "elser.v1",
        rule.error_reason,
        {"es_type": rule.es_type, "http_status": str(rule.http_status)},
    )
    bad_request = details.pop("BadRequest", None)
    violations = (
        None if bad_request is None else [(v.field, v.description) for v in bad_request.field_violations]
    )
    assert violations == rule.violations
    resource = details.pop("ResourceInfo", None)
    if rule.resource is None:
        assert resource is None
    else:
        assert (resource.resource_type, resource.resource_name) == (ENDPOINT_RESOURCE, rule.resource)
    precondition = details.pop("PreconditionFailure", None)
    if rule.code is PRECONDITION:
        assert [(v.type, v.description) for v in precondition.violations] == [
            (rule.error_reason, rule.reason)
        ]
    else:
        assert precondition is None
    assert details == {}, "no other details (RetryInfo only for retryable errors)"


async def test_failed_put_leaves_nothing_behind(channel: grpc.aio.Channel) -> None:
    """A rejected PutEndpoint stores nothing: `x` of the table is never created, `existing` is unchanged."""
    endpoints = es_grpc.EndpointServiceStub(channel)
    await endpoints.PutEndpoint(put("existing", ES_BODY)[1], timeout=60)
    for rule in CASES:
        method, request = rule.call
        if method == "PutEndpoint":
            with pytest.raises(grpc.aio.AioRpcError):
                await endpoints.PutEndpoint(request, timeout=60)
    listed = await endpoints.ListEndpoints(es_pb2.ListEndpointsRequest())
    assert [e.inference_id for e in listed.endpoints] == [".elser-2-elasticsearch", "existing"]
    (existing,) = [e for e in listed.endpoints if e.inference_id == "existing"]
    assert existing.service_settings.num_allocations == 1 and existing.service_settings.num_threads == 1
