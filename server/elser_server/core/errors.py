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


def deployment_not_found(deployment_id: str, *, field: str | None = None) -> ElserError:
    return ElserError(
        Code.NOT_FOUND,
        f"Cannot find deployment [{deployment_id}]",
        "resource_not_found_exception",
        404,
        "DEPLOYMENT_NOT_FOUND",
        field_violations=() if field is None else (FieldViolation(field, "no such deployment"),),
        resource=Resource(DEPLOYMENT_RESOURCE, deployment_id),
    )


def model_not_found(model_id: str) -> ElserError:
    return ElserError(
        Code.NOT_FOUND,
        f"Could not deploy model [{model_id}] as the model cannot be found.",
        "resource_not_found_exception",
        404,
        "MODEL_NOT_FOUND",
    )


def model_invalid(model_id: str, problem: str, reason: str = "MODEL_INVALID") -> ElserError:
    """The model cannot be deployed: a bad package (MODEL_INVALID), or ELSER_RUNTIME / ELSER_PRECISION asking for
    a backend or precision this installation cannot run (RUNTIME_UNAVAILABLE)."""
    return ElserError(
        Code.FAILED_PRECONDITION,
        f"Could not deploy model [{model_id}]: {problem}",
        "status_exception",
        400,
        reason,
    )


def deployment_start_timeout(waited: str) -> ElserError:
    """ES's answer to a PUT whose deployment did not start within the request's timeout (`waited`: 30s)."""
    return ElserError(
        Code.DEADLINE_EXCEEDED,
        f"Timed out after [{waited}] waiting for model deployment to start. "
        "Use the trained model stats API to track the state of the deployment.",
        "status_exception",
        408,
        "DEPLOYMENT_START_TIMEOUT",
    )


def not_enough_memory_to_start(*, some_fit: bool) -> ElserError:
    """ES's 429 when a new deployment does not fit: `some_fit` when a part of its allocations would."""
    reason = (
        "Could not start deployment because there are not enough resources to provide all requested allocations"
        if some_fit
        else "Could not start deployment because no ML nodes with sufficient capacity were found"
    )
    return ElserError(Code.RESOURCE_EXHAUSTED, reason, "status_exception", 429, "INSUFFICIENT_MEMORY")


def not_enough_memory_to_update() -> ElserError:
    """ES's 429 when an update asks for more allocations than fit."""
    return ElserError(
        Code.RESOURCE_EXHAUSTED,
        "Could not update deployment because there are not enough resources to provide all requested allocations",
        "status_exception",
        429,
        "INSUFFICIENT_MEMORY",
    )


def deployment_not_started() -> ElserError:
    """ES's 409 for an allocation update of a deployment that is still starting (or stopping, or failed)."""
    return ElserError(
        Code.FAILED_PRECONDITION,
        "cannot update deployment that is not in [started] state",
        "status_exception",
        409,
        "DEPLOYMENT_NOT_STARTED",
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


def too_many_calls(method: str, limit: int, retry_after_s: float = 1.0) -> ElserError:
    """The server's bound on calls in flight (ES: a thread pool's queue refusing work)."""
    return ElserError(
        Code.RESOURCE_EXHAUSTED,
        f"rejected execution of [{method}]: [{limit}] calls are in flight already",
        "es_rejected_execution_exception",
        429,
        "TOO_MANY_CALLS",
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


def missing_credentials(subject: str) -> ElserError:
    """`subject`: what was called, as ES prints it: `REST request [/path]`, or `gRPC call [/pkg.Svc/Method]`."""
    return ElserError(
        Code.UNAUTHENTICATED,
        f"missing authentication credentials for {subject}",
        "security_exception",
        401,
        "MISSING_CREDENTIALS",
    )


def invalid_credentials(subject: str) -> ElserError:
    return ElserError(
        Code.UNAUTHENTICATED,
        f"unable to authenticate with provided credentials for {subject}",
        "security_exception",
        401,
        "INVALID_CREDENTIALS",
    )


def internal(reason: str, error_reason: str = "INTERNAL") -> ElserError:
    return ElserError(Code.INTERNAL, reason, "status_exception", 500, error_reason)
