"""The retry service config the client publishes (elser_client.config) works on a real grpc.aio server.

The server is real (grpc.aio on 127.0.0.1:<ephemeral>); its servicers are test doubles that fail the first calls
with the statuses the service sends (built by the product's own errors.abort: UNAVAILABLE while draining,
RESOURCE_EXHAUSTED with the `grpc-retry-pushback-ms` trailer when the queue is full) and then answer. Counting
the attempts the server saw shows what the channel retried: Infer and reads are retried, PUT/_update/DELETE are
not, other codes are not, attempts stop at maxAttempts, a negative pushback stops them, and with retries switched
off nothing is retried.

Retry throttling (gRFC A6) is per server name across channels; each test has its own server (its own port) and
fails at most maxAttempts times, which the 10 tokens allow.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from elser.v1 import endpoint_service_pb2 as es_pb2
from elser.v1 import endpoint_service_pb2_grpc as es_grpc
from elser.v1 import inference_service_pb2 as is_pb2
from elser.v1 import inference_service_pb2_grpc as is_grpc
from elser.v1 import types_pb2
from elser_client import (
    SERVICE_CONFIG,
    AsyncElserClient,
    ElserClient,
    ElserClientError,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
    endpoint_config,
)
from elser_server.core.errors import ElserError, invalid, queue_full, shutting_down
from elser_server.transport.grpc.errors import PUSHBACK_METADATA_KEY, abort

MAX_ATTEMPTS = SERVICE_CONFIG["methodConfig"][0]["retryPolicy"]["maxAttempts"]
ALWAYS = 1000  # fail every attempt


class Script:
    """How many attempts a method saw, and the failure for each of the first `failures` attempts."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self.failures: dict[str, tuple[int, ElserError | grpc.Status]] = {}

    def fail(self, method: str, times: int, error: ElserError | grpc.Status) -> None:
        self.failures[method] = (times, error)

    async def attempt(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.attempts[method] = self.attempts.get(method, 0) + 1
        times, error = self.failures.get(method, (0, None))
        if self.attempts[method] > times:
            return
        if isinstance(error, ElserError):
            await abort(context, error)  # the service's own status, details and pushback trailer
        assert error is not None
        await context.abort_with_status(error)


class Inference(is_grpc.InferenceServiceServicer):  # type: ignore[misc]
    def __init__(self, script: Script) -> None:
        self._script = script

    async def Infer(self, request: is_pb2.InferRequest, context: Any) -> is_pb2.InferResponse:
        await self._script.attempt("Infer", context)
        return is_pb2.InferResponse(
            embeddings=[types_pb2.SparseEmbedding(token_ids=[7], weights=[1.0]) for _ in request.input]
        )


class Endpoints(es_grpc.EndpointServiceServicer):  # type: ignore[misc]
    def __init__(self, script: Script) -> None:
        self._script = script

    def _endpoint(self, inference_id: str) -> types_pb2.Endpoint:
        return types_pb2.Endpoint(inference_id=inference_id, service="elasticsearch")

    async def PutEndpoint(
        self, request: es_pb2.PutEndpointRequest, context: Any
    ) -> es_pb2.PutEndpointResponse:
        await self._script.attempt("PutEndpoint", context)
        return es_pb2.PutEndpointResponse(endpoint=self._endpoint(request.inference_id))

    async def UpdateEndpoint(
        self, request: es_pb2.UpdateEndpointRequest, context: Any
    ) -> es_pb2.UpdateEndpointResponse:
        await self._script.attempt("UpdateEndpoint", context)
        return es_pb2.UpdateEndpointResponse(endpoint=self._endpoint(request.inference_id))

    async def DeleteEndpoint(
        self, request: es_pb2.DeleteEndpointRequest, context: Any
    ) -> es_pb2.DeleteEndpointResponse:
        await self._script.attempt("DeleteEndpoint", context)
        return es_pb2.DeleteEndpointResponse(acknowledged=True)

    async def GetEndpoint(
        self, request: es_pb2.GetEndpointRequest, context: Any
    ) -> es_pb2.GetEndpointResponse:
        await self._script.attempt("GetEndpoint", context)
        return es_pb2.GetEndpointResponse(endpoint=self._endpoint(request.inference_id))

    async def ListEndpoints(
        self, request: es_pb2.ListEndpointsRequest, context: Any
    ) -> es_pb2.ListEndpointsResponse:
        await self._script.attempt("ListEndpoints", context)
        return es_pb2.ListEndpointsResponse(endpoints=[self._endpoint("a")])


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
async def target(script: Script) -> AsyncIterator[str]:
    server = grpc.aio.server()
    is_grpc.add_InferenceServiceServicer_to_server(Inference(script), server)
    es_grpc.add_EndpointServiceServicer_to_server(Endpoints(script), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


def raw(code: grpc.StatusCode, details: str, *trailers: tuple[str, str]) -> grpc.Status:
    """A bare status (no google.rpc details) with the given trailing metadata."""

    class _Status(grpc.Status):  # type: ignore[misc]
        pass

    status = _Status()
    status.code, status.details, status.trailing_metadata = code, details, trailers
    return status


def test_published_policy() -> None:
    """What the tests below rely on: the retried methods and codes of the published config."""
    (method_config,) = SERVICE_CONFIG["methodConfig"]
    assert {(n["service"], n["method"]) for n in method_config["name"]} == {
        ("elser.v1.InferenceService", "Infer"),
        ("elser.v1.EndpointService", "GetEndpoint"),
        ("elser.v1.EndpointService", "ListEndpoints"),
        ("elser.v1.EndpointService", "GetDeploymentStats"),
    }
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]
    assert MAX_ATTEMPTS == 5


async def test_sync_infer_retries_unavailable(target: str, script: Script) -> None:
    """A draining server's UNAVAILABLE (the service's SHUTTING_DOWN status) is retried with the channel's
    backoff; the blocking client gets the answer of the third attempt."""
    script.fail("Infer", 2, shutting_down())

    def call() -> list[types_pb2.SparseEmbedding]:
        with ElserClient(target) as client:
            return client.infer("e", ["a", "b"])

    embeddings = await asyncio.to_thread(call)
    assert [list(e.token_ids) for e in embeddings] == [[7], [7]]
    assert script.attempts == {"Infer": 3}


async def test_async_infer_retries_queue_full_with_pushback(target: str, script: Script) -> None:
    """A full queue's RESOURCE_EXHAUSTED, sent by the service's errors.abort with its pushback trailer, is
    retried; so is it with the asyncio client."""
    script.fail("Infer", MAX_ATTEMPTS - 1, queue_full(retry_after_s=0.01))
    async with AsyncElserClient(target) as client:
        embeddings = await client.infer("e", "a")
    assert len(embeddings) == 1
    assert script.attempts == {"Infer": MAX_ATTEMPTS}


async def test_attempts_stop_at_max_attempts(target: str, script: Script) -> None:
    script.fail("Infer", ALWAYS, shutting_down())
    async with AsyncElserClient(target) as client:
        with pytest.raises(Unavailable) as caught:
            await client.infer("e", "a")
    assert caught.value.error_reason == "SHUTTING_DOWN"  # the last attempt's status, details decoded
    assert script.attempts == {"Infer": MAX_ATTEMPTS}


async def test_negative_pushback_stops_retries(target: str, script: Script) -> None:
    """gRFC A6: a negative `grpc-retry-pushback-ms` tells the client not to retry (the channel reads the
    trailer the service sends)."""
    script.fail(
        "Infer", ALWAYS, raw(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", (PUSHBACK_METADATA_KEY, "-1"))
    )
    async with AsyncElserClient(target) as client:
        with pytest.raises(ResourceExhausted):
            await client.infer("e", "a")
    assert script.attempts == {"Infer": 1}


async def test_other_codes_are_not_retried(target: str, script: Script) -> None:
    script.fail("Infer", ALWAYS, invalid("nope"))
    async with AsyncElserClient(target) as client:
        with pytest.raises(InvalidArgument):
            await client.infer("e", "a")
    assert script.attempts == {"Infer": 1}


async def test_reads_are_retried(target: str, script: Script) -> None:
    script.fail("GetEndpoint", 1, shutting_down())
    script.fail("ListEndpoints", 1, queue_full(retry_after_s=0.01))
    async with AsyncElserClient(target) as client:
        assert (await client.get_endpoint("a")).inference_id == "a"
        assert [e.inference_id for e in await client.list_endpoints()] == ["a"]
    assert script.attempts == {"GetEndpoint": 2, "ListEndpoints": 2}


@pytest.mark.parametrize("method", ["PutEndpoint", "UpdateEndpoint", "DeleteEndpoint"])
async def test_writes_are_not_retried(target: str, script: Script, method: str) -> None:
    """PUT, _update and DELETE are not idempotent: one UNAVAILABLE reaches the caller, the server saw one call."""
    script.fail(method, ALWAYS, shutting_down())

    def call() -> object:
        with ElserClient(target) as client:
            if method == "PutEndpoint":
                return client.put_endpoint("a", endpoint_config())
            if method == "UpdateEndpoint":
                return client.update_endpoint("a", endpoint_config(num_allocations=2))
            return client.delete_endpoint("a")

    with pytest.raises(Unavailable):
        await asyncio.to_thread(call)
    assert script.attempts == {method: 1}


async def test_put_answers_after_one_attempt_when_the_server_recovers(target: str, script: Script) -> None:
    """The caller, not the channel, decides to resend a PUT: the second call is a new RPC."""
    script.fail("PutEndpoint", 1, queue_full(retry_after_s=0.01))
    async with AsyncElserClient(target) as client:
        with pytest.raises(ResourceExhausted) as caught:
            await client.put_endpoint("a")
        assert caught.value.retry_delay == pytest.approx(0.01)  # RetryInfo, for the caller's own backoff
        assert script.attempts == {"PutEndpoint": 1}
        assert (await client.put_endpoint("a")).inference_id == "a"
    assert script.attempts == {"PutEndpoint": 2}


async def test_retries_off_by_option(target: str, script: Script) -> None:
    """Control: the same failure with grpc.enable_retries=0 reaches the caller at once."""
    script.fail("Infer", 1, shutting_down())
    async with AsyncElserClient(target, options=[("grpc.enable_retries", 0)]) as client:
        with pytest.raises(ElserClientError) as caught:
            await client.infer("e", "a")
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert script.attempts == {"Infer": 1}
