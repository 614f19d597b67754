"""Server errors as Python exceptions, with the google.rpc details the server attaches decoded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True)
class ResourceInfo:
    type: str
    name: str


@dataclass
class ElserClientError(Exception):
    """A failed call. `message` is ES's reason text; `es_type`/`http_status` are what ES would answer."""

    code: grpc.StatusCode
    message: str
    error_reason: str | None = None
    es_type: str | None = None
    http_status: int | None = None
    field_violations: Sequence[FieldViolation] = field(default_factory=tuple)
    resource: ResourceInfo | None = None
    retry_delay: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgument(ElserClientError):
    pass


class NotFound(ElserClientError):
    pass


class AlreadyExists(ElserClientError):
    pass


class FailedPrecondition(ElserClientError):
    pass


class ResourceExhausted(ElserClientError):
    pass


class Unavailable(ElserClientError):
    pass


class DeadlineExceeded(ElserClientError):
    pass


_CLASSES: dict[grpc.StatusCode, type[ElserClientError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def error_from_status(code: grpc.StatusCode, status: status_pb2.Status) -> ElserClientError:
    """Decode a google.rpc.Status (from a trailer or an InferStream item) into the matching exception."""
    kwargs: dict[str, object] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            kwargs["error_reason"] = info.reason
            kwargs["es_type"] = info.metadata.get("es_type")
            if "http_status" in info.metadata:
                kwargs["http_status"] = int(info.metadata["http_status"])
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            kwargs["field_violations"] = tuple(
                FieldViolation(v.field, v.description) for v in bad.field_violations
            )
        elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            resource = error_details_pb2.ResourceInfo()
            detail.Unpack(resource)
            kwargs["resource"] = ResourceInfo(resource.resource_type, resource.resource_name)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            kwargs["retry_delay"] = retry.retry_delay.ToNanoseconds() / 1e9
    return _CLASSES.get(code, ElserClientError)(code, status.message, **kwargs)  # type: ignore[arg-type]


def code_of(status: status_pb2.Status) -> grpc.StatusCode:
    """grpc.StatusCode for a google.rpc.Status code number."""
    return next((c for c in grpc.StatusCode if c.value[0] == status.code), grpc.StatusCode.UNKNOWN)


def error_from_rpc(error: grpc.RpcError) -> ElserClientError:
    """Decode a failed call (sync or aio: both expose code(), details() and trailing_metadata())."""
    code: grpc.StatusCode = error.code()
    for key, value in error.trailing_metadata() or ():
        if key == _DETAILS_KEY:
            return error_from_status(code, status_pb2.Status.FromString(value))
    return _CLASSES.get(code, ElserClientError)(code, error.details() or "")
