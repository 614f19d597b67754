"""Request messages that do not parse are the caller's fault: INVALID_ARGUMENT, not grpc-python's UNKNOWN.

grpc-python deserializes before the servicer runs and answers a DecodeError (bad UTF-8 in a string field,
a corrupt or truncated message) with UNKNOWN and the parser's text. This interceptor hands elser.v1
handlers the raw bytes and parses them itself, so such requests get the service's own error status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from elser_server.core.errors import ElserError, invalid
from elser_server.transport.grpc.errors import abort
from google.protobuf.message import DecodeError

import grpc

_WRAPPED_PREFIX = "/elser.v1."  # our servicers are all coroutines/async generators; others are left alone

Parse = Callable[[bytes], Any]


def _parse(parse: Parse, raw: bytes) -> Any:
    try:
        return parse(raw)
    except DecodeError as exc:
        raise invalid(f"Malformed request message: {exc}", error_reason="MALFORMED_REQUEST") from None


async def _parse_or_abort(parse: Parse, raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    try:
        return _parse(parse, raw)
    except ElserError as error:
        await abort(context, error)


def _tolerant(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    parse: Parse = handler.request_deserializer
    serialize = handler.response_serializer
    if handler.unary_unary is not None:
        unary = handler.unary_unary

        async def unary_unary(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            return await unary(await _parse_or_abort(parse, raw, context), context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, response_serializer=serialize)
    if handler.unary_stream is not None:
        streaming = handler.unary_stream

        async def unary_stream(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            request = await _parse_or_abort(parse, raw, context)
            async for response in streaming(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(unary_stream, response_serializer=serialize)
    if handler.stream_stream is not None:
        bidi = handler.stream_stream

        async def requests(raw_requests: AsyncIterator[bytes]) -> AsyncIterator[Any]:
            # A bad message mid-stream raises inside the servicer's read loop; its error mapping answers.
            async for raw in raw_requests:
                yield _parse(parse, raw)

        async def stream_stream(
            raw_requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            async for response in bidi(requests(raw_requests), context):
                yield response

        return grpc.stream_stream_rpc_method_handler(stream_stream, response_serializer=serialize)
    return handler  # no client-streaming unary RPCs in elser.v1


class DecodeErrorsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or handler.request_deserializer is None or not method.startswith(_WRAPPED_PREFIX):
            return handler
        return _tolerant(handler)
