"""Domain errors. Each carries everything both transports need, so each maps it in exactly one place:
a canonical (gRPC-style) code, the HTTP status and ES error type + reason text of Elasticsearch, a stable
machine-readable reason (google.rpc.ErrorInfo) and optional field violations / resource / retry hints."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field


class Code(enum.Enum):
    """Canonical status codes (the names match google.rpc.Code; transports map them)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    CANCELLED = "CANCELLED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True)
class Resource:
    type: str
    name: str


ENDPOINT_RESOURCE = "elser.v1.Endpoint"
DEPLOYMENT_RESOURCE = "elser.v1.Deployment"


@dataclass
class ElserError(Exception):
    """A failure the caller should see. `reason` is ES's exact text (the REST shim prints it verbatim)."""

    code: Code
    reason: str
    es_type: str
    http_status: int
    error_reason: str  # stable UPPER_SNAKE identifier (ErrorInfo.reason): part of the API
    field_violations: Sequence[FieldViolation] = field(default_factory=tuple)
    resource: Resource | None = None
    retry_after_s: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.reason)

    def __str__(self) -> str:
        return self.reason


def invalid(
    reason: str,
    *,
    es_type: str = "status_exception",
    error_reason: str = "INVALID_ARGUMENT",
    field: str | None = None,
    violations: Sequence[FieldViolation] = (),
    http_status: int = 400,
) -> ElserError:
    """A 400-style validation failure (gRPC INVALID_ARGUMENT with BadRequest field violations)."""
    if field is not None and not violations:
        violations = (FieldViolation(field, reason),)
    return ElserError(
        Code.INVALID_ARGUMENT, reason, es_type, http_status, error_reason, field_violations=tuple(violations)
    )


def endpoint_not_found(inference_id: str) -> ElserError:
    return ElserError(
        Code.NOT_FOUND,
        f"Inference endpoint not found [{inference_id}]",
        "resource_not_found_exception",
        404,
        "ENDPOINT_NOT_FOUND",
        resource=Resource(ENDPOINT_RESOURCE, inference_id),
    )


def endpoint_exists(inference_id: str) -> ElserError:
    return ElserError(
        Code.ALREADY_EXISTS,
        f"Inference endpoint [{inference_id}] already exists",
        "resource_already_exists_exception",
        400,
        "ENDPOINT_EXISTS",
        resource=Resource(ENDPOINT_RESOURCE, inference_id),
    )


def task_type_mismatch(reason: str) -> ElserError:
    return ElserError(Code.FAILED_PRECONDITION, reason, "status_exception", 400, "TASK_TYPE_MISMATCH")


def queue_full(retry_after_s: float) -> ElserError:
    return ElserError(
        Code.RESOURCE_EXHAUSTED,
        "inference process queue is full. Unable to execute command",
        "es_rejected_execution_exception",
        429,
        "QUEUE_FULL",
        retry_after_s=retry_after_s,
    )


def deadline_exceeded(reason: str) -> ElserError:
    return ElserError(Code.DEADLINE_EXCEEDED, reason, "status_exception", 408, "DEADLINE_EXCEEDED")


def unavailable(reason: str, error_reason: str, retry_after_s: float | None = 1.0) -> ElserError:
    return ElserError(
        Code.UNAVAILABLE, reason, "status_exception", 503, error_reason, retry_after_s=retry_after_s
    )


def store_unavailable() -> ElserError:
    """The shared endpoint store cannot be reached: a change is refused whole (nothing written), retry later.
    What the driver said is logged (and chained as the cause), never sent: it names hosts and users."""
    return unavailable(
        "The endpoint store is unavailable. No change was made; retry the request.", "STORE_UNAVAILABLE"
    )


def shutting_down() -> ElserError:
    return unavailable("the server is shutting down: retry on another instance", "SHUTTING_DOWN")


def internal(reason: str, error_reason: str = "INTERNAL") -> ElserError:
    return ElserError(Code.INTERNAL, reason, "status_exception", 500, error_reason)
