"""Conversions and the error mapping, without a server."""

from __future__ import annotations

import numpy as np
from elser.v1 import types_pb2
from elser_server.core.chunking.settings import DEFAULT_CHUNKING
from elser_server.core.errors import ElserError, endpoint_not_found, invalid, queue_full
from elser_server.core.types import (
    AdaptiveAllocations,
    Endpoint,
    Priority,
    ServiceSettings,
    SparseEmbedding,
    TaskType,
)
from elser_server.transport.grpc import convert
from elser_server.transport.grpc.errors import rpc_status_of
from google.rpc import code_pb2, error_details_pb2
from grpcdetails import details_of


def test_put_body_has_only_present_fields() -> None:
    config = types_pb2.EndpointConfig(
        service="elser",
        service_settings=types_pb2.ServiceSettings(
            num_threads=0, adaptive_allocations=types_pb2.AdaptiveAllocations(enabled=False)
        ),
        chunking_settings=types_pb2.ChunkingSettings(
            strategy=types_pb2.CHUNKING_STRATEGY_WORD, max_chunk_size=100, overlap=0
        ),
    )
    assert convert.endpoint_body(config) == {
        "service": "elser",
        "service_settings": {"num_threads": 0, "adaptive_allocations": {"enabled": False}},
        "chunking_settings": {"strategy": "word", "max_chunk_size": 100, "overlap": 0},
    }
    assert convert.endpoint_body(types_pb2.EndpointConfig()) == {}
    # An empty chunking message is ES's `{}` (= the defaults), not an absent key.
    empty_chunking = types_pb2.EndpointConfig(chunking_settings=types_pb2.ChunkingSettings())
    assert convert.endpoint_body(empty_chunking) == {"chunking_settings": {}}


def test_task_types() -> None:
    assert convert.task_type_arg(types_pb2.TASK_TYPE_UNSPECIFIED) is None
    assert convert.task_type_arg(types_pb2.TASK_TYPE_CHAT_COMPLETION) == "chat_completion"
    assert convert.task_type_proto("sparse_embedding") == types_pb2.TASK_TYPE_SPARSE_EMBEDDING
    assert convert.task_type_proto("any") == types_pb2.TASK_TYPE_UNSPECIFIED


def test_endpoint_proto_keeps_presence() -> None:
    endpoint = Endpoint(
        "e",
        TaskType.SPARSE_EMBEDDING,
        ServiceSettings(".elser_model_2", 1, adaptive_allocations=AdaptiveAllocations(True, 0, 4)),
        DEFAULT_CHUNKING,
    )
    msg = convert.endpoint_proto(endpoint)
    assert not msg.service_settings.HasField("num_allocations")
    assert msg.service_settings.adaptive_allocations.max_number_of_allocations == 4
    assert msg.chunking_settings.strategy == types_pb2.CHUNKING_STRATEGY_SENTENCE
    assert msg.chunking_settings.sentence_overlap == 1
    assert not msg.chunking_settings.HasField("overlap")


def test_options_and_embedding() -> None:
    options = convert.infer_options(
        types_pb2.InferenceOptions(top_k=5, return_tokens=True, priority=types_pb2.PRIORITY_BULK)
    )
    assert (options.top_k, options.min_weight, options.return_tokens, options.priority) == (
        5,
        None,
        True,
        Priority.BULK,
    )
    embedding = SparseEmbedding(
        np.array([7, 3], dtype=np.uint32), np.array([2.5, 0.5], dtype=np.float32), False, 4, ("a", "b")
    )
    msg = convert.embedding_proto(embedding)
    assert (
        list(msg.token_ids) == [7, 3] and list(msg.weights) == [2.5, 0.5] and list(msg.tokens) == ["a", "b"]
    )


def _details(error: BaseException) -> dict[str, object]:
    return details_of(rpc_status_of(error))


def test_validation_error_has_field_violations_and_es_metadata() -> None:
    error = invalid("bad threads", es_type="validation_exception", field="service_settings.num_threads")
    status = rpc_status_of(error)
    assert (status.code, status.message) == (code_pb2.INVALID_ARGUMENT, "bad threads")
    details = _details(error)
    info = details["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.domain == "elser.v1"
    assert dict(info.metadata) == {"es_type": "validation_exception", "http_status": "400"}
    bad = details["BadRequest"]
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert bad.field_violations[0].field == "service_settings.num_threads"


def test_not_found_and_queue_full() -> None:
    resource = _details(endpoint_not_found("x"))["ResourceInfo"]
    assert isinstance(resource, error_details_pb2.ResourceInfo)
    assert (resource.resource_type, resource.resource_name) == ("elser.v1.Endpoint", "x")
    full: ElserError = queue_full(0.25)
    assert rpc_status_of(full).code == code_pb2.RESOURCE_EXHAUSTED
    retry = _details(full)["RetryInfo"]
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert retry.retry_delay.ToMilliseconds() == 250


def test_unexpected_errors_do_not_leak() -> None:
    status = rpc_status_of(RuntimeError("secret path /etc/x"))
    assert status.code == code_pb2.INTERNAL
    assert "secret" not in status.message
