"""Blank input on `InferChunked`, per strategy, with the request's chunking settings and with an endpoint's
own: one chunk, the whole input, embedded as `Infer` embeds that text (for "" the model sees only its two
special tokens, as ES sends the empty chunk to the model like any input)."""

from __future__ import annotations

import grpc
import pytest
from elser.v1 import endpoint_service_pb2 as es_pb2
from elser.v1 import endpoint_service_pb2_grpc as es_grpc
from elser.v1 import inference_service_pb2 as is_pb2
from elser.v1 import inference_service_pb2_grpc as is_grpc
from elser.v1 import types_pb2
from google.protobuf import json_format
from support import BLANK_CHUNKING, BLANK_TEXTS


def chunking_proto(settings: dict[str, object]) -> types_pb2.ChunkingSettings:
    message = {**settings, "strategy": f"CHUNKING_STRATEGY_{str(settings['strategy']).upper()}"}
    return json_format.ParseDict(message, types_pb2.ChunkingSettings())


async def put(channel: grpc.aio.Channel, inference_id: str, settings: dict[str, object] | None) -> None:
    endpoint = types_pb2.EndpointConfig(
        service="elasticsearch",
        service_settings=types_pb2.ServiceSettings(
            model_id=".elser_model_2", num_allocations=1, num_threads=1
        ),
    )
    if settings is not None:
        endpoint.chunking_settings.CopyFrom(chunking_proto(settings))
    request = es_pb2.PutEndpointRequest(
        inference_id=inference_id, task_type=types_pb2.TASK_TYPE_SPARSE_EMBEDDING, endpoint=endpoint
    )
    await es_grpc.EndpointServiceStub(channel).PutEndpoint(request, timeout=60)


async def check(channel: grpc.aio.Channel, request: is_pb2.InferChunkedRequest) -> None:
    stub = is_grpc.InferenceServiceStub(channel)
    infer = is_pb2.InferRequest(inference_id=request.inference_id, input=BLANK_TEXTS)
    expected = (await stub.Infer(infer, timeout=60)).embeddings
    responses = [r async for r in stub.InferChunked(request, timeout=60)]
    # per input: its one chunk, then its InputDone
    assert [(r.input_index, r.WhichOneof("result")) for r in responses] == [
        (i, kind) for i in range(len(BLANK_TEXTS)) for kind in ("chunk", "done")
    ]
    for i, text in enumerate(BLANK_TEXTS):
        chunk, done = responses[2 * i].chunk, responses[2 * i + 1].done
        assert done.chunk_count == 1 and not done.HasField("error")
        n = len(text)  # all BMP: UTF-16 units and code points agree
        assert (chunk.chunk_index, chunk.start_utf16, chunk.end_utf16) == (0, 0, n)
        assert (chunk.start_code_point, chunk.end_code_point) == (0, n)
        got, want = chunk.embedding, expected[i]
        assert got.num_tokens == want.num_tokens == 2  # [CLS] [SEP]
        assert not got.is_truncated and not want.is_truncated
        assert list(got.token_ids) == list(want.token_ids)
        assert list(got.weights) == pytest.approx(list(want.weights), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("settings", BLANK_CHUNKING.values(), ids=BLANK_CHUNKING.keys())
async def test_blank_input_with_request_chunking_settings(
    channel: grpc.aio.Channel, settings: dict[str, object]
) -> None:
    await put(channel, "e", None)
    request = is_pb2.InferChunkedRequest(
        inference_id="e", input=BLANK_TEXTS, chunking_settings=chunking_proto(settings)
    )
    await check(channel, request)


@pytest.mark.parametrize("settings", BLANK_CHUNKING.values(), ids=BLANK_CHUNKING.keys())
async def test_blank_input_with_the_endpoints_chunking_settings(
    channel: grpc.aio.Channel, settings: dict[str, object]
) -> None:
    await put(channel, "stored", settings)
    await check(channel, is_pb2.InferChunkedRequest(inference_id="stored", input=BLANK_TEXTS))
