"""elser.v1 over a real grpc.aio server: lifecycle, rich errors, inference, deadlines, streams, health."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest
from elser.v1 import endpoint_service_pb2 as es_pb2
from elser.v1 import endpoint_service_pb2_grpc as es_grpc
from elser.v1 import inference_service_pb2 as is_pb2
from elser.v1 import inference_service_pb2_grpc as is_grpc
from elser.v1 import types_pb2
from elser_server.core.deployment import Deployment
from elser_server.core.service import InferenceCore
from elser_server.core.types import Priority
from elser_server.runtime.backends import openvino_installed
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpcdetails import rich
from support import eventually_async

SPARSE = types_pb2.TASK_TYPE_SPARSE_EMBEDDING


def config(**service_settings: object) -> types_pb2.EndpointConfig:
    settings = {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1, **service_settings}
    present = {k: v for k, v in settings.items() if v is not None}
    return types_pb2.EndpointConfig(
        service="elasticsearch", service_settings=types_pb2.ServiceSettings(**present)
    )


async def put(channel: grpc.aio.Channel, inference_id: str = "my-elser") -> types_pb2.Endpoint:
    request = es_pb2.PutEndpointRequest(inference_id=inference_id, task_type=SPARSE, endpoint=config())
    response = await es_grpc.EndpointServiceStub(channel).PutEndpoint(request, timeout=60)
    return response.endpoint


async def test_endpoint_lifecycle(channel: grpc.aio.Channel) -> None:
    stub = es_grpc.EndpointServiceStub(channel)
    created = await put(channel)
    assert created.service == "elasticsearch" and created.task_type == SPARSE
    assert created.service_settings.num_allocations == 1
    assert created.chunking_settings.strategy == types_pb2.CHUNKING_STRATEGY_SENTENCE

    got = (await stub.GetEndpoint(es_pb2.GetEndpointRequest(inference_id="my-elser"))).endpoint
    assert got.inference_id == "my-elser"
    listed = (await stub.ListEndpoints(es_pb2.ListEndpointsRequest())).endpoints
    assert [e.inference_id for e in listed] == [".elser-2-elasticsearch", "my-elser"]
    default = listed[0].service_settings
    assert not default.HasField("num_allocations")
    assert default.adaptive_allocations.max_number_of_allocations == 32

    update = types_pb2.EndpointConfig(service_settings=types_pb2.ServiceSettings(num_allocations=2))
    updated = await stub.UpdateEndpoint(
        es_pb2.UpdateEndpointRequest(inference_id="my-elser", endpoint=update)
    )
    assert updated.endpoint.service_settings.num_allocations == 2

    deleted = await stub.DeleteEndpoint(es_pb2.DeleteEndpointRequest(inference_id="my-elser"))
    assert deleted.acknowledged
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.GetEndpoint(es_pb2.GetEndpointRequest(inference_id="my-elser"))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    assert exc.value.details() == "Inference endpoint not found [my-elser]"
    resource = rich(exc.value)["ResourceInfo"]
    assert isinstance(resource, error_details_pb2.ResourceInfo)
    assert resource.resource_name == "my-elser"


@pytest.mark.parametrize(
    ("inference_id", "endpoint", "code", "reason", "es_type"),
    [
        (
            "Bad_Id",
            config(),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Validation Failed: 1: Invalid inference_id; 'Bad_Id' can contain lowercase alphanumeric (a-z and "
            "0-9), hyphens or underscores; must start and end with alphanumeric;",
            "action_request_validation_exception",
        ),
        (
            "no-service",
            types_pb2.EndpointConfig(service_settings=config().service_settings),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Inference endpoint configuration is missing the [service] setting",
            "status_exception",
        ),
        (
            "no-threads",
            config(num_threads=None),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Validation Failed: 1: [service_settings] does not contain the required setting [num_threads];",
            "validation_exception",
        ),
        (
            "zero-allocations",
            config(num_allocations=0),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Validation Failed: 1: [service_settings] Invalid value [0]. [num_allocations] must be a positive "
            "integer;2: [service_settings] does not contain one of the required settings [num_allocations, "
            "adaptive_allocations];",
            "validation_exception",
        ),
    ],
)
async def test_validation_errors_carry_es_reason_and_details(
    channel: grpc.aio.Channel,
    inference_id: str,
    endpoint: types_pb2.EndpointConfig,
    code: grpc.StatusCode,
    reason: str,
    es_type: str,
) -> None:
    stub = es_grpc.EndpointServiceStub(channel)
    request = es_pb2.PutEndpointRequest(inference_id=inference_id, task_type=SPARSE, endpoint=endpoint)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.PutEndpoint(request)
    assert exc.value.code() == code
    assert exc.value.details() == reason
    info = rich(exc.value)["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.domain == "elser.v1" and info.reason
    assert info.metadata["es_type"] == es_type and info.metadata["http_status"] == "400"


async def test_already_exists_and_task_type_mismatch(channel: grpc.aio.Channel) -> None:
    stub = es_grpc.EndpointServiceStub(channel)
    await put(channel)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await put(channel)
    assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert exc.value.details() == "Inference endpoint [my-elser] already exists"
    request = es_pb2.GetEndpointRequest(inference_id="my-elser", task_type=types_pb2.TASK_TYPE_TEXT_EMBEDDING)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.GetEndpoint(request)
    assert exc.value.details() == (
        "Requested task type [text_embedding] does not match the inference endpoint's task type [sparse_embedding]"
    )


async def test_infer_in_order_with_tokens_and_pruning(channel: grpc.aio.Channel) -> None:
    await put(channel)
    stub = is_grpc.InferenceServiceStub(channel)
    texts = ["the quick brown fox", "hello", "a much longer text about many things " * 5]

    def request(**options: object) -> is_pb2.InferRequest:
        return is_pb2.InferRequest(
            inference_id="my-elser", input=texts, options=types_pb2.InferenceOptions(**options)
        )

    full = (await stub.Infer(request(return_tokens=True), timeout=30)).embeddings
    assert len(full) == 3
    for text, embedding in zip(texts, full, strict=True):
        single = (await stub.Infer(is_pb2.InferRequest(inference_id="my-elser", input=[text]))).embeddings[0]
        assert list(single.token_ids) == list(embedding.token_ids)  # input order is kept
        weights = list(embedding.weights)
        assert weights == sorted(weights, reverse=True) and len(embedding.tokens) == len(weights)
    assert not (await stub.Infer(request())).embeddings[0].tokens  # tokens only on request

    top = (await stub.Infer(request(top_k=3))).embeddings[2]
    assert list(top.token_ids) == list(full[2].token_ids)[:3]
    threshold = full[2].weights[len(full[2].weights) // 2]
    pruned = (await stub.Infer(request(min_weight=threshold))).embeddings[2]
    assert pruned.weights and min(pruned.weights) >= threshold


async def test_empty_input_is_invalid(channel: grpc.aio.Channel) -> None:
    await put(channel)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await is_grpc.InferenceServiceStub(channel).Infer(is_pb2.InferRequest(inference_id="my-elser"))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details() == "Validation Failed: 1: Field [input] cannot be an empty array;"


async def test_deadline_expiring_while_queued(channel: grpc.aio.Channel, core: InferenceCore) -> None:
    await put(channel)
    stub = is_grpc.InferenceServiceStub(channel)
    big = is_pb2.InferRequest(inference_id="my-elser", input=["long text " * 200] * 64)

    async def occupy() -> is_pb2.InferResponse:
        return await stub.Infer(big, timeout=60)

    busy = [asyncio.create_task(occupy()) for _ in range(8)]
    await eventually_async(
        lambda: core.deployment_stats("my-elser").queued >= 256, 30, "the long texts tokenized and queued"
    )
    # In the bulk lane behind 512 long texts: it cannot be reached before its deadline.
    late = is_pb2.InferRequest(
        inference_id="my-elser",
        input=["queued"],
        options=types_pb2.InferenceOptions(priority=types_pb2.PRIORITY_BULK),
    )
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Infer(late, timeout=0.02)
    assert exc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert all(len(r.embeddings) == 64 for r in await asyncio.gather(*busy))  # the server is unharmed
    stats = core.deployment_stats("my-elser").stats
    assert stats.inference_count == 8 * 64 + 1  # the busy texts and PUT's validation call: never the late one


async def test_infer_stream_keeps_order_and_survives_a_bad_item(channel: grpc.aio.Channel) -> None:
    await put(channel)
    stub = is_grpc.InferenceServiceStub(channel)

    async def requests() -> object:
        for i in range(20):
            inputs = [] if i == 7 else [f"text number {i}"] * (1 + i % 3)
            yield is_pb2.InferStreamRequest(correlation_id=f"c{i}", inference_id="my-elser", input=inputs)

    responses = [r async for r in stub.InferStream(requests(), timeout=60)]
    assert [r.correlation_id for r in responses] == [f"c{i}" for i in range(20)]
    assert responses[7].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert not responses[7].embeddings
    assert all(len(r.embeddings) == 1 + i % 3 for i, r in enumerate(responses) if i != 7)


async def test_infer_chunked_streams_chunks_then_done(channel: grpc.aio.Channel) -> None:
    await put(channel)
    stub = is_grpc.InferenceServiceStub(channel)
    chunking = types_pb2.ChunkingSettings(
        strategy=types_pb2.CHUNKING_STRATEGY_WORD, max_chunk_size=10, overlap=2
    )
    text = "héllo wörld " * 30
    request = is_pb2.InferChunkedRequest(
        inference_id="my-elser", input=[text, "short"], chunking_settings=chunking
    )
    responses = [r async for r in stub.InferChunked(request, timeout=60)]
    first = [r for r in responses if r.input_index == 0]
    chunks = [r.chunk for r in first if r.HasField("chunk")]
    assert len(chunks) > 1 and first[-1].done.chunk_count == len(chunks)
    assert chunks[0].start_code_point == 0 and chunks[-1].end_code_point <= len(text)
    assert responses[-1].input_index == 1 and responses[-1].HasField("done")


async def test_health_per_service(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)

    async def status(service: str) -> int:
        return (await health.Check(health_pb2.HealthCheckRequest(service=service))).status

    assert await status("") == health_pb2.HealthCheckResponse.SERVING
    assert await status("elser.v1.EndpointService") == health_pb2.HealthCheckResponse.SERVING
    # Nothing is deployed yet: inference is not ready.
    assert await status("elser.v1.InferenceService") == health_pb2.HealthCheckResponse.NOT_SERVING
    await put(channel)

    async def serving() -> bool:
        return await status("elser.v1.InferenceService") == health_pb2.HealthCheckResponse.SERVING

    await eventually_async(serving, 30, "InferenceService to be SERVING")


async def test_watch_deployment_and_stats(channel: grpc.aio.Channel) -> None:
    await put(channel)
    stub = es_grpc.EndpointServiceStub(channel)
    call = stub.WatchDeployment(es_pb2.WatchDeploymentRequest(inference_id="my-elser"))
    first = await call.read()
    assert first.event.deployment_id == "my-elser"
    assert first.event.state == types_pb2.DEPLOYMENT_STATE_FULLY_ALLOCATED  # 1 of 1 allocation
    call.cancel()
    stats = (await stub.GetDeploymentStats(es_pb2.GetDeploymentStatsRequest(inference_id="my-elser"))).stats
    assert stats.model_id == ".elser_model_2" and stats.threads_per_allocation == 1
    # PUT's validation inference ran once: counters, latency percentile and a wall-clock last access
    assert stats.inference_count == 1 and stats.peak_throughput_per_minute == 1
    assert stats.p99_inference_time_ms > 0
    assert abs(stats.last_access.ToSeconds() - time.time()) < 600
    # How the model runs: the portable id stays exact fp32, on OpenVINO where it is installed.
    backend = "OPENVINO" if openvino_installed() else "ONNXRUNTIME"
    assert stats.runtime == types_pb2.RuntimeLayout(
        backend=types_pb2.RuntimeBackend.Value(f"RUNTIME_BACKEND_{backend}"),
        precision=types_pb2.PRECISION_FP32,
        reason="portable model id: exact fp32",
    )


async def test_shutdown_ends_watches_and_bulk_streams(core: InferenceCore, channel: grpc.aio.Channel) -> None:
    await put(channel)
    endpoints = es_grpc.EndpointServiceStub(channel)
    inference = is_grpc.InferenceServiceStub(channel)
    watch = endpoints.WatchDeployment(es_pb2.WatchDeploymentRequest(inference_id="my-elser"))
    assert (await watch.read()).event.deployment_id == "my-elser"
    more = asyncio.Event()  # the bulk client has more to send, but only once the test says so

    async def requests() -> object:
        for i in range(3):
            yield is_pb2.InferStreamRequest(correlation_id=f"c{i}", inference_id="my-elser", input=["bulk"])
        await more.wait()
        yield is_pb2.InferStreamRequest(correlation_id="late", inference_id="my-elser", input=["bulk"])

    bulk = inference.InferStream(requests(), timeout=60)
    answered = [(await bulk.read()).correlation_id for _ in range(3)]
    assert answered == ["c0", "c1", "c2"]

    core.end_streams()
    for call in (watch, bulk):
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await call.read()
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
        info = rich(exc.value)["ErrorInfo"]
        assert isinstance(info, error_details_pb2.ErrorInfo) and info.reason == "SHUTTING_DOWN"
    more.set()
    # New streams are refused at once; unary calls still run until the listener stops.
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await endpoints.WatchDeployment(es_pb2.WatchDeploymentRequest(inference_id="my-elser")).read()
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    answer = await inference.Infer(is_pb2.InferRequest(inference_id="my-elser", input=["still served"]))
    assert len(answer.embeddings) == 1


async def test_infer_stream_messages_are_bulk_unless_asked(
    channel: grpc.aio.Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put(channel)
    lanes: list[Priority] = []
    embed = Deployment.embed

    async def recording(self: Deployment, encodings: Any, *, priority: Priority, **rest: Any) -> Any:
        lanes.append(priority)
        return await embed(self, encodings, priority=priority, **rest)

    monkeypatch.setattr(Deployment, "embed", recording)

    async def requests() -> object:
        yield is_pb2.InferStreamRequest(correlation_id="auto", inference_id="my-elser", input=["small"])
        interactive = types_pb2.InferenceOptions(priority=types_pb2.PRIORITY_INTERACTIVE)
        yield is_pb2.InferStreamRequest(
            correlation_id="asked", inference_id="my-elser", input=["small"], options=interactive
        )

    stub = is_grpc.InferenceServiceStub(channel)
    responses = [r async for r in stub.InferStream(requests(), timeout=60)]
    assert [r.correlation_id for r in responses] == ["auto", "asked"]
    assert lanes == [Priority.BULK, Priority.INTERACTIVE]
