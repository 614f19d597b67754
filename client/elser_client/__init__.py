"""Python client for the ELSER inference service (elser.v1 over gRPC)."""

from elser_client.client import AsyncElserClient, ElserClient, endpoint_config
from elser_client.config import DEFAULT_TIMEOUT_S, SERVICE_CONFIG, SERVICE_CONFIG_JSON, channel_options
from elser_client.errors import (
    AlreadyExists,
    DeadlineExceeded,
    ElserClientError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ResourceInfo,
    Unavailable,
    error_from_status,
)
from elser_client.sparse import id_weights, token_weights

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "SERVICE_CONFIG",
    "SERVICE_CONFIG_JSON",
    "AlreadyExists",
    "AsyncElserClient",
    "DeadlineExceeded",
    "ElserClient",
    "ElserClientError",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "ResourceExhausted",
    "ResourceInfo",
    "Unavailable",
    "channel_options",
    "endpoint_config",
    "error_from_status",
    "id_weights",
    "token_weights",
]
