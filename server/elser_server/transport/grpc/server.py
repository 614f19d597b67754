"""The grpc.aio server: elser.v1 services, standard health, reflection, TLS and connection management."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from elser.v1 import (
    endpoint_service_pb2,
    endpoint_service_pb2_grpc,
    inference_service_pb2,
    inference_service_pb2_grpc,
)
from elser_server.core.service import InferenceCore
from elser_server.settings import Settings
from elser_server.transport.grpc.decode import DecodeErrorsInterceptor
from elser_server.transport.grpc.interceptors import BodyLogInterceptor
from elser_server.transport.grpc.servicers import EndpointServicer, InferenceServicer
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection as server_reflection

import grpc

log = logging.getLogger(__name__)

ENDPOINT_SERVICE = endpoint_service_pb2.DESCRIPTOR.services_by_name["EndpointService"].full_name
INFERENCE_SERVICE = inference_service_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name
LIVENESS = ""  # the standard name for "the server as a whole"

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class GrpcTransport:
    """Serves the core over gRPC.

    Lifecycle: `start()` → (`enter_graceful_shutdown()` → drain) → `stop(grace)`.
    """

    def __init__(
        self,
        core: InferenceCore,
        settings: Settings,
        *,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        """`interceptors` (telemetry, auth) see every call as it arrives."""
        if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
            raise ValueError("TLS needs both a certificate and a key file")
        if settings.tls_require_client_cert and settings.tls_client_ca_file is None:
            raise ValueError("requiring client certificates needs a client CA file")
        self._core = core
        self._address = f"{settings.host}:{settings.grpc_port}"
        self._tls = (
            settings.tls_cert_file,
            settings.tls_key_file,
            settings.tls_client_ca_file,
            settings.tls_require_client_cert,
        )
        self._health = HealthServicer()
        self._health_updates: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        max_streams = settings.grpc_max_concurrent_streams
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", settings.max_request_bytes),
                ("grpc.max_send_message_length", settings.max_response_bytes),
                ("grpc.keepalive_time_ms", _ms(settings.grpc_keepalive_time_s)),
                ("grpc.keepalive_timeout_ms", _ms(settings.grpc_keepalive_timeout_s)),
                ("grpc.keepalive_permit_without_calls", 1),
                # Clients may ping this often without being answered with GOAWAY "too_many_pings".
                (
                    "grpc.http2.min_ping_interval_without_data_ms",
                    _ms(settings.grpc_min_client_ping_interval_s),
                ),
                ("grpc.max_connection_idle_ms", _ms(settings.grpc_max_connection_idle_s)),
                # GOAWAY now and then so long-lived clients re-resolve and spread over replicas (gRFC A9).
                ("grpc.max_connection_age_ms", _ms(settings.grpc_max_connection_age_s)),
                ("grpc.max_connection_age_grace_ms", _ms(settings.grpc_max_connection_age_grace_s)),
                # Linux's default (1) lets a second server silently share the port.
                ("grpc.so_reuseport", 0),
                # HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: calls one connection may have open at once. Calls past
                # it are refused with RST_STREAM (clients see UNAVAILABLE): the server-wide call limit is an
                # interceptor, which answers RESOURCE_EXHAUSTED.
                *((("grpc.max_concurrent_streams", max_streams),) if max_streams else ()),
                # Calls that arrived but were not yet handed to a handler: past grpc's defaults (1,000, and 3,000
                # at most) bursts are CANCELLED before anything of ours sees them.
                ("grpc.server.max_pending_requests", settings.grpc_max_pending_calls),
                ("grpc.server.max_pending_requests_hard_limit", settings.grpc_max_pending_calls),
                # Connections past this are closed as soon as they are accepted, so they cannot use up the
                # process's file descriptors; ones that never finish their TLS/HTTP/2 handshake (including the
                # client's SETTINGS) are closed after the handshake timeout.
                ("grpc.max_allowed_incoming_connections", settings.effective_grpc_max_connections),
                ("grpc.server_handshake_timeout_ms", _ms(settings.grpc_handshake_timeout_s)),
            ],
            # Body logging needs parsed messages, hence after the decoding interceptor.
            interceptors=[
                *interceptors,
                DecodeErrorsInterceptor(),
                *([BodyLogInterceptor()] if settings.log_bodies else []),
            ],
            # No maximum_concurrent_rpcs: it rejects health checks under load; admission is the core's job.
        )
        endpoint_service_pb2_grpc.add_EndpointServiceServicer_to_server(EndpointServicer(core), self._server)
        inference_service_pb2_grpc.add_InferenceServiceServicer_to_server(
            InferenceServicer(core, settings.infer_stream_window), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        if settings.reflection:
            server_reflection.enable_server_reflection(
                (ENDPOINT_SERVICE, INFERENCE_SERVICE, health.SERVICE_NAME, server_reflection.SERVICE_NAME),
                self._server,
            )

    def _credentials(self) -> grpc.ServerCredentials | None:
        cert, key, client_ca, require_client_cert = self._tls
        if cert is None or key is None:
            return None
        return grpc.ssl_server_credentials(
            [(key.read_bytes(), cert.read_bytes())],
            root_certificates=client_ca.read_bytes() if client_ca is not None else None,
            require_client_auth=require_client_cert,
        )

    async def start(self) -> int:
        """Bind, start serving and publish health; returns the bound port (useful with port 0)."""
        credentials = self._credentials()
        if credentials is None:
            port = int(self._server.add_insecure_port(self._address))
        else:
            port = int(self._server.add_secure_port(self._address, credentials))
        await self._server.start()
        self._loop = asyncio.get_running_loop()
        await self._health.set(LIVENESS, _SERVING)
        await self._health.set(ENDPOINT_SERVICE, _SERVING)
        await self._health.set(INFERENCE_SERVICE, _SERVING if self._core.ready else _NOT_SERVING)
        self._core.add_readiness_listener(self._on_readiness)
        log.info("gRPC listening on %s (port %d, tls=%s)", self._address, port, credentials is not None)
        return port

    def _on_readiness(self, ready: bool) -> None:
        # The core may call from any thread; health updates must run on the server's loop, in call order.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._schedule_health, ready)

    def _schedule_health(self, ready: bool) -> None:
        task = asyncio.create_task(self._health.set(INFERENCE_SERVICE, _SERVING if ready else _NOT_SERVING))
        self._health_updates.add(task)
        task.add_done_callback(self._health_updates.discard)

    async def enter_graceful_shutdown(self) -> None:
        """Every service reports NOT_SERVING from now on (probes and balancers move away); calls still run."""
        await self._health.enter_graceful_shutdown()

    async def stop(self, grace: float) -> None:
        """Refuse new calls and wait up to `grace` seconds for in-flight ones, then cancel them."""
        await self.enter_graceful_shutdown()
        await self._server.stop(grace)
