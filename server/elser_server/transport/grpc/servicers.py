"""elser.v1 servicers: convert the request, call the core, convert the result (named as the RPCs)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

from elser.v1 import endpoint_service_pb2 as es_pb2
from elser.v1 import endpoint_service_pb2_grpc as es_grpc
from elser.v1 import inference_service_pb2 as is_pb2
from elser.v1 import inference_service_pb2_grpc as is_grpc
from elser_server.core.errors import invalid, shutting_down
from elser_server.core.service import InferenceCore
from elser_server.core.types import ChunkedInputDone, Priority
from elser_server.transport.grpc import convert
from elser_server.transport.grpc.errors import rpc_status_of, stream_errors, unary_errors

import grpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

# Requests of one InferStream read ahead of the response being written: enough to keep batches full,
# bounded so a client that does not read its responses stops being read from (HTTP/2 flow control
# then pushes back on the producer).

_LISTING_IDS = ("", "_all", "*")
STORE_STATE_METADATA_KEY = "elser-store-state"


def _deadline(context: Context) -> float | None:
    """The call's deadline as an absolute time.monotonic() value (None: the client set none)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _put_timeout(context: Context) -> float | None:
    """How long PUT waits for the deployment: the caller's deadline, less a margin so the server's answer (ES's
    "Timed out after […] waiting for model deployment to start" with ErrorInfo) arrives before the client gives
    up on its own. No deadline: the server's default (ES's 30 s)."""
    remaining = context.time_remaining()
    return None if remaining is None else remaining - min(1.0, remaining * 0.1)


def _say_if_stale(core: InferenceCore, context: Context) -> None:
    """A read served from the last known state while the shared store is unreachable says so."""
    if not core.store_available:
        context.set_trailing_metadata(((STORE_STATE_METADATA_KEY, "unavailable"),))


class EndpointServicer(es_grpc.EndpointServiceServicer):  # type: ignore[misc]
    def __init__(self, core: InferenceCore) -> None:
        self._core = core

    @unary_errors
    async def PutEndpoint(
        self, request: es_pb2.PutEndpointRequest, context: Context
    ) -> es_pb2.PutEndpointResponse:
        result = await self._core.put_endpoint(
            request.inference_id,
            convert.task_type_arg(request.task_type),
            convert.endpoint_body(request.endpoint),
            timeout_s=_put_timeout(context),
        )
        return es_pb2.PutEndpointResponse(
            endpoint=convert.endpoint_proto(result.endpoint), warnings=result.warnings
        )

    @unary_errors
    async def GetEndpoint(
        self, request: es_pb2.GetEndpointRequest, context: Context
    ) -> es_pb2.GetEndpointResponse:
        if request.inference_id in _LISTING_IDS:
            # The core reads these as "all endpoints"; listing is ListEndpoints' job.
            raise invalid(
                "[inference_id] must name one endpoint; use ListEndpoints to list", field="inference_id"
            )
        (endpoint,) = await self._core.get_endpoints(
            request.inference_id, convert.task_type_arg(request.task_type)
        )
        _say_if_stale(self._core, context)
        return es_pb2.GetEndpointResponse(endpoint=convert.endpoint_proto(endpoint))

    @unary_errors
    async def ListEndpoints(
        self, request: es_pb2.ListEndpointsRequest, context: Context
    ) -> es_pb2.ListEndpointsResponse:
        endpoints = await self._core.get_endpoints(None, convert.task_type_arg(request.task_type))
        _say_if_stale(self._core, context)
        return es_pb2.ListEndpointsResponse(endpoints=[convert.endpoint_proto(e) for e in endpoints])

    @unary_errors
    async def DeleteEndpoint(
        self, request: es_pb2.DeleteEndpointRequest, context: Context
    ) -> es_pb2.DeleteEndpointResponse:
        result = await self._core.delete_endpoint(
            request.inference_id,
            convert.task_type_arg(request.task_type),
            dry_run=request.dry_run,
            force=request.force,
        )
        return es_pb2.DeleteEndpointResponse(
            acknowledged=result.acknowledged,
            pipelines=result.pipelines,
            indexes=result.indexes,
            error_message=result.error_message,
        )

    @unary_errors
    async def UpdateEndpoint(
        self, request: es_pb2.UpdateEndpointRequest, context: Context
    ) -> es_pb2.UpdateEndpointResponse:
        endpoint = await self._core.update_endpoint(
            request.inference_id,
            convert.task_type_arg(request.task_type),
            convert.endpoint_body(request.endpoint),
        )
        return es_pb2.UpdateEndpointResponse(endpoint=convert.endpoint_proto(endpoint))

    @stream_errors
    async def WatchDeployment(
        self, request: es_pb2.WatchDeploymentRequest, context: Context
    ) -> AsyncIterator[es_pb2.WatchDeploymentResponse]:
        async for event in self._core.watch_deployment(request.inference_id):
            yield es_pb2.WatchDeploymentResponse(
                event=convert.deployment_event_proto(event, self._core.replica_name)
            )

    @unary_errors
    async def GetDeploymentStats(
        self, request: es_pb2.GetDeploymentStatsRequest, context: Context
    ) -> es_pb2.GetDeploymentStatsResponse:
        report = self._core.deployment_stats(request.inference_id)
        return es_pb2.GetDeploymentStatsResponse(stats=convert.deployment_stats_proto(report))


