"""Elasticsearch's answers to requests that fail, stated once for both transports: the REST rule test
(tests/transport/rest/test_es_rules.py) sends each as HTTP and expects ES's envelope; the gRPC one
(tests/transport/grpc/test_es_rules_grpc.py) sends it as the typed elser.v1 messages and expects the status,
ES's reason and the rich details. Texts follow Elasticsearch 9.1's source (the version the shim reports).

A rule's `grpc` names why the typed messages cannot say the same request (an unknown field, a wrong JSON
type, a task type by name, a query parameter, an SSE stream); the gRPC test sends every other rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from es_bodies import ELSER_BODY, ES_BODY

MODEL = ".elser_model_2"
SS = "service_settings"
CS = "chunking_settings"
ADAPTIVE_MIN = f"{SS}.adaptive_allocations.min_number_of_allocations"
ADAPTIVE_MAX = f"{SS}.adaptive_allocations.max_number_of_allocations"

# Why a request has no typed equivalent.
TASK_TYPE_NAME = "proto enums carry numbers: an unknown task type or strategy name cannot be sent"
ANY_TASK_TYPE = "`any` is TASK_TYPE_UNSPECIFIED, i.e. not given"
UNKNOWN_FIELD = "the messages have no such field"
JSON_TYPE = "the field is typed: a value of another JSON type cannot be sent"
MISSING_INPUT = "proto3 has no missing repeated field: it is the empty list"
QUERY_PARAMETER = "query parameters are REST's; a call carries a deadline"
SSE = "no RPC answers with server-sent events (InferStream reports per message)"


@dataclass(frozen=True)
class Rule:
    """One failing request and ES's answer. The gRPC expectations: `code` (a grpc.StatusCode name),
    `error_reason` (ErrorInfo.reason), `violations` (BadRequest (field, description) pairs; None: no
    BadRequest), `resource` (ResourceInfo name of an elser.v1.Endpoint; None: none); `grpc_es_type` and
    `grpc_reason` replace ES's type and reason where REST wraps the error (a parse exception's cause)."""

    method: str
    path: str
    body: Any
    status: int
    es_type: str
    reason: str
    error_reason: str = "INVALID_ARGUMENT"
    violations: tuple[tuple[str, str], ...] | None = None
    code: str = "INVALID_ARGUMENT"
    resource: str | None = None
    caused_by: tuple[str, str] | None = None  # REST `error.caused_by` (type, reason)
    sse: bool = False  # REST answers with one server-sent `error` event
    grpc: str | None = None
    grpc_es_type: str | None = None
    grpc_reason: str | None = None


def only(field: str, reason: str) -> tuple[tuple[str, str], ...]:
    """The single violation `invalid(..., field=…)` attaches: the field and the whole reason."""
    return ((field, reason),)


def validation(*messages: str) -> str:
    return "Validation Failed: " + "".join(f"{i}: {m};" for i, m in enumerate(messages, start=1))


def settings(**values: object) -> dict[str, object]:
    return {"service": "elasticsearch", "service_settings": {"model_id": MODEL, **values}}


def chunking(**values: object) -> dict[str, object]:
    return {**ES_BODY, "chunking_settings": values}


def invalid_id(inference_id: str) -> str:
    return validation(
        f"Invalid inference_id; '{inference_id}' can contain lowercase alphanumeric (a-z and 0-9), hyphens or "
        "underscores; must start and end with alphanumeric"
    )


def put(path: str, body: Any, es_type: str, reason: str, error_reason: str, **more: Any) -> Rule:
    return Rule("PUT", path, body, 400, es_type, reason, error_reason, **more)


def settings_error(
    body: Any, violations: tuple[tuple[str, str], ...] | None, *messages: str, **more: Any
) -> Rule:
    """A collected service-settings validation error of PUT /_inference/sparse_embedding/x."""
    return put(
        "/_inference/sparse_embedding/x",
        body,
        "validation_exception",
        validation(*messages),
        "INVALID_SERVICE_SETTINGS",
        violations=violations,
        **more,
    )


def chunking_error(body: Any, message: str, **more: Any) -> Rule:
    """A chunking-settings validation error: one violation on `chunking_settings` with the whole reason."""
    reason = validation(message)
    return put(
        "/_inference/sparse_embedding/x", body, "validation_exception", reason, "INVALID_ARGUMENT", **more
    )


def update(path: str, body: Any, reason: str, **more: Any) -> Rule:
    """A `_update` refused with a status_exception (UpdateInferenceModelAction and its transport action)."""
    more.setdefault("error_reason", "INVALID_UPDATE")
    return Rule("PUT", path, body, 400, "status_exception", reason, **more)


def input_type_rejected(value: str, cause: str, error_reason: str) -> Rule:
    """ObjectParser wraps InputType.fromRestString's IllegalArgumentException, positioned (line:column in
    UTF-8 bytes, as Jackson counts) at the value: `{"input": "x", "input_type": "…"}` puts it at 1:30."""
    return Rule(
        "POST",
        "/_inference/existing",
        {"input": "x", "input_type": value},
        400,
        "x_content_parse_exception",
        "[1:30] [cluster:internal/xpack/inference] failed to parse field [input_type]",
        error_reason,
        only("input_type", cause),
        caused_by=("illegal_argument_exception", cause),
        grpc_es_type="illegal_argument_exception",
        grpc_reason=cause,
    )


NOT_FOUND = "Inference endpoint not found [{}]"
TASK_TYPE_MISMATCH = "Requested task type [text_embedding] does not match the inference endpoint's task type [sparse_embedding]"
UPDATE_TASK_TYPE_MISMATCH = "Task type must match the task type of the existing endpoint"
CANNOT_BE_UPDATED = "Request contained fields which cannot be updated, remove these fields and try again [{}]"

# "existing" (ES_BODY, sparse_embedding) is created before each rule.
RULES: list[Rule] = [
    # --- PUT: naming, service and task type ---
    *[
        put(
            f"/_inference/sparse_embedding/{bad}",
            ES_BODY,
            "action_request_validation_exception",
            invalid_id(bad),
            "INVALID_INFERENCE_ID",
            violations=only("inference_id", invalid_id(bad)),
        )
        for bad in ("My-Id", "-abc", "abc-", "_all", ".elser-2-elasticsearch")
    ],
    put(
        "/_inference/elser_model",
        {"task_type": "bad", **ELSER_BODY, "task_settings": {}},
        "status_exception",
        "Unknown task_type [bad]",
        "UNKNOWN_TASK_TYPE",
        grpc=TASK_TYPE_NAME,
    ),
    put(
        "/_inference/bad/x",
        ES_BODY,
        "status_exception",
        "Unknown task_type [bad]",
        "UNKNOWN_TASK_TYPE",
        grpc=TASK_TYPE_NAME,
    ),
    Rule(
        "POST",
        "/_inference/bad/existing",
        {"input": "x"},
        400,
        "status_exception",
        "Unknown task_type [bad]",
        grpc=TASK_TYPE_NAME,
    ),
    put(
        "/_inference/sparse_embedding/x",
        {**ES_BODY, "task_type": "text_embedding"},
        "status_exception",
        conflict := (
            "Cannot resolve conflicting task_type parameter in the request URL [sparse_embedding] and the request "
            "body [text_embedding]"
        ),
        "TASK_TYPE_CONFLICT",
        violations=only("task_type", conflict),
    ),
    put(
        "/_inference/x",
        {**ES_BODY, "task_type": "any"},
        "status_exception",
        "task_type [any] is not valid type for inference",
        "UNKNOWN_TASK_TYPE",
        grpc=ANY_TASK_TYPE,
    ),
    put(
        "/_inference/sparse_embedding/x",
        {"service_settings": {}},
        "status_exception",
        missing := "Inference endpoint configuration is missing the [service] setting",
        "MISSING_SERVICE",
        violations=only("service", missing),
    ),
    put(
        "/_inference/sparse_embedding/x",
        {"service": "foo", "service_settings": {}},
        "status_exception",
        "Unknown service [foo]",
        "UNKNOWN_SERVICE",
        violations=only("service", "Unknown service [foo]"),
    ),
    put(
        "/_inference/sparse_embedding/x",
        {"service": "elasticsearch"},
        "status_exception",
        "Missing required field [service_settings]",
        "MISSING_SERVICE_SETTINGS",
        violations=only(SS, "Missing required field [service_settings]"),
    ),
    *[
        put(
            "/_inference/text_embedding/x",
            body,
            "status_exception",
            unsupported := f"The [{body['service']}] service does not support task type [text_embedding]",
            "UNSUPPORTED_TASK_TYPE",
            violations=only("task_type", unsupported),
        )
        for body in (ES_BODY, ELSER_BODY)
    ],
    # --- PUT: unknown keys ---
    *[
        put(
            "/_inference/sparse_embedding/x",
            body,
            "status_exception",
            "Model configuration contains settings [{foo=bar}] unknown to the [elasticsearch] service",
            "UNKNOWN_SETTINGS",
            grpc=UNKNOWN_FIELD,
        )
        for body in ({**ES_BODY, "foo": "bar"}, settings(num_allocations=1, num_threads=1, foo="bar"))
    ],
    # --- PUT: service settings ---
    settings_error(
        settings(num_allocations=1),
        (
            (
                f"{SS}.num_threads",
                m := "[service_settings] does not contain the required setting [num_threads]",
            ),
        ),
        m,
    ),
    settings_error(
        settings(num_allocations=1, num_threads=0),
        (
            (
                f"{SS}.num_threads",
                m := "[service_settings] Invalid value [0]. [num_threads] must be a positive integer",
            ),
        ),
        m,
    ),
    # ES collects every settings error: the invalid count then also leaves neither allocation setting.
    settings_error(
        settings(num_allocations=0, num_threads=1),
        (
            (
                f"{SS}.num_allocations",
                m1 := "[service_settings] Invalid value [0]. [num_allocations] must be a positive integer",
            ),
            (
                f"{SS}.num_allocations",
                m2 := "[service_settings] does not contain one of the required settings "
                "[num_allocations, adaptive_allocations]",
            ),
        ),
        m1,
        m2,
    ),
    settings_error(settings(num_threads=1), ((f"{SS}.num_allocations", m2),), m2),
    *[
        put(
            "/_inference/sparse_embedding/x",
            settings(num_allocations=1, num_threads=threads),
            "action_request_validation_exception",
            validation(m := "[threads_per_allocation] must be a power of 2 less than or equal to 32"),
            "INVALID_DEPLOYMENT_SETTINGS",
            violations=((f"{SS}.num_threads", m),),
        )
        for threads in (3, 64)
    ],
    put(
        "/_inference/sparse_embedding/x",
        settings(num_allocations=1, num_threads=1, adaptive_allocations={"enabled": True}),
        "action_request_validation_exception",
        validation(m := "[number_of_allocations] cannot be set if adaptive allocations is enabled"),
        "INVALID_DEPLOYMENT_SETTINGS",
        violations=((f"{SS}.num_allocations", m),),
    ),
    settings_error(
        settings(
            num_threads=1,
            adaptive_allocations={
                "enabled": True,
                "min_number_of_allocations": 5,
                "max_number_of_allocations": 2,
            },
        ),
        (
            (
                ADAPTIVE_MIN,
                m := "[min_number_of_allocations] must not be larger than [max_number_of_allocations]",
            ),
        ),
        m,
    ),
    put(
        "/_inference/sparse_embedding/x",
        {"service": "elasticsearch", "service_settings": {"num_allocations": 1, "num_threads": 1}},
        "illegal_argument_exception",
        m := "Error parsing service settings, model_id must be provided",
        "MISSING_MODEL_ID",
        violations=only(f"{SS}.model_id", m),
    ),
    *[
        put(
            "/_inference/sparse_embedding/x",
            settings(num_allocations=1, num_threads=1, model_id=model_id),
            "illegal_argument_exception",
            m
            := "Error parsing request config, model id does not match any models available on this platform. "
            f"Was [{model_id}]. {advice}",
            "UNSUPPORTED_MODEL",
            violations=only(f"{SS}.model_id", m),
        )
        for model_id, advice in (
            (".elser_model_1", "You may need to use a platform agnostic model."),
            ("foo", "You may need to load it into the cluster using eland."),
        )
    ],
    settings_error(
        settings(num_threads=1, adaptive_allocations={"enabled": True, "k": 1}),
        None,
        "[adaptive_allocations] does not allow the setting [k]",
        grpc=UNKNOWN_FIELD,
    ),
    *[
        put(
            "/_inference/sparse_embedding/x",
            settings(num_allocations=1, num_threads=value),
            "validation_exception",
            validation(
                f"field [num_threads] is not of the expected type. The value [{shown}] cannot be converted to a "
                "[Integer]"
            ),
            "INVALID_SERVICE_SETTINGS",
            grpc=JSON_TYPE,
        )
        for value, shown in (("1", "1"), (1.5, "1.5"))
    ],
    settings_error(
        settings(num_allocations=1, num_threads=1, model_id=""),
        (
            (
                f"{SS}.model_id",
                m := "[service_settings] Invalid value empty string. [model_id] must be a non-empty string",
            ),
        ),
        m,
    ),
    # -1 is ES's "unset" placeholder, so -2 is the first value that is below zero.
    settings_error(
        settings(num_threads=1, adaptive_allocations={"enabled": True, "min_number_of_allocations": -2}),
        ((ADAPTIVE_MIN, m := "[min_number_of_allocations] must be a non-negative integer or null"),),
        m,
    ),
    settings_error(
        settings(num_threads=1, adaptive_allocations={"enabled": True, "max_number_of_allocations": 0}),
        ((ADAPTIVE_MAX, m := "[max_number_of_allocations] must be a positive integer or null"),),
        m,
    ),
    # --- existence, task-type checks, reserved endpoints ---
    Rule(
        "PUT",
        "/_inference/sparse_embedding/existing",
        ES_BODY,
        400,
        "resource_already_exists_exception",
        "Inference endpoint [existing] already exists",
        "ENDPOINT_EXISTS",
        code="ALREADY_EXISTS",
        resource="existing",
    ),
    *[
        Rule(
            method,
            path,
            body,
            404,
            "resource_not_found_exception",
            NOT_FOUND.format(missing),
            "ENDPOINT_NOT_FOUND",
            code="NOT_FOUND",
            resource=missing,
        )
        for method, path, body, missing in (
            ("GET", "/_inference/inference_to_get", None, "inference_to_get"),
            ("GET", "/_inference/sparse_embedding", None, "sparse_embedding"),  # one segment is an id
            ("DELETE", "/_inference/nope", None, "nope"),
            ("POST", "/_inference/nope", {"input": "x"}, "nope"),
            ("PUT", "/_inference/nope/_update", {"service_settings": {"num_allocations": 2}}, "nope"),
        )
    ],
    *[
        Rule(
            method,
            "/_inference/text_embedding/existing",
            None,
            400,
            "status_exception",
            TASK_TYPE_MISMATCH,
            "TASK_TYPE_MISMATCH",
            code="FAILED_PRECONDITION",
        )
        for method in ("GET", "DELETE")
    ],
    Rule(
        "POST",
        "/_inference/text_embedding/existing",
        {"input": "x"},
        400,
        "status_exception",
        "Incompatible task_type, the requested type [text_embedding] does not match the model type [sparse_embedding]",
        "TASK_TYPE_MISMATCH",
        code="FAILED_PRECONDITION",
    ),
    Rule(
        "DELETE",
        "/_inference/.elser-2-elasticsearch",
        None,
        400,
        "status_exception",
        "[.elser-2-elasticsearch] is a reserved inference endpoint. Cannot delete a reserved inference endpoint.",
        "RESERVED_INFERENCE_ID",
    ),
    # --- _update (ES 9.1: RestUpdateInferenceModelAction, UpdateInferenceModelAction.Request, then
    # TransportUpdateInferenceModelAction), in ES's order ---
    # The request's validate() checks the id before anything is looked up: the preconfigured endpoint, though
    # listed, has an id no request may name.
    *[
        Rule(
            "PUT",
            path,
            {"service_settings": {"num_allocations": 2}},
            400,
            "action_request_validation_exception",
            invalid_id(".elser-2-elasticsearch"),
            "INVALID_INFERENCE_ID",
            only("inference_id", invalid_id(".elser-2-elasticsearch")),
        )
        for path in (
            "/_inference/.elser-2-elasticsearch/_update",
            "/_inference/sparse_embedding/.elser-2-elasticsearch/_update",
        )
    ],
    Rule(
        "PUT",
        "/_inference/existing/_update?master_timeout=10",
        {"service_settings": {"num_allocations": 2}},
        400,
        "illegal_argument_exception",
        "failed to parse setting [master_timeout] with value [10] as a time value: unit is missing or unrecognized",
        "BAD_REST_REQUEST",
        grpc=QUERY_PARAMETER,
    ),
    update(
        "/_inference/bad/existing/_update",
        {"service_settings": {"num_allocations": 2}},
        "Unknown task_type [bad]",
        grpc=TASK_TYPE_NAME,
    ),
    # The body's shape is checked before the lookup: a missing endpoint gets the body's error.
    *[
        update(path, {}, "Request body is empty")
        for path in ("/_inference/existing/_update", "/_inference/nope/_update")
    ],
    # ES answers 500 here: the check sits in code that only ever expected a string.
    Rule(
        "PUT",
        "/_inference/existing/_update",
        {"task_type": 5},
        500,
        "status_exception",
        "Failed to parse [task_type] in update request [{task_type=5}]",
        grpc=JSON_TYPE,
    ),
    update(
        "/_inference/existing/_update",
        {"service_settings": 5},
        "Unable to parse service settings in the request [{service_settings=5}]",
        grpc=JSON_TYPE,
    ),
    update(
        "/_inference/existing/_update",
        {"service_settings": {"num_allocations": 2}, "task_settings": [1]},
        "Unable to parse task settings in the request [{task_settings=[1]}]",
        grpc=JSON_TYPE,
    ),
    # The body the specification's TypeScript types and example send: ES 9.1 accepts none of it but
    # service_settings (HashMap.toString of what is left).
    update(
        "/_inference/sparse_embedding/existing/_update",
        {"service": "elasticsearch", "service_settings": {"num_allocations": 2, "num_threads": 1}},
        CANNOT_BE_UPDATED.format("{service=elasticsearch}"),
        violations=(("service", "cannot be updated"),),
    ),
    update(
        "/_inference/existing/_update",
        {"chunking_settings": {"strategy": "word", "max_chunk_size": 100, "overlap": 10}, "service": "elser"},
        CANNOT_BE_UPDATED.format(
            "{service=elser, chunking_settings={overlap=10, max_chunk_size=100, strategy=word}}"
        ),
        violations=(("service", "cannot be updated"), ("chunking_settings", "cannot be updated")),
    ),
    update(
        "/_inference/existing/_update",
        {"task_type": "any"},
        "task_type [any] is not valid type for inference",
        error_reason="UNKNOWN_TASK_TYPE",
        grpc=ANY_TASK_TYPE,
    ),
    update(
        "/_inference/sparse_embedding/existing/_update",
        {"task_type": "text_embedding"},
        conflict,
        error_reason="TASK_TYPE_CONFLICT",
        violations=only("task_type", conflict),
    ),
    *[
        update(
            path,
            body,
            UPDATE_TASK_TYPE_MISMATCH,
            error_reason="TASK_TYPE_MISMATCH",
            code="FAILED_PRECONDITION",
        )
        for path, body in (
            ("/_inference/text_embedding/existing/_update", {"service_settings": {"num_allocations": 2}}),
            ("/_inference/existing/_update", {"task_type": "text_embedding"}),
        )
    ],
    Rule(
        "PUT",
        "/_inference/existing/_update",
        {"service_settings": {"num_allocations": 0}},
        400,
        "validation_exception",
        validation(m := "[service_settings] Invalid value [0]. [num_allocations] must be a positive integer"),
        "INVALID_UPDATE",
        ((f"{SS}.num_allocations", m),),
    ),
    Rule(
        "PUT",
        "/_inference/existing/_update",
        {"service_settings": {"num_allocations": 2, "adaptive_allocations": {"enabled": True}}},
        400,
        "validation_exception",
        validation(m := "[number_of_allocations] cannot be set if adaptive allocations is enabled"),
        "INVALID_UPDATE",
        ((f"{SS}.num_allocations", m),),
    ),
    # ES 9.1 ignores every other service setting; later versions (and this service) refuse them in the words
    # of an unknown PUT setting.
    update(
        "/_inference/existing/_update",
        {"service_settings": {"num_allocations": 2, "num_threads": 2, "model_id": MODEL}},
        "Model configuration contains settings [{num_threads=2, model_id=.elser_model_2}] unknown to the "
        "[elasticsearch] service",
        error_reason="UNKNOWN_SETTINGS",
        violations=((f"{SS}.num_threads", "unknown setting"), (f"{SS}.model_id", "unknown setting")),
    ),
    # --- inference request ---
    Rule(
        "POST",
        "/_inference/existing",
        {"input": []},
        400,
        "action_request_validation_exception",
        m := validation("Field [input] cannot be an empty array"),
        "EMPTY_INPUT",
        only("input", m),
    ),
    Rule(
        "POST",
        "/_inference/existing",
        {},
        400,
        "action_request_validation_exception",
        validation("Field [input] cannot be null"),
        grpc=MISSING_INPUT,
    ),
    Rule(
        "POST",
        "/_inference/sparse_embedding/existing",
        {"input": "x", "input_type": "search"},
        400,
        "action_request_validation_exception",
        m := validation("Field [input_type] cannot be specified for task type [sparse_embedding]"),
        "INVALID_INPUT",
        only("input_type", m),
    ),
    # ES sets the internal input types itself (semantic_text); a client naming one is refused.
    *[
        input_type_rejected(value, f"Unrecognized input_type [{value}]", "UNRECOGNIZED_INPUT_TYPE")
        for value in ("internal_search", "internal_ingest")
    ],
    input_type_rejected(
        "foo", "No enum constant org.elasticsearch.inference.InputType.FOO", "UNKNOWN_INPUT_TYPE"
    ),
    Rule(
        "POST",
        "/_inference/sparse_embedding/existing",
        {"input": "x", "return_documents": True, "top_n": 1},
        400,
        "action_request_validation_exception",
        validation(
            "Field [return_documents] cannot be specified for task type [sparse_embedding]",
            "Field [top_n] cannot be specified for task type [sparse_embedding]",
        ),
        grpc=UNKNOWN_FIELD,
    ),
    Rule(
        "POST",
        "/_inference/existing",
        {"input": "x", "foo": 1},
        400,
        "x_content_parse_exception",
        "[1:16] [cluster:internal/xpack/inference] unknown field [foo]",
        grpc=UNKNOWN_FIELD,
    ),
    # _stream checks the task type as inference does, before it finds that ELSER cannot stream; the answer is a
    # server-sent event.
    Rule(
        "POST",
        "/_inference/completion/existing/_stream",
        {"input": "x"},
        400,
        "status_exception",
        "Incompatible task_type, the requested type [completion] does not match the model type [sparse_embedding]",
        sse=True,
        grpc=SSE,
    ),
    # --- chunking settings ---
    put(
        "/_inference/sparse_embedding/x",
        chunking(max_chunk_size=20),
        "illegal_argument_exception",
        m := "Can't generate Chunker without ChunkingStrategy provided",
        "INVALID_ARGUMENT",
        violations=only(f"{CS}.strategy", m),
    ),
    put(
        "/_inference/sparse_embedding/x",
        chunking(strategy="x"),
        "illegal_argument_exception",
        "Invalid chunkingStrategy x",
        "INVALID_ARGUMENT",
        grpc=TASK_TYPE_NAME,
    ),
    *[
        chunking_error(chunking(**values), message, violations=only(CS, validation(message)))
        for values, message in [
            (
                {"strategy": "word", "max_chunk_size": 9, "overlap": 1},
                "[chunking_settings] Invalid value [9.0]. [max_chunk_size] must be a greater than or equal to [10.0]",
            ),
            (
                {"strategy": "word", "max_chunk_size": 301, "overlap": 1},
                "[chunking_settings] Invalid value [301.0]. [max_chunk_size] must be a less than or equal to [300.0]",
            ),
            (
                {"strategy": "word", "max_chunk_size": 10, "overlap": 6},
                "[chunking_settings] Invalid value [6.0]. [overlap] must be a less than or equal to [5.0]",
            ),
            (
                {"strategy": "word", "max_chunk_size": 10},
                "[chunking_settings] does not contain the required setting [overlap]",
            ),
            (
                {"strategy": "sentence", "max_chunk_size": 19},
                "[chunking_settings] Invalid value [19.0]. [max_chunk_size] must be a greater than or equal to [20.0]",
            ),
            (
                {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 2},
                "sentence_overlap[2] must be either 0 or 1",
            ),
            *[
                (
                    {"strategy": s, **extra},
                    "[chunking_settings] does not contain the required setting [max_chunk_size]",
                )
                for s, extra in (("word", {"overlap": 1}), ("sentence", {}), ("recursive", {}))
            ],
            *[
                (
                    {"strategy": s, "max_chunk_size": 0, **extra},
                    "[chunking_settings] Invalid value [0]. [max_chunk_size] must be a positive integer",
                )
                for s, extra in (("word", {"overlap": 1}), ("sentence", {}), ("recursive", {}))
            ],
            (
                {"strategy": "word", "max_chunk_size": 10, "overlap": 0},
                "[chunking_settings] Invalid value [0]. [overlap] must be a positive integer",
            ),
            # max/2 is integer division: 11 allows at most 5.
            (
                {"strategy": "word", "max_chunk_size": 11, "overlap": 6},
                "[chunking_settings] Invalid value [6.0]. [overlap] must be a less than or equal to [5.0]",
            ),
            # An invalid max_chunk_size is the only error: the overlap is then not checked.
            (
                {"strategy": "word", "max_chunk_size": 5, "overlap": 3},
                "[chunking_settings] Invalid value [5.0]. [max_chunk_size] must be a greater than or equal to [10.0]",
            ),
            (
                {
                    "strategy": "recursive",
                    "max_chunk_size": 20,
                    "separators": ["\n"],
                    "separator_group": "markdown",
                },
                "Recursive chunking settings can not have both separators and separator_group",
            ),
        ]
    ],
    *[
        chunking_error(chunking(**values), message, grpc=grpc)
        for values, message, grpc in [
            (
                {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": "1"},
                "field [sentence_overlap] is not of the expected type. The value [1] cannot be converted to a "
                "[Integer]",
                JSON_TYPE,
            ),
            (
                {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 0.5},
                "field [sentence_overlap] is not of the expected type. The value [0.5] cannot be converted to a "
                "[Integer]",
                JSON_TYPE,
            ),
            (
                {"strategy": "word", "max_chunk_size": 10, "overlap": 1, "foo": 1},
                "Word based chunking settings can not have the following settings: [foo]",
                UNKNOWN_FIELD,
            ),
            (
                {"strategy": "sentence", "max_chunk_size": 20, "foo": 1, "bar": 2},
                "Sentence based chunking settings can not have the following settings: [foo, bar]",
                UNKNOWN_FIELD,
            ),
            (
                {"strategy": "recursive", "max_chunk_size": 20, "foo": 1},
                "Recursive chunking settings can not have the following settings: [foo]",
                UNKNOWN_FIELD,
            ),
            (
                {"strategy": "recursive", "max_chunk_size": 20, "separators": []},
                "Recursive chunking settings can not have an empty list of separators",
                "an empty repeated field is not given, not an empty list",
            ),
        ]
    ],
]
