"""The one place where failures become gRPC statuses: ElserError → google.rpc.Status with rich details.

ErrorInfo carries ES's error type and HTTP status next to the stable reason, so a client (or a REST gateway in
front of gRPC) can rebuild ES's error JSON from the status alone.
"""

from __future__ import annotations

import asyncio
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
# A status travels in trailers, which clients refuse past 8 KiB by default (grpc.max_metadata_size): its
# message (percent-encoded: up to 3 characters a byte) and its details (base64) must fit together whatever the
# caller sent, e.g. an inference id of megabytes that ES's texts echo. Normal statuses are far below the bounds.
MESSAGE_MAX_BYTES = 1024
DETAIL_MAX_BYTES = 512
STATUS_MAX_BYTES = 6 * 1024
_TRUNCATED = "…"

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


def bounded(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` UTF-8 bytes (on a character boundary), ending with "…" when cut."""
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text
    keep = max_bytes - len(_TRUNCATED.encode())
    return encoded[:keep].decode("utf-8", "ignore") + _TRUNCATED


def trailer_bytes(status: status_pb2.Status) -> int:
    """What `status` takes in a response's trailers: grpc-message percent-encoded, grpc-status-details-bin in
    base64 (header names and small fields aside)."""
    message = status.message.encode("utf-8")
    encoded_message = sum(1 if 0x20 <= byte <= 0x7E and byte != 0x25 else 3 for byte in message)
    return encoded_message + 4 * math.ceil(int(status.ByteSize()) / 3)


def rpc_status_of(error: BaseException) -> status_pb2.Status:
    """The google.rpc.Status for a failure; unexpected exceptions become a bare INTERNAL (nothing leaks). Texts
    are cut to their bounds, and field violations beyond what fits are left out (the message lists them all)."""
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
    if error.code is Code.FAILED_PRECONDITION:
        violation = error_details_pb2.PreconditionFailure.Violation(
            type=error.error_reason, description=bounded(error.reason, DETAIL_MAX_BYTES)
        )
        details.append(_packed(error_details_pb2.PreconditionFailure(violations=[violation])))
    if error.resource is not None:
        details.append(
            _packed(
                error_details_pb2.ResourceInfo(
                    resource_type=error.resource.type,
                    resource_name=bounded(error.resource.name, DETAIL_MAX_BYTES),
                )
            )
        )
    if error.retry_after_s is not None:
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=_duration(error.retry_after_s))))
    status = status_pb2.Status(
        code=_CODES[error.code], message=bounded(error.reason, MESSAGE_MAX_BYTES), details=details
    )
    if error.field_violations:
        # Base64 of the violations must fit in what the rest of the status leaves; the first always goes in.
        room = (STATUS_MAX_BYTES - trailer_bytes(status)) * 3 // 4 - 64
        bad_request = error_details_pb2.BadRequest()
        for v in error.field_violations:
            violation = error_details_pb2.BadRequest.FieldViolation(
                field=bounded(v.field, DETAIL_MAX_BYTES), description=bounded(v.description, DETAIL_MAX_BYTES)
            )
            room -= violation.ByteSize() + 4  # with its tag and length
            if room < 0 and bad_request.field_violations:
                break
            bad_request.field_violations.append(violation)
        status.details.insert(1, _packed(bad_request))  # second, after ErrorInfo
    return status


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
    try:
        await context.abort_with_status(status)
    except grpc.aio.InternalError:
        # The call had already ended on the wire (its deadline passed, or the client left, a moment before the
        # handler noticed): there is nobody to tell, and it is the cancellation grpc is about to deliver.
        raise asyncio.CancelledError from None
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