class InferenceServicer(is_grpc.InferenceServiceServicer):  # type: ignore[misc]
    def __init__(self, core: InferenceCore, stream_window: int) -> None:
        self._core = core
        self._stream_window = stream_window

    @unary_errors
    async def Infer(self, request: is_pb2.InferRequest, context: Context) -> is_pb2.InferResponse:
        options = convert.infer_options(request.options)
        if request.HasField("input_type"):
            options = convert.with_input_type(options, request.task_type, request.input_type)
        embeddings = await self._core.infer(
            request.inference_id,
            convert.task_type_arg(request.task_type),
            list(request.input),
            options,
            deadline=_deadline(context),
        )
        return is_pb2.InferResponse(embeddings=[convert.embedding_proto(e) for e in embeddings])

    async def _stream_item(
        self, request: is_pb2.InferStreamRequest, deadline: float | None
    ) -> is_pb2.InferStreamResponse:
        options = convert.infer_options(request.options)
        if options.priority is Priority.AUTO:  # a stream is bulk ingest: it must not compete with queries
            options = dataclasses.replace(options, priority=Priority.BULK)
        try:
            embeddings = await self._core.infer(
                request.inference_id,
                convert.task_type_arg(request.task_type),
                list(request.input),
                options,
                deadline=deadline,
            )
        except Exception as error:
            # One bad item must not end a bulk stream: its response carries what Infer would return.
            return is_pb2.InferStreamResponse(
                correlation_id=request.correlation_id, error=rpc_status_of(error)
            )
        return is_pb2.InferStreamResponse(
            correlation_id=request.correlation_id, embeddings=[convert.embedding_proto(e) for e in embeddings]
        )

    @stream_errors
    async def InferStream(
        self, request_iterator: AsyncIterator[is_pb2.InferStreamRequest], context: Context
    ) -> AsyncIterator[is_pb2.InferStreamResponse]:
        deadline = _deadline(context)
        window = asyncio.Semaphore(self._stream_window)
        # FIFO of running items; None marks the end of the request stream.
        pending: asyncio.Queue[asyncio.Task[is_pb2.InferStreamResponse] | None] = asyncio.Queue()
        running: set[asyncio.Task[is_pb2.InferStreamResponse]] = set()

        async def read() -> None:
            try:
                async for request in request_iterator:
                    await window.acquire()
                    task = asyncio.create_task(self._stream_item(request, deadline))
                    running.add(task)
                    task.add_done_callback(running.discard)
                    pending.put_nowait(task)
            finally:
                pending.put_nowait(None)

        reader = asyncio.create_task(read())
        # On shutdown the stream stops reading, answers what it read, then fails with SHUTTING_DOWN: every
        # message without a response was not processed and can be resent elsewhere.
        closing = asyncio.create_task(self._core.streams_closing())
        closing.add_done_callback(lambda _: reader.cancel())
        try:
            while (task := await pending.get()) is not None:
                response = await task
                yield response
                window.release()
            if reader.cancelled() and closing.done():
                raise shutting_down()
            await reader  # re-raises a failed read (e.g. the client's half of the stream broke)
        finally:
            closing.cancel()
            reader.cancel()
            for task in running:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    @stream_errors
    async def InferChunked(
        self, request: is_pb2.InferChunkedRequest, context: Context
    ) -> AsyncIterator[is_pb2.InferChunkedResponse]:
        results = self._core.infer_chunked(
            request.inference_id,
            convert.task_type_arg(request.task_type),
            list(request.input),
            convert.infer_options(request.options),
            chunking_settings=(
                convert.chunking_body(request.chunking_settings)
                if request.HasField("chunking_settings")
                else None
            ),
            deadline=_deadline(context),
        )
        async for result in results:
            if isinstance(result, ChunkedInputDone):
                done = is_pb2.InputDone(chunk_count=result.chunk_count)
                if result.error is not None:
                    done.error.CopyFrom(rpc_status_of(result.error))
                yield is_pb2.InferChunkedResponse(input_index=result.input_index, done=done)
            else:
                chunk = is_pb2.Chunk(
                    chunk_index=result.chunk_index,
                    start_utf16=result.chunk.start_utf16,
                    end_utf16=result.chunk.end_utf16,
                    start_code_point=result.chunk.start,
                    end_code_point=result.chunk.end,
                    embedding=convert.embedding_proto(result.embedding),
                )
                yield is_pb2.InferChunkedResponse(input_index=result.input_index, chunk=chunk)
