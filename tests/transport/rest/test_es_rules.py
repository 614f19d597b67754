"""es-compat §2 and §3.2 over HTTP, table-driven: the core raises each error with ES's type, reason and status;
the shim must deliver them intact in ES's envelope."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from es_bodies import ELSER_BODY, ES_BODY

MODEL = ".elser_model_2"


def settings(**values: object) -> dict[str, object]:
    return {"service": "elasticsearch", "service_settings": {"model_id": MODEL, **values}}


def chunking(**values: object) -> dict[str, object]:
    return {**ES_BODY, "chunking_settings": values}


def validation(message: str) -> str:
    return f"Validation Failed: 1: {message};"


INVALID_ID = (
    "Validation Failed: 1: Invalid inference_id; '{}' can contain lowercase alphanumeric (a-z and 0-9), "
    "hyphens or underscores; must start and end with alphanumeric;"
)

# (method, path, body, status, type, reason); "existing" is created before each case.
CASES: list[tuple[str, str, Any, int, str, str]] = [
    # §2.2 naming, §2.3 service and task type
    *[
        (
            "PUT",
            f"/_inference/sparse_embedding/{bad}",
            ES_BODY,
            400,
            "action_request_validation_exception",
            INVALID_ID.format(bad),
        )
        for bad in ("My-Id", "-abc", "abc-", "_all", ".elser-2-elasticsearch")
    ],
    (
        "PUT",
        "/_inference/elser_model",
        {
            "task_type": "bad",
            "service": "elser",
            "service_settings": {"num_allocations": 1, "num_threads": 1},
            "task_settings": {},
        },
        400,
        "status_exception",
        "Unknown task_type [bad]",
    ),
    ("PUT", "/_inference/bad/x", ES_BODY, 400, "status_exception", "Unknown task_type [bad]"),
    ("POST", "/_inference/bad/existing", {"input": "x"}, 400, "status_exception", "Unknown task_type [bad]"),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        {**ES_BODY, "task_type": "text_embedding"},
        400,
        "status_exception",
        "Cannot resolve conflicting task_type parameter in the request URL [sparse_embedding] and the request body "
        "[text_embedding]",
    ),
    (
        "PUT",
        "/_inference/x",
        {**ES_BODY, "task_type": "any"},
        400,
        "status_exception",
        "task_type [any] is not valid type for inference",
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        {"service_settings": {}},
        400,
        "status_exception",
        "Inference endpoint configuration is missing the [service] setting",
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        {"service": "foo", "service_settings": {}},
        400,
        "status_exception",
        "Unknown service [foo]",
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        {"service": "elasticsearch"},
        400,
        "status_exception",
        "Missing required field [service_settings]",
    ),
    (
        "PUT",
        "/_inference/text_embedding/x",
        ES_BODY,
        400,
        "status_exception",
        "The [elasticsearch] service does not support task type [text_embedding]",
    ),
    (
        "PUT",
        "/_inference/text_embedding/x",
        ELSER_BODY,
        400,
        "status_exception",
        "The [elser] service does not support task type [text_embedding]",
    ),
    # §2.4 unknown keys
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        {**ES_BODY, "foo": "bar"},
        400,
        "status_exception",
        "Model configuration contains settings [{foo=bar}] unknown to the [elasticsearch] service",
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(num_allocations=1, num_threads=1, foo="bar"),
        400,
        "status_exception",
        "Model configuration contains settings [{foo=bar}] unknown to the [elasticsearch] service",
    ),
    # §2.5 service settings
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(num_allocations=1),
        400,
        "validation_exception",
        validation("[service_settings] does not contain the required setting [num_threads]"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(num_allocations=1, num_threads=0),
        400,
        "validation_exception",
        validation("[service_settings] Invalid value [0]. [num_threads] must be a positive integer"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(num_allocations=0, num_threads=1),
        400,
        "validation_exception",
        # ES collects every settings error: the invalid count then also leaves neither allocation setting.
        "Validation Failed: 1: [service_settings] Invalid value [0]. [num_allocations] must be a positive integer;"
        "2: [service_settings] does not contain one of the required settings [num_allocations, adaptive_allocations];",
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(num_threads=1),
        400,
        "validation_exception",
        validation(
            "[service_settings] does not contain one of the required settings "
            "[num_allocations, adaptive_allocations]"
        ),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(num_allocations=1, num_threads=3),
        400,
        "action_request_validation_exception",
        validation("[threads_per_allocation] must be a power of 2 less than or equal to 32"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(num_allocations=1, num_threads=64),
        400,
        "action_request_validation_exception",
        validation("[threads_per_allocation] must be a power of 2 less than or equal to 32"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(num_allocations=1, num_threads=1, adaptive_allocations={"enabled": True}),
        400,
        "action_request_validation_exception",
        validation("[number_of_allocations] cannot be set if adaptive allocations is enabled"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(
            num_threads=1,
            adaptive_allocations={
                "enabled": True,
                "min_number_of_allocations": 5,
                "max_number_of_allocations": 2,
            },
        ),
        400,
        "validation_exception",
        validation("[min_number_of_allocations] must not be larger than [max_number_of_allocations]"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        {"service": "elasticsearch", "service_settings": {"num_allocations": 1, "num_threads": 1}},
        400,
        "illegal_argument_exception",
        "Error parsing service settings, model_id must be provided",
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(num_allocations=1, num_threads=1)
        | {"service_settings": {"model_id": ".elser_model_1", "num_allocations": 1, "num_threads": 1}},
        400,
        "illegal_argument_exception",
        "Error parsing request config, model id does not match any models available on this platform. "
        "Was [.elser_model_1]. You may need to use a platform agnostic model.",
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(num_threads=1, adaptive_allocations={"enabled": True, "k": 1}),
        400,
        "validation_exception",
        validation("[adaptive_allocations] does not allow the setting [k]"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(num_allocations=1, num_threads="1"),
        400,
        "validation_exception",
        validation(
            "field [num_threads] is not of the expected type. The value [1] cannot be converted to a [Integer]"
        ),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(num_allocations=1, num_threads=1.5),
        400,
        "validation_exception",
        validation(
            "field [num_threads] is not of the expected type. The value [1.5] cannot be converted to a [Integer]"
        ),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(num_allocations=1, num_threads=1, model_id=""),
        400,
        "validation_exception",
        validation("[service_settings] Invalid value empty string. [model_id] must be a non-empty string"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        # -1 is ES's "unset" placeholder (§1.6), so -2 is the first value that is below zero.
        settings(num_threads=1, adaptive_allocations={"enabled": True, "min_number_of_allocations": -2}),
        400,
        "validation_exception",
        validation("[min_number_of_allocations] must be a non-negative integer or null"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(num_threads=1, adaptive_allocations={"enabled": True, "max_number_of_allocations": 0}),
        400,
        "validation_exception",
        validation("[max_number_of_allocations] must be a positive integer or null"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        settings(num_allocations=1, num_threads=1, model_id="foo"),
        400,
        "illegal_argument_exception",
        "Error parsing request config, model id does not match any models available on this platform. "
        "Was [foo]. You may need to load it into the cluster using eland.",
    ),
    # §2.7 existence, task-type checks, reserved endpoints
    (
        "PUT",
        "/_inference/sparse_embedding/existing",
        ES_BODY,
        400,
        "resource_already_exists_exception",
        "Inference endpoint [existing] already exists",
    ),
    (
        "GET",
        "/_inference/inference_to_get",
        None,
        404,
        "resource_not_found_exception",
        "Inference endpoint not found [inference_to_get]",
    ),
    (
        "GET",
        "/_inference/sparse_embedding",
        None,
        404,
        "resource_not_found_exception",
        "Inference endpoint not found [sparse_embedding]",
    ),
    (
        "DELETE",
        "/_inference/nope",
        None,
        404,
        "resource_not_found_exception",
        "Inference endpoint not found [nope]",
    ),
    (
        "POST",
        "/_inference/nope",
        {"input": "x"},
        404,
        "resource_not_found_exception",
        "Inference endpoint not found [nope]",
    ),
    (
        "GET",
        "/_inference/text_embedding/existing",
        None,
        400,
        "status_exception",
        "Requested task type [text_embedding] does not match the inference endpoint's task type [sparse_embedding]",
    ),
    (
        "DELETE",
        "/_inference/text_embedding/existing",
        None,
        400,
        "status_exception",
        "Requested task type [text_embedding] does not match the inference endpoint's task type [sparse_embedding]",
    ),
    (
        "POST",
        "/_inference/text_embedding/existing",
        {"input": "x"},
        400,
        "status_exception",
        "Incompatible task_type, the requested type [text_embedding] does not match the model type [sparse_embedding]",
    ),
    (
        "PUT",
        "/_inference/text_embedding/existing/_update",
        {"service_settings": {"num_allocations": 2}},
        400,
        "status_exception",
        "Task type must match the task type of the existing endpoint",
    ),
    (
        "DELETE",
        "/_inference/.elser-2-elasticsearch",
        None,
        400,
        "status_exception",
        "[.elser-2-elasticsearch] is a reserved inference endpoint. Cannot delete a reserved inference endpoint.",
    ),
    # §1.6 _update
    (
        "PUT",
        "/_inference/existing/_update",
        {"service_settings": {"num_allocations": 2, "adaptive_allocations": {"enabled": True}}},
        400,
        "validation_exception",
        validation("[number_of_allocations] cannot be set if adaptive allocations is enabled"),
    ),
    (
        # es-compat §1.6 gives the 404 and its type; the text is unverified there, ours is §2.7's.
        "PUT",
        "/_inference/nope/_update",
        {"service_settings": {"num_allocations": 2}},
        404,
        "resource_not_found_exception",
        "Inference endpoint not found [nope]",
    ),
    # §1.5 inference request
    (
        "POST",
        "/_inference/existing",
        {"input": []},
        400,
        "action_request_validation_exception",
        validation("Field [input] cannot be an empty array"),
    ),
    (
        "POST",
        "/_inference/existing",
        {},
        400,
        "action_request_validation_exception",
        validation("Field [input] cannot be null"),
    ),
    (
        "POST",
        "/_inference/sparse_embedding/existing",
        {"input": "x", "input_type": "search"},
        400,
        "action_request_validation_exception",
        validation("Field [input_type] cannot be specified for task type [sparse_embedding]"),
    ),
    (
        "POST",
        "/_inference/sparse_embedding/existing",
        {"input": "x", "return_documents": True, "top_n": 1},
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: Field [return_documents] cannot be specified for task type [sparse_embedding];"
        "2: Field [top_n] cannot be specified for task type [sparse_embedding];",
    ),
    (
        "POST",
        "/_inference/existing",
        {"input": "x", "foo": 1},
        400,
        "x_content_parse_exception",
        "[1:16] [cluster:internal/xpack/inference] unknown field [foo]",
    ),
    # §3.2 chunking settings
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(max_chunk_size=20),
        400,
        "illegal_argument_exception",
        "Can't generate Chunker without ChunkingStrategy provided",
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(strategy="word", max_chunk_size=9, overlap=1),
        400,
        "validation_exception",
        validation(
            "[chunking_settings] Invalid value [9.0]. [max_chunk_size] must be a greater than or equal to "
            "[10.0]"
        ),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(strategy="word", max_chunk_size=301, overlap=1),
        400,
        "validation_exception",
        validation(
            "[chunking_settings] Invalid value [301.0]. [max_chunk_size] must be a less than or equal to "
            "[300.0]"
        ),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(strategy="word", max_chunk_size=10, overlap=6),
        400,
        "validation_exception",
        validation(
            "[chunking_settings] Invalid value [6.0]. [overlap] must be a less than or equal to [5.0]"
        ),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(strategy="word", max_chunk_size=10),
        400,
        "validation_exception",
        validation("[chunking_settings] does not contain the required setting [overlap]"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(strategy="sentence", max_chunk_size=19),
        400,
        "validation_exception",
        validation(
            "[chunking_settings] Invalid value [19.0]. [max_chunk_size] must be a greater than or equal to "
            "[20.0]"
        ),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(strategy="sentence", max_chunk_size=20, sentence_overlap=2),
        400,
        "validation_exception",
        validation("sentence_overlap[2] must be either 0 or 1"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(strategy="word", max_chunk_size=10, overlap=1, foo=1),
        400,
        "validation_exception",
        validation("Word based chunking settings can not have the following settings: [foo]"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(strategy="x"),
        400,
        "illegal_argument_exception",
        "Invalid chunkingStrategy x",
    ),
    *[
        (
            "PUT",
            "/_inference/sparse_embedding/x",
            chunking(strategy=strategy, **extra),
            400,
            "validation_exception",
            validation("[chunking_settings] does not contain the required setting [max_chunk_size]"),
        )
        for strategy, extra in (("word", {"overlap": 1}), ("sentence", {}), ("recursive", {}))
    ],
    *[
        (
            "PUT",
            "/_inference/sparse_embedding/x",
            chunking(strategy=strategy, max_chunk_size=0, **extra),
            400,
            "validation_exception",
            validation("[chunking_settings] Invalid value [0]. [max_chunk_size] must be a positive integer"),
        )
        for strategy, extra in (("word", {"overlap": 1}), ("sentence", {}), ("recursive", {}))
    ],
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(strategy="word", max_chunk_size=10, overlap=0),
        400,
        "validation_exception",
        validation("[chunking_settings] Invalid value [0]. [overlap] must be a positive integer"),
    ),
    (
        # max/2 is integer division: 11 allows at most 5.
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(strategy="word", max_chunk_size=11, overlap=6),
        400,
        "validation_exception",
        validation(
            "[chunking_settings] Invalid value [6.0]. [overlap] must be a less than or equal to [5.0]"
        ),
    ),
    (
        # An invalid max_chunk_size is the only error: the overlap is then not checked.
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(strategy="word", max_chunk_size=5, overlap=3),
        400,
        "validation_exception",
        validation(
            "[chunking_settings] Invalid value [5.0]. [max_chunk_size] must be a greater than or equal to "
            "[10.0]"
        ),
    ),
    *[
        (
            "PUT",
            "/_inference/sparse_embedding/x",
            chunking(strategy="sentence", max_chunk_size=20, sentence_overlap=value),
            400,
            "validation_exception",
            validation(
                f"field [sentence_overlap] is not of the expected type. The value [{shown}] cannot be converted "
                "to a [Integer]"
            ),
        )
        for value, shown in (("1", "1"), (0.5, "0.5"))
    ],
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(strategy="sentence", max_chunk_size=20, foo=1, bar=2),
        400,
        "validation_exception",
        validation("Sentence based chunking settings can not have the following settings: [foo, bar]"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(strategy="recursive", max_chunk_size=20, foo=1),
        400,
        "validation_exception",
        validation("Recursive chunking settings can not have the following settings: [foo]"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(strategy="recursive", max_chunk_size=20, separators=["\n"], separator_group="markdown"),
        400,
        "validation_exception",
        validation("Recursive chunking settings can not have both separators and separator_group"),
    ),
    (
        "PUT",
        "/_inference/sparse_embedding/x",
        chunking(strategy="recursive", max_chunk_size=20, separators=[]),
        400,
        "validation_exception",
        validation("Recursive chunking settings can not have an empty list of separators"),
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "es_type", "reason"), CASES)
async def test_rule(
    http: aiohttp.ClientSession, method: str, path: str, body: Any, status: int, es_type: str, reason: str
) -> None:
    async with http.put("/_inference/sparse_embedding/existing", json=ES_BODY) as created:
        assert created.status == 200
    kwargs = {"json": body} if body is not None else {}
    async with http.request(method, path, **kwargs) as response:
        payload = await response.json()
        assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    cause = {"type": es_type, "reason": reason}
    assert payload == {"error": {"root_cause": [cause], **cause}, "status": status}
    assert response.status == status


@pytest.mark.parametrize("inference_id", ["a", "a.b"])
async def test_valid_id(http: aiohttp.ClientSession, inference_id: str) -> None:
    """§2.2: one character is enough, and dots are allowed inside an id."""
    async with http.put(f"/_inference/sparse_embedding/{inference_id}", json=ES_BODY) as response:
        body = await response.json()
    assert response.status == 200
    assert body["inference_id"] == inference_id
