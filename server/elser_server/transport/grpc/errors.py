"""The one place where failures become gRPC statuses: ElserError → google.rpc.Status with rich details.

ErrorInfo carries ES's error type and HTTP status next to the stable reason, so a client (or a REST gateway in
front of gRPC) can rebuild ES's error JSON from the status alone.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeAlias, TypeVar

from elser_server.core.errors import Code, ElserError
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

import grpc

log = logging.getLogger(__name__)

DOMAIN = "elser.v1"
PUSHBACK_METADATA_KEY = "grpc-retry-pushback-ms"
INTERNAL_MESSAGE = "internal error"

_CODES: dict[Code, int] = {
    Code.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    Code.NOT_FOUND: code_pb2.NOT_FOUND,
    Code.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    Code.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    Code.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    Code.UNAVAILABLE: code_pb2.UNAVAILABLE,
    Code.DEADLINE_EXCEEDED: code_pb2.DEADLINE_EXCEEDED,
    Code.CANCELLED: code_pb2.CANCELLED,
    Code.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    Code.INTERNAL: code_pb2.INTERNAL,
}


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(math.ceil(seconds * 1e9))
    return duration


def rpc_status_of(error: BaseException) -> status_pb2.Status:
    """The google.rpc.Status for a failure; unexpected exceptions become a bare INTERNAL (nothing leaks)."""
    if not isinstance(error, ElserError):
        return status_pb2.Status(
            code=code_pb2.INTERNAL,
            message=INTERNAL_MESSAGE,
            details=[_packed(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN))],
        )
    details = [
        _packed(
            error_details_pb2.ErrorInfo(
                reason=error.error_reason,
                domain=DOMAIN,
                metadata={"es_type": error.es_type, "http_status": str(error.http_status)},
            )
        )
    ]
    if error.field_violations:
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.field_violations
        ]
        details.append(_packed(error_details_pb2.BadRequest(field_violations=violations)))
    if error.code is Code.FAILED_PRECONDITION:
        violation = error_details_pb2.PreconditionFailure.Violation(
            type=error.error_reason, description=error.reason
        )
        details.append(_packed(error_details_pb2.PreconditionFailure(violations=[violation])))
    if error.resource is not None:
        details.append(
            _packed(
                error_details_pb2.ResourceInfo(
                    resource_type=error.resource.type, resource_name=error.resource.name
                )
            )
        )
    if error.retry_after_s is not None:
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=_duration(error.retry_after_s))))
    return status_pb2.Status(code=_CODES[error.code], message=error.reason, details=details)


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: BaseException) -> NoReturn:
    """End the RPC with the status for `error` (raises, as ServicerContext.abort does)."""
    if not isinstance(error, ElserError):
        log.error("unexpected error in gRPC handler", exc_info=error)
    status = rpc_status.to_status(rpc_status_of(error))
    retry_after_s = error.retry_after_s if isinstance(error, ElserError) else None
    if isinstance(error, ElserError) and error.code is Code.RESOURCE_EXHAUSTED and retry_after_s is not None:
        # gRFC A6 server pushback: the channel's retry policy waits this long instead of its own backoff.
        pushback = ((PUSHBACK_METADATA_KEY, str(math.ceil(retry_after_s * 1000))),)
        status = status._replace(trailing_metadata=(*status.trailing_metadata, *pushback))
    await context.abort_with_status(status)
    raise AssertionError("abort_with_status returned")  # it always raises; keeps NoReturn honest


_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
_Self = TypeVar("_Self")
_Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _passthrough(error: BaseException) -> bool:
    # AbortError: the handler already chose its status. (CancelledError is a BaseException: not caught.)
    return isinstance(error, grpc.aio.AbortError)


def unary_errors(
    method: Callable[[_Self, _Req, _Ctx], Awaitable[_Resp]],
) -> Callable[[_Self, _Req, _Ctx], Awaitable[_Resp]]:
    """Map every failure of a unary handler through `abort`."""

    @functools.wraps(method)
    async def wrapper(self: _Self, request: _Req, context: _Ctx) -> _Resp:
        try:
            return await method(self, request, context)
        except Exception as error:
            if _passthrough(error):
                raise
            await abort(context, error)

    return wrapper


def stream_errors(
    method: Callable[[_Self, _Req, _Ctx], AsyncIterator[_Resp]],
) -> Callable[[_Self, _Req, _Ctx], AsyncIterator[_Resp]]:
    """Map every failure of a response-streaming handler through `abort`."""

    @functools.wraps(method)
    async def wrapper(self: _Self, request: _Req, context: _Ctx) -> AsyncIterator[_Resp]:
        try:
            async for response in method(self, request, context):
                yield response
        except Exception as error:
            if _passthrough(error):
                raise
            await abort(context, error)

    return wrapper
