"""Request messages that do not parse are the caller's fault: INVALID_ARGUMENT, not grpc-python's UNKNOWN.

grpc-python deserializes before the servicer runs and answers a DecodeError (bad UTF-8 in a string field,
a corrupt or truncated message) with UNKNOWN, the parser's text and an ERROR traceback. This interceptor hands
every async handler (elser.v1, health, reflection) the raw bytes and parses them itself, so such requests get
the service's own error status.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

from elser_server.core.errors import ElserError, invalid
from elser_server.transport.grpc.errors import abort
from google.protobuf.message import DecodeError

import grpc

Parse = Callable[[bytes], Any]
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _parse(parse: Parse, raw: bytes) -> Any:
    try:
        return parse(raw)
    except DecodeError as exc:
        raise invalid(f"Malformed request message: {exc}", error_reason="MALFORMED_REQUEST") from None


async def _parse_or_abort(parse: Parse, raw: bytes, context: Context) -> Any:
    try:
        return _parse(parse, raw)
    except ElserError as error:
        await abort(context, error)


def _unary_request(parse: Parse, behaviour: Callable[..., Any]) -> Callable[..., Any]:
    """A handler of one request message: a coroutine (unary, or streaming through `context.write` as the
    health service's Watch does) or an async generator."""
    if inspect.isasyncgenfunction(behaviour):

        async def streaming(raw: bytes, context: Context) -> AsyncIterator[Any]:
            request = await _parse_or_abort(parse, raw, context)
            async for response in behaviour(request, context):
                yield response

        return streaming

    async def coroutine(raw: bytes, context: Context) -> Any:
        return await behaviour(await _parse_or_abort(parse, raw, context), context)

    return coroutine


def _bidi(parse: Parse, behaviour: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def requests(raw_requests: AsyncIterator[bytes]) -> AsyncIterator[Any]:
        async for raw in raw_requests:
            yield _parse(parse, raw)

    async def stream_stream(raw_requests: AsyncIterator[bytes], context: Context) -> AsyncIterator[Any]:
        try:
            async for response in behaviour(requests(raw_requests), context):
                yield response
        except ElserError as error:
            # A bad message mid-stream raises inside the servicer's read loop; elser.v1 servicers map it
            # themselves (the stream ends with their AbortError), other servicers let it through to here.
            await abort(context, error)

    return stream_stream


def _tolerant(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    parse: Parse = handler.request_deserializer
    serialize = handler.response_serializer
    if handler.unary_unary is not None and inspect.iscoroutinefunction(handler.unary_unary):
        return grpc.unary_unary_rpc_method_handler(
            _unary_request(parse, handler.unary_unary), response_serializer=serialize
        )
    behaviour = handler.unary_stream
    if behaviour is not None and (
        inspect.iscoroutinefunction(behaviour) or inspect.isasyncgenfunction(behaviour)
    ):
        return grpc.unary_stream_rpc_method_handler(
            _unary_request(parse, behaviour), response_serializer=serialize
        )
    if handler.stream_stream is not None and inspect.isasyncgenfunction(handler.stream_stream):
        return grpc.stream_stream_rpc_method_handler(
            _bidi(parse, handler.stream_stream), response_serializer=serialize
        )
    return handler  # synchronous handlers and client-streaming unary RPCs: none are served


class DecodeErrorsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        return _tolerant(handler)
