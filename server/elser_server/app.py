"""Composition root: settings → core → transports in one asyncio loop; the app owns SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING

from elser_server.core.config import CoreConfig
from elser_server.core.model_manager import ModelManager
from elser_server.core.observer import CoreObserver
from elser_server.core.replication import ReplicaSync
from elser_server.core.service import InferenceCore
from elser_server.model.repository import remove_install_leftovers
from elser_server.observability.metrics import Metrics, MetricsServer
from elser_server.observability.spans import NO_SPANS, ServerSpans
from elser_server.security import ApiKeys, load_api_keys
from elser_server.settings import Settings
from elser_server.stores import open_store
from elser_server.transport.grpc.interceptors import server_interceptors
from elser_server.transport.grpc.server import GrpcTransport
from elser_server.transport.rest import middlewares
from elser_server.transport.rest.server import RestTransport

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)


def build_core(settings: Settings, observer: CoreObserver | None = None) -> InferenceCore:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for leftover in remove_install_leftovers(settings.model_cache_dir):
        log.info("removed %s, left by a model install that did not finish", leftover)
    store, shared = open_store(settings)
    replica = (
        ReplicaSync(
            shared,
            resync_interval_s=settings.store_resync_interval_s,
            startup_timeout_s=settings.store_startup_timeout_s,
        )
        if shared is not None
        else None
    )
    return InferenceCore(
        store,
        ModelManager(
            settings.model_repository,
            settings.model_cache_dir,
            observer,
            convert_quantize=settings.model_convert_quantize,
            runtime=settings.runtime,
            precision=settings.precision,
            processors=settings.effective_processors,
        ),
        CoreConfig.from_settings(settings),
        observer=observer,
        replica=replica,
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
            settings,
            interceptors=server_interceptors(
                self.metrics,
                api_keys,
                protect_health_and_reflection=settings.auth_health_and_reflection,
                spans=self.spans,
                max_concurrent_calls=settings.grpc_max_concurrent_calls,
            ),
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
        inner = [
            *([middlewares.authentication(api_keys, self.metrics)] if api_keys is not None else []),
            *([middlewares.log_bodies] if settings.log_bodies else []),
        ]
        return RestTransport(
            self.core,
            settings,
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
