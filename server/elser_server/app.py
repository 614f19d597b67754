"""Composition root: settings → core → transports in one asyncio loop; the app owns SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING

from elser_server.core.models import ModelManager
from elser_server.core.observer import CoreObserver
from elser_server.core.service import AdaptiveConfig, BatchingConfig, InferenceCore, Limits
from elser_server.core.store import SqliteEndpointStore
from elser_server.observability.metrics import Metrics, MetricsServer
from elser_server.observability.spans import NO_SPANS, ServerSpans
from elser_server.security import ApiKeys, load_api_keys, server_ssl_context
from elser_server.settings import Settings
from elser_server.transport.grpc.interceptors import server_interceptors
from elser_server.transport.grpc.server import GrpcTransport
from elser_server.transport.rest import middlewares
from elser_server.transport.rest.server import RestTransport

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)


def build_core(settings: Settings, observer: CoreObserver | None = None) -> InferenceCore:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return InferenceCore(
        SqliteEndpointStore(settings.database_path),
        ModelManager(
            settings.model_repository,
            settings.model_cache_dir,
            observer,
            convert_quantize=settings.model_convert_quantize,
            runtime=settings.runtime,
            precision=settings.precision,
            processors=settings.effective_processors,
        ),
        limits=Limits(
            max_inputs_per_request=settings.max_inputs_per_request,
            max_input_bytes=settings.max_input_bytes,
            default_timeout_s=settings.default_timeout_s,
            put_timeout_s=settings.put_timeout_s,
        ),
        batching=BatchingConfig(
            queue_capacity=settings.queue_capacity,
            token_budget=settings.token_budget,
            max_batch_size=settings.max_batch_size,
            processors=settings.effective_processors,
            stop_grace_s=settings.shutdown_grace_s,
        ),
        adaptive=AdaptiveConfig(
            interval_s=settings.adaptive_interval_s,
            scale_to_zero_s=settings.scale_to_zero_s,
            scale_up_cooldown_s=settings.scale_up_cooldown_s,
        ),
        preload_default_endpoint=settings.preload_default_endpoint,
        observer=observer,
    )


def _spans(settings: Settings, exporter: SpanExporter | None) -> ServerSpans:
    if not settings.tracing_enabled:
        return NO_SPANS
    try:
        # The `otel` extra: imported only when tracing is asked for.
        from elser_server.observability.tracing import OtelSpans
    except ImportError as exc:
        raise RuntimeError(
            "tracing_enabled needs the OpenTelemetry packages: pip install 'elser-inference[otel]'"
        ) from exc
    return OtelSpans(exporter)


class Service:
    """The running service: core + gRPC + REST, with ES-style graceful drain."""

    def __init__(self, settings: Settings, *, span_exporter: SpanExporter | None = None) -> None:
        """`span_exporter`: where trace spans go when tracing is on (default: OTLP as OTEL_* configure it)."""
        self.settings = settings
        self.spans = _spans(settings, span_exporter)
        self.metrics = Metrics() if settings.metrics_enabled else None
        self.core = build_core(settings, self.metrics)
        if self.metrics is not None:
            self.metrics.watch_core(self.core)
        keys = load_api_keys(settings.api_keys_file, settings.api_keys)
        api_keys = ApiKeys(keys) if keys else None
        self.grpc = GrpcTransport(
            self.core,
            host=settings.host,
            port=settings.grpc_port,
            tls_cert_file=settings.tls_cert_file,
            tls_key_file=settings.tls_key_file,
            tls_client_ca_file=settings.tls_client_ca_file,
            require_client_cert=settings.tls_require_client_cert,
            max_message_bytes=settings.max_request_bytes,
            max_send_message_bytes=settings.max_response_bytes,
            keepalive_time_s=settings.grpc_keepalive_time_s,
            keepalive_timeout_s=settings.grpc_keepalive_timeout_s,
            min_client_ping_interval_s=settings.grpc_min_client_ping_interval_s,
            max_connection_idle_s=settings.grpc_max_connection_idle_s,
            max_connection_age_s=settings.grpc_max_connection_age_s,
            max_connection_age_grace_s=settings.grpc_max_connection_age_grace_s,
            reflection=settings.reflection,
            stream_window=settings.infer_stream_window,
            max_concurrent_streams=settings.grpc_max_concurrent_streams,
            interceptors=server_interceptors(
                self.metrics,
                api_keys,
                protect_health_and_reflection=settings.auth_health_and_reflection,
                spans=self.spans,
            ),
            log_bodies=settings.log_bodies,
        )
        self.rest = self._rest(settings, api_keys) if settings.http_enabled else None
        self.metrics_server = (
            MetricsServer(self.metrics, settings.host, settings.metrics_port)
            if self.metrics is not None
            else None
        )
        self.grpc_port = 0
        self.http_port = 0
        self.metrics_port = 0

    def _rest(self, settings: Settings, api_keys: ApiKeys | None) -> RestTransport:
        """The REST shim with the gRPC listener's TLS files, and the same keys."""
        ssl_context = None
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            ssl_context = server_ssl_context(
                settings.tls_cert_file,
                settings.tls_key_file,
                settings.tls_client_ca_file,
                settings.tls_require_client_cert,
            )
        inner = [
            *([middlewares.authentication(api_keys, self.metrics)] if api_keys is not None else []),
            *([middlewares.log_bodies] if settings.log_bodies else []),
        ]
        return RestTransport(
            self.core,
            host=settings.host,
            port=settings.http_port,
            max_body_bytes=settings.max_request_bytes,
            ssl_context=ssl_context,
            outer_middlewares=[middlewares.telemetry(self.metrics, self.spans)],
            inner_middlewares=inner,
        )

    async def start(self) -> None:
        await self.core.start()
        self.grpc_port = await self.grpc.start()
        if self.rest is not None:
            self.http_port = await self.rest.start()
        if self.metrics_server is not None:
            self.metrics_port = await self.metrics_server.start()
        log.info(
            "serving gRPC on %s:%d, HTTP on %s:%d, metrics on port %d",
            self.settings.host,
            self.grpc_port,
            self.settings.host,
            self.http_port,
            self.metrics_port,
        )

    async def stop(self) -> None:
        """SIGTERM sequence: NOT_SERVING → drain period → end long-lived streams → stop listeners with grace →
        stop deployments."""
        self.core.begin_drain()
        await self.grpc.enter_graceful_shutdown()
        await asyncio.sleep(self.settings.drain_s)
        self.core.end_streams()
        # One listener failing to stop must not cut short the other's grace period.
        outcomes = await asyncio.gather(
            self.grpc.stop(self.settings.shutdown_grace_s),
            *([self.rest.stop()] if self.rest is not None else []),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                log.error("a listener did not stop cleanly", exc_info=outcome)
        await self.core.close()
        if self.metrics_server is not None:  # last: scrapes still see the drain
            await self.metrics_server.stop()
        self.spans.shutdown()


async def serve(settings: Settings) -> None:
    service = Service(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    await stop.wait()
    log.info("shutting down: draining for %.1fs", settings.drain_s)
    await service.stop()
