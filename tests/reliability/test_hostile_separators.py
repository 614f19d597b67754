"""A catastrophically backtracking `chunking_settings.separators` regex (recursive chunking), sent with a request,
stored on an endpoint or sent over InferChunked, on a real server process: health checks keep answering
within a 1 s deadline while it runs, the request fails within its own deadline (408 / DEADLINE_EXCEEDED) or
past the separator budget with ES's 400, and the server stops the work at that point. Separators that could
not be compiled in bounded memory are refused with ES's validation error."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import aiohttp
import grpc
import pytest
from elser.v1 import inference_service_pb2 as is_pb2
from elser.v1 import inference_service_pb2_grpc as is_grpc
from elser.v1 import types_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpcdetails import rich
from serverprocess import ServerFactory, ServerProcess
from support import PUT_BODY

T = TypeVar("T")

# `(a|aa)+$` tries every split of the a's into ones and twos before `$` fails at the "!": with 45 a's that is
# over a billion paths (minutes), and the 21 words exceed max_chunk_size, so the separator runs.
HOSTILE = "(a|aa)+$"
HOSTILE_TEXT = "a" * 45 + "!" + " w" * 20
HOSTILE_SETTINGS = {"strategy": "recursive", "max_chunk_size": 10, "separators": [HOSTILE]}
READ_LIMIT = f"Chunk separator regex [{HOSTILE}] has exceeded the character read limit"
TIMED_OUT = "Timed out waiting for inference result"
NO_BUDGET = {"ELSER_CHUNKING_SEPARATOR_TIMEOUT_S": "600"}  # only the request's deadline binds
CLIENT_WAIT = aiohttp.ClientTimeout(total=60)  # far below the stall the regex would cause unbounded


async def healthy_while(server: ServerProcess, call: Awaitable[T]) -> T:
    """Await `call` while gRPC health and the REST root answer again and again, each within 1 s."""
    task = asyncio.ensure_future(call)
    checks = 0
    try:
        async with (
            grpc.aio.insecure_channel(server.target) as channel,
            aiohttp.ClientSession(server.base_url, timeout=aiohttp.ClientTimeout(total=1)) as http,
        ):
            health = health_pb2_grpc.HealthStub(channel)
            while not task.done():
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
                async with http.get("/") as root:
                    assert root.status == 200
                checks += 1
    finally:
        if not task.done():
            task.cancel()
    assert checks > 0
    return await task


async def rest(server: ServerProcess, method: str, path: str, body: Any) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(server.base_url, timeout=CLIENT_WAIT) as http,
        http.request(method, path, json=body) as response,
    ):
        return response.status, await response.json()


def es_error(es_type: str, reason: str, status: int) -> dict[str, Any]:
    cause = {"type": es_type, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


async def infer_chunked(server: ServerProcess, request: is_pb2.InferChunkedRequest, timeout_s: float) -> int:
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = is_grpc.InferenceServiceStub(channel)
        return len([r async for r in stub.InferChunked(request, timeout=timeout_s)])


def hostile_request(inference_id: str = "e", **chunking: Any) -> is_pb2.InferChunkedRequest:
    settings = types_pb2.ChunkingSettings(
        strategy=types_pb2.CHUNKING_STRATEGY_RECURSIVE, max_chunk_size=10, separators=[HOSTILE], **chunking
    )
    return is_pb2.InferChunkedRequest(
        inference_id=inference_id, input=[HOSTILE_TEXT], chunking_settings=settings
    )


@pytest.mark.slow
async def test_rest_request_and_stored_endpoint_fail_with_es_400_past_the_budget(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    assert (await rest(server, "PUT", "/_inference/sparse_embedding/e", PUT_BODY))[0] == 200
    body = {"input": HOSTILE_TEXT, "chunking_settings": HOSTILE_SETTINGS}
    status, error = await healthy_while(server, rest(server, "POST", "/_elser/chunked/e?timeout=60s", body))
    assert (status, error) == (400, es_error("illegal_argument_exception", READ_LIMIT, 400))

    # ES accepts the regex on an endpoint (it only fails when chunking); chunking with it then fails alike
    stored = {**PUT_BODY, "chunking_settings": HOSTILE_SETTINGS}
    assert (await rest(server, "PUT", "/_inference/sparse_embedding/stored", stored))[0] == 200
    status, error = await healthy_while(
        server, rest(server, "POST", "/_elser/chunked/stored?timeout=60s", {"input": HOSTILE_TEXT})
    )
    assert (status, error) == (400, es_error("illegal_argument_exception", READ_LIMIT, 400))


@pytest.mark.slow
async def test_rest_request_fails_within_its_timeout(start_server: ServerFactory) -> None:
    server = start_server(**NO_BUDGET)
    assert (await rest(server, "PUT", "/_inference/sparse_embedding/e", PUT_BODY))[0] == 200
    body = {"input": HOSTILE_TEXT, "chunking_settings": HOSTILE_SETTINGS}
    status, error = await healthy_while(server, rest(server, "POST", "/_elser/chunked/e?timeout=2s", body))
    assert (status, error) == (408, es_error("status_exception", TIMED_OUT, 408))


@pytest.mark.slow
async def test_grpc_infer_chunked_fails_within_its_deadline_and_the_work_stops(
    start_server: ServerFactory,
) -> None:
    server = start_server(**NO_BUDGET)
    assert (await rest(server, "PUT", "/_inference/sparse_embedding/e", PUT_BODY))[0] == 200
    # Two at once: together they would hold every chunking thread if they ran on past their deadlines.
    hostile = asyncio.gather(
        *(infer_chunked(server, hostile_request(), timeout_s=2) for _ in range(2)), return_exceptions=True
    )
    results = await healthy_while(server, hostile)
    for result in results:
        assert isinstance(result, grpc.aio.AioRpcError)
        assert result.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    # The server stopped both at the deadline: recursive chunking of a plain text gets a thread at once.
    plain = is_pb2.InferChunkedRequest(
        inference_id="e",
        input=["one two three four five six.\n\nseven eight nine ten eleven twelve."],
        chunking_settings=types_pb2.ChunkingSettings(
            strategy=types_pb2.CHUNKING_STRATEGY_RECURSIVE, max_chunk_size=10
        ),
    )
    assert await infer_chunked(server, plain, timeout_s=20) == 3  # two chunks, then the input's done


@pytest.mark.slow
async def test_grpc_infer_chunked_past_the_budget_and_unboundable_separators(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    assert (await rest(server, "PUT", "/_inference/sparse_embedding/e", PUT_BODY))[0] == 200
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await healthy_while(server, infer_chunked(server, hostile_request(), timeout_s=60))
    assert (info.value.code(), info.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, READ_LIMIT)
    details = rich(info.value)
    assert details["ErrorInfo"].reason == "SEPARATOR_LIMIT_EXCEEDED"
    assert details["ErrorInfo"].metadata["es_type"] == "illegal_argument_exception"
    assert [v.field for v in details["BadRequest"].field_violations] == ["chunking_settings.separators"]

    # The engine would copy a counted repetition's item a million times: refused before compiling.
    huge = {"strategy": "recursive", "max_chunk_size": 10, "separators": ["(?:a{1000}){1000}"]}
    status, error = await rest(
        server, "PUT", "/_inference/sparse_embedding/huge", {**PUT_BODY, "chunking_settings": huge}
    )
    assert status == 400 and error["error"]["type"] == "validation_exception"
    assert "[separators] must not exceed [1000] characters in all" in error["error"]["reason"]
    request = is_pb2.InferChunkedRequest(
        inference_id="e",
        input=["x"],
        chunking_settings=types_pb2.ChunkingSettings(
            strategy=types_pb2.CHUNKING_STRATEGY_RECURSIVE, max_chunk_size=10, separators=["a{100000000}"]
        ),
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await healthy_while(server, infer_chunked(server, request, timeout_s=60))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "[separators] must not exceed [1000] characters in all" in info.value.details()
    assert server.alive()
