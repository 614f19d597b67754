"""Server interceptors: request ids, RED metrics and access logs (outermost), API-key authentication, and
debug logging of request bodies (innermost, only when asked for: bodies hold the input texts).

grpc.aio interceptors see the method and metadata only, so each wraps the handler's behaviour to see how the
call ended. Every RPC runs in its own task: the request id set in the wrapper stays with that call.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeAlias

from elser_server.core.errors import ElserError, too_many_calls
from elser_server.observability.context import (
    OPAQUE_ID_HEADER,
    REQUEST_ID_HEADER,
    choose_request_id,
    request_id,
)
from elser_server.observability.metrics import Metrics
from elser_server.observability.spans import NO_SPANS, ServerSpans, SpanEnd
from elser_server.security import ApiKeys
from elser_server.transport.grpc.errors import abort
from google.protobuf import text_format
from google.protobuf.message import Message

import grpc

log = logging.getLogger(__name__)

HEALTH_PREFIX = "/grpc.health.v1.Health/"
# OpenTelemetry's semantic conventions: the server's own faults mark a server span as failed, the caller's do not.
SERVER_FAULTS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)
REFLECTION_PREFIXES = ("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]

_FACTORIES: dict[str, Callable[..., grpc.RpcMethodHandler]] = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


def _behaviour(handler: grpc.RpcMethodHandler) -> tuple[str, Callable[..., Any]]:
    for kind in _FACTORIES:
        behaviour = getattr(handler, kind)
        if behaviour is not None:
            return kind, behaviour
    raise ValueError("handler without behaviour")


def _rebuilt(
    handler: grpc.RpcMethodHandler, kind: str, behaviour: Callable[..., Any]
) -> grpc.RpcMethodHandler:
    return _FACTORIES[kind](
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _metadata(details: grpc.HandlerCallDetails) -> list[tuple[str, str]]:
    pairs = details.invocation_metadata or ()
    return [(key.lower(), value) for key, value in pairs if isinstance(value, str)]


def _code(error: BaseException | None, context: Context) -> str:
    """How the call ended, as a status code name."""
    if error is None or isinstance(error, grpc.aio.AbortError):
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) else "OK"
    if not isinstance(error, Exception):
        # CancelledError: grpc ends the handler when the call's deadline passes or the client goes away.
        remaining = context.time_remaining()
        return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
    return "UNKNOWN"  # what grpc answers for an unhandled exception


async def _send_initial_metadata(context: Context, metadata: Sequence[tuple[str, str]]) -> None:
    try:
        await context.send_initial_metadata(metadata)
    except grpc.aio.InternalError:
        raise asyncio.CancelledError from None  # the call ended before it started (see errors.abort)


class TelemetryInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Request id (from `x-request-id` / `x-opaque-id` metadata, else new; echoed in the initial metadata),
    RED metrics per method and status code, a trace span (not for health checks), one access-log line per call
    (health checks at DEBUG)."""

    def __init__(self, metrics: Metrics | None, spans: ServerSpans = NO_SPANS) -> None:
        self._metrics = metrics
        self._spans = spans

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method
        metadata = _metadata(details)
        rid = choose_request_id(metadata)
        echo = [(REQUEST_ID_HEADER, rid), *((k, v) for k, v in metadata if k == OPAQUE_ID_HEADER)]
        health = method.startswith(HEALTH_PREFIX)
        spans = NO_SPANS if health else self._spans
        service, _, name = method[1:].partition("/")
        span_attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
        carrier = dict(metadata)
        kind, inner = _behaviour(handler)
        finished = self._finished

        if inspect.isasyncgenfunction(inner):

            async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:
                request_id.set(rid)
                started, error = time.perf_counter(), None
                with spans.server_span(method, carrier, span_attributes) as end_span:
                    try:
                        await _send_initial_metadata(context, echo)
                        async for response in inner(request, context):
                            yield response
                    except BaseException as exc:
                        error = exc
                        raise
                    finally:
                        finished(method, _code(error, context), time.perf_counter() - started, end_span)

            return _rebuilt(handler, kind, streaming)

        async def unary(request: Any, context: Context) -> Any:
            request_id.set(rid)
            started, error = time.perf_counter(), None
            with spans.server_span(method, carrier, span_attributes) as end_span:
                try:
                    await _send_initial_metadata(context, echo)
                    return await inner(request, context)
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    finished(method, _code(error, context), time.perf_counter() - started, end_span)

        return _rebuilt(handler, kind, unary)

    def _finished(self, method: str, code: str, seconds: float, end_span: SpanEnd) -> None:
        end_span({"rpc.grpc.status_code": grpc.StatusCode[code].value[0]}, code in SERVER_FAULTS)
        if self._metrics is not None:
            self._metrics.observe_grpc(method, code, seconds)
        level = logging.DEBUG if method.startswith(HEALTH_PREFIX) else logging.INFO
        duration_ms = round(seconds * 1000, 3)
        log.log(
            level,
            "gRPC %s %s %.1fms",
            method,
            code,
            duration_ms,
            extra={"rpc_method": method, "status": code, "duration_ms": duration_ms},
        )


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """API keys from the `authorization` metadata (`ApiKey …` or `Bearer …`, as over REST). Health and
    reflection stay open unless `protect_health_and_reflection`."""

    def __init__(
        self, keys: ApiKeys, metrics: Metrics | None, *, protect_health_and_reflection: bool = False
    ) -> None:
        self._keys = keys
        self._metrics = metrics
        self._open: tuple[str, ...] = (
            () if protect_health_and_reflection else (HEALTH_PREFIX, *REFLECTION_PREFIXES)
        )

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method: str = details.method
        if method.startswith(self._open):
            return await continuation(details)
        authorization = next((v for k, v in _metadata(details) if k == "authorization"), None)
        error = self._rejection(authorization, method)
        handler = await continuation(details)
        if error is None or handler is None:
            return handler
        if self._metrics is not None:
            self._metrics.auth_rejected()
        kind, _ = _behaviour(handler)

        async def reject(request: Any, context: Context) -> None:
            await abort(context, error)

        return _rebuilt(handler, kind, reject)

    def _rejection(self, authorization: str | None, method: str) -> ElserError | None:
        try:
            self._keys.check(authorization, f"gRPC call [{method}]")
        except ElserError as error:
            return error
        return None


class CallLimitInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """At most `limit` calls in flight in the whole server (health checks and reflection are not counted and
    never refused): past it a call fails at once with RESOURCE_EXHAUSTED and a retry hint, as a full queue does.
    HTTP/2 has no such answer (a connection's stream limit refuses streams, which clients see as UNAVAILABLE), so
    the process-wide bound lives here. A call holds its place until its handler ends, which grpc makes happen
    when the call's deadline passes or its client cancels it."""

    def __init__(self, limit: int, metrics: Metrics | None) -> None:
        self._limit = limit
        self._metrics = metrics
        self.in_flight = 0

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or method.startswith((HEALTH_PREFIX, *REFLECTION_PREFIXES)):
            return handler
        kind, inner = _behaviour(handler)
        limiter = self

        if inspect.isasyncgenfunction(inner):

            async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:
                await limiter._enter(method, context)
                try:
                    async for response in inner(request, context):
                        yield response
                finally:
                    limiter._leave()

            return _rebuilt(handler, kind, streaming)

        async def unary(request: Any, context: Context) -> Any:
            await limiter._enter(method, context)
            try:
                return await inner(request, context)
            finally:
                limiter._leave()

        return _rebuilt(handler, kind, unary)

    async def _enter(self, method: str, context: Context) -> None:
        if self.in_flight >= self._limit:
            if self._metrics is not None:
                self._metrics.calls_rejected()
            await abort(context, too_many_calls(method, self._limit))
        self.in_flight += 1
        if self._metrics is not None:
            self._metrics.grpc_in_flight.inc()

    def _leave(self) -> None:
        self.in_flight -= 1
        if self._metrics is not None:
            self._metrics.grpc_in_flight.dec()


class BodyLogInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """DEBUG-log every unary request message (input texts included): for debugging only. Must be innermost, so
    it sees parsed messages."""

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None or handler.request_streaming:
            return handler
        kind, inner = _behaviour(handler)
        method: str = details.method

        def logged(request: Any) -> None:
            if isinstance(request, Message) and log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "gRPC %s request: %s", method, text_format.MessageToString(request, as_one_line=True)
                )

        if inspect.isasyncgenfunction(inner):

            async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:
                logged(request)
                async for response in inner(request, context):
                    yield response

            return _rebuilt(handler, kind, streaming)

        async def unary(request: Any, context: Context) -> Any:
            logged(request)
            return await inner(request, context)

        return _rebuilt(handler, kind, unary)


def server_interceptors(
    metrics: Metrics | None,
    api_keys: ApiKeys | None,
    *,
    protect_health_and_reflection: bool = False,
    spans: ServerSpans = NO_SPANS,
    max_concurrent_calls: int = 0,
) -> Sequence[grpc.aio.ServerInterceptor]:
    """Telemetry first (it sees auth failures and refusals too), then authentication, then the bound on calls
    in flight (0: none). Body logging goes innermost, after the transport's own interceptors: see
    `BodyLogInterceptor`."""
    chain: list[grpc.aio.ServerInterceptor] = [TelemetryInterceptor(metrics, spans)]
    if api_keys is not None:
        chain.append(
            AuthInterceptor(api_keys, metrics, protect_health_and_reflection=protect_health_and_reflection)
        )
    if max_concurrent_calls:
        chain.append(CallLimitInterceptor(max_concurrent_calls, metrics))
    return chain
