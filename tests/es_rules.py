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

from support import ELSER_PUT_BODY, PUT_BODY

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
EMPTY_LIST = "an empty repeated field is not given, not an empty list"
QUERY_PARAMETER = "query parameters are REST's; a call carries a deadline"
SSE = "no RPC answers with server-sent events (InferStream reports per message)"


@dataclass(frozen=True)
class Rule:
    """One failing request and ES's answer. The gRPC expectations: `code` (a grpc.StatusCode name),
    `error_reason` (ErrorInfo.reason), `violations` (BadRequest (field, description) pairs; None: no
    BadRequest), `resource` (ResourceInfo name of an elser.v1.Endpoint; None: none). `field` is short for the
    one violation `invalid(..., field=…)` attaches: that field with the whole reason. `grpc_es_type` and
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
    field: str | None = None

    def __post_init__(self) -> None:
        if self.field is not None:
            assert self.violations is None, "`field` states the one violation"
            object.__setattr__(self, "violations", only(self.field, self.grpc_reason or self.reason))


def only(field: str, reason: str) -> tuple[tuple[str, str], ...]:
    return ((field, reason),)


def validation(*messages: str) -> str:
    return "Validation Failed: " + "".join(f"{i}: {m};" for i, m in enumerate(messages, start=1))


def collected(*violations: tuple[str, str]) -> dict[str, Any]:
    """A collected validation error (ES's ValidationException): the reason numbers the messages, and each
    message is a violation of its own field."""
    return {"reason": validation(*(message for _, message in violations)), "violations": violations}


def settings(**values: object) -> dict[str, object]:
    return {"service": "elasticsearch", "service_settings": {"model_id": MODEL, **values}}


def chunking(**values: object) -> dict[str, object]:
    return {**PUT_BODY, "chunking_settings": values}


def invalid_id(inference_id: str) -> str:
    return validation(
        f"Invalid inference_id; '{inference_id}' can contain lowercase alphanumeric (a-z and 0-9), hyphens or "
        "underscores; must start and end with alphanumeric"
    )


def put(path: str, body: Any, es_type: str, error_reason: str, **more: Any) -> Rule:
    """A refused PUT (400); `more` holds the reason and whatever else the rule states."""
    return Rule("PUT", path, body, 400, es_type, error_reason=error_reason, **more)


def settings_error(body: Any, *violations: tuple[str, str], **more: Any) -> Rule:
    """A collected service-settings validation error of PUT x."""
    return put(
        "/_inference/sparse_embedding/x",
        body,
        "validation_exception",
        "INVALID_SERVICE_SETTINGS",
        **collected(*violations),
        **more,
    )


def deployment_error(body: Any, field: str, message: str) -> Rule:
    """StartTrainedModelDeploymentAction.Request.validate, run before PUT x stores anything."""
    return put(
        "/_inference/sparse_embedding/x",
        body,
        "action_request_validation_exception",
        "INVALID_DEPLOYMENT_SETTINGS",
        **collected((field, message)),
    )


def chunking_error(values: dict[str, object], message: str, grpc: str | None = None) -> Rule:
    """A chunking-settings validation error of PUT x; over gRPC one violation of `chunking_settings`."""
    return put(
        "/_inference/sparse_embedding/x",
        chunking(**values),
        "validation_exception",
        "INVALID_ARGUMENT",
        reason=validation(message),
        field=CS if grpc is None else None,
        grpc=grpc,
    )


def update(path: str, body: Any, reason: str, **more: Any) -> Rule:
    """A refused `_update`: status_exception unless `more` says otherwise."""
    return Rule(
        "PUT",
        path,
        body,
        more.pop("status", 400),
        more.pop("es_type", "status_exception"),
        reason,
        more.pop("error_reason", "INVALID_UPDATE"),
        **more,
    )


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
        caused_by=("illegal_argument_exception", cause),
        grpc_es_type="illegal_argument_exception",
        grpc_reason=cause,
        field="input_type",
    )


NOT_FOUND = "Inference endpoint not found [{}]"
TASK_TYPE_MISMATCH = "Requested task type [text_embedding] does not match the inference endpoint's task type [sparse_embedding]"
UPDATE_TASK_TYPE_MISMATCH = "Task type must match the task type of the existing endpoint"
CANNOT_BE_UPDATED = "Request contained fields which cannot be updated, remove these fields and try again [{}]"
CONFLICT = (
    "Cannot resolve conflicting task_type parameter in the request URL [sparse_embedding] and the request body "
    "[text_embedding]"
)
UNKNOWN_MODEL = "Error parsing request config, model id does not match any models available on this platform. Was [{}]. {}"
NO_ALLOCATIONS = (
    "[service_settings] does not contain one of the required settings [num_allocations, adaptive_allocations]"
)
ZERO_ALLOCATIONS = "[service_settings] Invalid value [0]. [num_allocations] must be a positive integer"
ALLOCATIONS_WITH_ADAPTIVE = "[number_of_allocations] cannot be set if adaptive allocations is enabled"

# "existing" (PUT_BODY, sparse_embedding) is created before each rule.
RULES: list[Rule] = [
    # --- PUT: naming, service and task type ---
    *[
        put(
            f"/_inference/sparse_embedding/{bad}",
            PUT_BODY,
            "action_request_validation_exception",
            "INVALID_INFERENCE_ID",
            reason=invalid_id(bad),
            field="inference_id",
        )
        for bad in ("My-Id", "-abc", "abc-", "_all", ".elser-2-elasticsearch")
    ],
    *[
        put(
            path,
            body,
            "status_exception",
            "UNKNOWN_TASK_TYPE",
            reason="Unknown task_type [bad]",
            grpc=TASK_TYPE_NAME,
        )
        for path, body in (
            ("/_inference/elser_model", {"task_type": "bad", **ELSER_PUT_BODY, "task_settings": {}}),
            ("/_inference/bad/x", PUT_BODY),
        )
    ],
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
        {**PUT_BODY, "task_type": "text_embedding"},
        "status_exception",
        "TASK_TYPE_CONFLICT",
        reason=CONFLICT,
        field="task_type",
    ),
    put(
        "/_inference/x",
        {**PUT_BODY, "task_type": "any"},
        "status_exception",
        "UNKNOWN_TASK_TYPE",
        reason="task_type [any] is not valid type for inference",
        grpc=ANY_TASK_TYPE,
    ),
    put(
        "/_inference/sparse_embedding/x",
        {"service_settings": {}},
        "status_exception",
        "MISSING_SERVICE",
        reason="Inference endpoint configuration is missing the [service] setting",
        field="service",
    ),
    put(
        "/_inference/sparse_embedding/x",
        {"service": "foo", "service_settings": {}},
        "status_exception",
        "UNKNOWN_SERVICE",
        reason="Unknown service [foo]",
        field="service",
    ),
    put(
        "/_inference/sparse_embedding/x",
        {"service": "elasticsearch"},
        "status_exception",
        "MISSING_SERVICE_SETTINGS",
        reason="Missing required field [service_settings]",
        field=SS,
    ),
    *[
        put(
            "/_inference/text_embedding/x",
            body,
            "status_exception",
            "UNSUPPORTED_TASK_TYPE",
            reason=f"The [{body['service']}] service does not support task type [text_embedding]",
            field="task_type",
        )
        for body in (PUT_BODY, ELSER_PUT_BODY)
    ],
    # --- PUT: unknown keys ---
    *[
        put(
            "/_inference/sparse_embedding/x",
            body,
            "status_exception",
            "UNKNOWN_SETTINGS",
            reason="Model configuration contains settings [{foo=bar}] unknown to the [elasticsearch] service",
            grpc=UNKNOWN_FIELD,
        )
        for body in ({**PUT_BODY, "foo": "bar"}, settings(num_allocations=1, num_threads=1, foo="bar"))
    ],
    # --- PUT: service settings ---
    settings_error(
        settings(num_allocations=1),
        (f"{SS}.num_threads", "[service_settings] does not contain the required setting [num_threads]"),
    ),
    settings_error(
        settings(num_allocations=1, num_threads=0),
        (
            f"{SS}.num_threads",
            "[service_settings] Invalid value [0]. [num_threads] must be a positive integer",
        ),
    ),
    # ES collects every settings error: the invalid count then also leaves neither allocation setting.
    settings_error(
        settings(num_allocations=0, num_threads=1),
        (f"{SS}.num_allocations", ZERO_ALLOCATIONS),
        (f"{SS}.num_allocations", NO_ALLOCATIONS),
    ),
    settings_error(settings(num_threads=1), (f"{SS}.num_allocations", NO_ALLOCATIONS)),
    *[
        deployment_error(
            settings(num_allocations=1, num_threads=threads),
            f"{SS}.num_threads",
            "[threads_per_allocation] must be a power of 2 less than or equal to 32",
        )
        for threads in (3, 64)
    ],
    deployment_error(
        settings(num_allocations=1, num_threads=1, adaptive_allocations={"enabled": True}),
        f"{SS}.num_allocations",
        ALLOCATIONS_WITH_ADAPTIVE,
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
        (ADAPTIVE_MIN, "[min_number_of_allocations] must not be larger than [max_number_of_allocations]"),
    ),
    put(
        "/_inference/sparse_embedding/x",
        {"service": "elasticsearch", "service_settings": {"num_allocations": 1, "num_threads": 1}},
        "illegal_argument_exception",
        "MISSING_MODEL_ID",
        reason="Error parsing service settings, model_id must be provided",
        field=f"{SS}.model_id",
    ),
    *[
        put(
            "/_inference/sparse_embedding/x",
            settings(num_allocations=1, num_threads=1, model_id=model_id),
            "illegal_argument_exception",
            "UNSUPPORTED_MODEL",
            reason=UNKNOWN_MODEL.format(model_id, advice),
            field=f"{SS}.model_id",
        )
        for model_id, advice in (
            (".elser_model_1", "You may need to use a platform agnostic model."),
            ("foo", "You may need to load it into the cluster using eland."),
        )
    ],
    settings_error(
        settings(num_threads=1, adaptive_allocations={"enabled": True, "k": 1}),
        (f"{SS}.adaptive_allocations.k", "[adaptive_allocations] does not allow the setting [k]"),
        grpc=UNKNOWN_FIELD,
    ),
    *[
        settings_error(
            settings(num_allocations=1, num_threads=value),
            (
                f"{SS}.num_threads",
                f"field [num_threads] is not of the expected type. The value [{shown}] cannot be converted to a "
                "[Integer]",
            ),
            grpc=JSON_TYPE,
        )
        for value, shown in (("1", "1"), (1.5, "1.5"))
    ],
    settings_error(
        settings(num_allocations=1, num_threads=1, model_id=""),
        (
            f"{SS}.model_id",
            "[service_settings] Invalid value empty string. [model_id] must be a non-empty string",
        ),
    ),
    # -1 is ES's "unset" placeholder, so -2 is the first value that is below zero.
    settings_error(
        settings(num_threads=1, adaptive_allocations={"enabled": True, "min_number_of_allocations": -2}),
        (ADAPTIVE_MIN, "[min_number_of_allocations] must be a non-negative integer or null"),
    ),
    settings_error(
        settings(num_threads=1, adaptive_allocations={"enabled": True, "max_number_of_allocations": 0}),
        (ADAPTIVE_MAX, "[max_number_of_allocations] must be a positive integer or null"),
    ),
    # --- existence, task-type checks, reserved endpoints ---
    put(
        "/_inference/sparse_embedding/existing",
        PUT_BODY,
        "resource_already_exists_exception",
        "ENDPOINT_EXISTS",
        reason="Inference endpoint [existing] already exists",
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
        update(
            path,
            {"service_settings": {"num_allocations": 2}},
            invalid_id(".elser-2-elasticsearch"),
            es_type="action_request_validation_exception",
            error_reason="INVALID_INFERENCE_ID",
            field="inference_id",
        )
        for path in (
            "/_inference/.elser-2-elasticsearch/_update",
            "/_inference/sparse_embedding/.elser-2-elasticsearch/_update",
        )
    ],
    update(
        "/_inference/existing/_update?master_timeout=10",
        {"service_settings": {"num_allocations": 2}},
        "failed to parse setting [master_timeout] with value [10] as a time value: unit is missing or unrecognized",
        es_type="illegal_argument_exception",
        error_reason="BAD_REST_REQUEST",
        grpc=QUERY_PARAMETER,
    ),
    update(
        "/_inference/bad/existing/_update",
        {"service_settings": {"num_allocations": 2}},
        "Unknown task_type [bad]",
        error_reason="UNKNOWN_TASK_TYPE",
        grpc=TASK_TYPE_NAME,
    ),
    # The body's shape is checked before the lookup: a missing endpoint gets the body's error.
    *[
        update(path, {}, "Request body is empty")
        for path in ("/_inference/existing/_update", "/_inference/nope/_update")
    ],
    # ES answers 500 here: the check sits in code that only ever expected a string.
    update(
        "/_inference/existing/_update",
        {"task_type": 5},
        "Failed to parse [task_type] in update request [{task_type=5}]",
        status=500,
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
        CONFLICT,
        error_reason="TASK_TYPE_CONFLICT",
        field="task_type",
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
    *[
        update(
            "/_inference/existing/_update",
            {"service_settings": settings_update},
            es_type="validation_exception",
            **collected((f"{SS}.num_allocations", message)),
        )
        for settings_update, message in (
            ({"num_allocations": 0}, ZERO_ALLOCATIONS),
            ({"num_allocations": 2, "adaptive_allocations": {"enabled": True}}, ALLOCATIONS_WITH_ADAPTIVE),
        )
    ],
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
        validation("Field [input] cannot be an empty array"),
        "EMPTY_INPUT",
        field="input",
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
        validation("Field [input_type] cannot be specified for task type [sparse_embedding]"),
        "INVALID_INPUT",
        field="input_type",
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
        "INVALID_ARGUMENT",
        reason="Can't generate Chunker without ChunkingStrategy provided",
        field=f"{CS}.strategy",
    ),
    put(
        "/_inference/sparse_embedding/x",
        chunking(strategy="x"),
        "illegal_argument_exception",
        "INVALID_ARGUMENT",
        reason="Invalid chunkingStrategy x",
        grpc=TASK_TYPE_NAME,
    ),
    chunking_error(
        {"strategy": "word", "max_chunk_size": 9, "overlap": 1},
        "[chunking_settings] Invalid value [9.0]. [max_chunk_size] must be a greater than or equal to [10.0]",
    ),
    chunking_error(
        {"strategy": "word", "max_chunk_size": 301, "overlap": 1},
        "[chunking_settings] Invalid value [301.0]. [max_chunk_size] must be a less than or equal to [300.0]",
    ),
    chunking_error(
        {"strategy": "word", "max_chunk_size": 10, "overlap": 6},
        "[chunking_settings] Invalid value [6.0]. [overlap] must be a less than or equal to [5.0]",
    ),
    chunking_error(
        {"strategy": "word", "max_chunk_size": 10},
        "[chunking_settings] does not contain the required setting [overlap]",
    ),
    chunking_error(
        {"strategy": "sentence", "max_chunk_size": 19},
        "[chunking_settings] Invalid value [19.0]. [max_chunk_size] must be a greater than or equal to [20.0]",
    ),
    chunking_error(
        {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 2},
        "sentence_overlap[2] must be either 0 or 1",
    ),
    *[
        chunking_error(
            {"strategy": strategy, **extra},
            "[chunking_settings] does not contain the required setting [max_chunk_size]",
        )
        for strategy, extra in (("word", {"overlap": 1}), ("sentence", {}), ("recursive", {}))
    ],
    *[
        chunking_error(
            {"strategy": strategy, "max_chunk_size": 0, **extra},
            "[chunking_settings] Invalid value [0]. [max_chunk_size] must be a positive integer",
        )
        for strategy, extra in (("word", {"overlap": 1}), ("sentence", {}), ("recursive", {}))
    ],
    chunking_error(
        {"strategy": "word", "max_chunk_size": 10, "overlap": 0},
        "[chunking_settings] Invalid value [0]. [overlap] must be a positive integer",
    ),
    # max/2 is integer division: 11 allows at most 5.
    chunking_error(
        {"strategy": "word", "max_chunk_size": 11, "overlap": 6},
        "[chunking_settings] Invalid value [6.0]. [overlap] must be a less than or equal to [5.0]",
    ),
    # An invalid max_chunk_size is the only error: the overlap is then not checked.
    chunking_error(
        {"strategy": "word", "max_chunk_size": 5, "overlap": 3},
        "[chunking_settings] Invalid value [5.0]. [max_chunk_size] must be a greater than or equal to [10.0]",
    ),
    chunking_error(
        {"strategy": "recursive", "max_chunk_size": 20, "separators": ["\n"], "separator_group": "markdown"},
        "Recursive chunking settings can not have both separators and separator_group",
    ),
    *[
        chunking_error(
            {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": value},
            f"field [sentence_overlap] is not of the expected type. The value [{shown}] cannot be converted to a "
            "[Integer]",
            grpc=JSON_TYPE,
        )
        for value, shown in (("1", "1"), (0.5, "0.5"))
    ],
    chunking_error(
        {"strategy": "word", "max_chunk_size": 10, "overlap": 1, "foo": 1},
        "Word based chunking settings can not have the following settings: [foo]",
        grpc=UNKNOWN_FIELD,
    ),
    chunking_error(
        {"strategy": "sentence", "max_chunk_size": 20, "foo": 1, "bar": 2},
        "Sentence based chunking settings can not have the following settings: [foo, bar]",
        grpc=UNKNOWN_FIELD,
    ),
    chunking_error(
        {"strategy": "recursive", "max_chunk_size": 20, "foo": 1},
        "Recursive chunking settings can not have the following settings: [foo]",
        grpc=UNKNOWN_FIELD,
    ),
    chunking_error(
        {"strategy": "recursive", "max_chunk_size": 20, "separators": []},
        "Recursive chunking settings can not have an empty list of separators",
        grpc=EMPTY_LIST,
    ),
]
