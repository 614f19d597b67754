"""Channel defaults published with the client: deadlines and the retry service config (gRFC A6)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

DEFAULT_TIMEOUT_S = 30.0

# Only calls that are safe to repeat retry: reads and Infer (no side effects). PUT/DELETE/_update are not
# idempotent (a retried PUT would answer ALREADY_EXISTS). UNAVAILABLE covers a draining or starting server,
# RESOURCE_EXHAUSTED a full queue; the server's grpc-retry-pushback-ms trailer overrides the backoff.
_RETRIED_METHODS = [
    {"service": "elser.v1.InferenceService", "method": "Infer"},
    {"service": "elser.v1.EndpointService", "method": "GetEndpoint"},
    {"service": "elser.v1.EndpointService", "method": "ListEndpoints"},
    {"service": "elser.v1.EndpointService", "method": "GetDeploymentStats"},
]

SERVICE_CONFIG: dict[str, Any] = {
    # Retries stop while most calls fail (gRFC A6 throttling), so an overloaded server is not hit by a storm.
    "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    "methodConfig": [
        {
            "name": _RETRIED_METHODS,
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.1s",
                "maxBackoff": "5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"],
            },
        }
    ],
}

SERVICE_CONFIG_JSON = json.dumps(SERVICE_CONFIG)


def channel_options(
    max_message_bytes: int = 32 << 20, overrides: Sequence[tuple[str, Any]] = ()
) -> list[tuple[str, Any]]:
    """Options for grpc(.aio) channels: retries on with the published config, large enough responses.
    `overrides` replace defaults of the same name (e.g. ("grpc.enable_retries", 0))."""
    defaults = [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", SERVICE_CONFIG_JSON),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    replaced = {name for name, _ in overrides}
    return [*(o for o in defaults if o[0] not in replaced), *overrides]
