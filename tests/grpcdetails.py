"""The google.rpc rich error details of a failed gRPC call, by detail type name ("ErrorInfo", "BadRequest", …)."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

KINDS = (
    error_details_pb2.ErrorInfo,
    error_details_pb2.BadRequest,
    error_details_pb2.ResourceInfo,
    error_details_pb2.PreconditionFailure,
    error_details_pb2.RetryInfo,
)


def details_of(status: status_pb2.Status) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for detail in status.details:
        for kind in KINDS:
            if detail.Is(kind.DESCRIPTOR):
                msg = kind()
                detail.Unpack(msg)
                assert kind.__name__ not in out, f"two {kind.__name__} details"
                out[kind.__name__] = msg
                break
    return out


def rich(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    """The details of `error`; its google.rpc.Status must agree with the call's code and message."""
    status = rpc_status.from_call(error)
    assert isinstance(status, status_pb2.Status)
    assert status.code == error.code().value[0] and status.message == error.details()
    return details_of(status)
