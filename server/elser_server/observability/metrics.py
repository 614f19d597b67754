"""Prometheus metrics on their own port.

Per-call series (RED per gRPC method / REST route and status) and per-batch series (queue wait, batch size,
tokens, model time) are observed as they happen; deployment state (queue depth, allocations, rejections) is read
from the core's deployment stats at scrape time by a collector, so it costs nothing on the hot path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from elser_server.core.service import InferenceCore

# Latency buckets (seconds) from sub-millisecond health checks to requests queued for many seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_ITEM_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
BATCH_TOKEN_BUCKETS = (16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)


class Metrics:
    """Every metric of one service instance, in its own registry (several servers can share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.grpc_requests = Counter(
            "elser_grpc_requests", "gRPC calls handled.", ["method", "code"], registry=r
        )
        self.grpc_duration = Histogram(
            "elser_grpc_request_duration_seconds",
            "gRPC call duration (streams: until the last message).",
            ["method", "code"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "elser_http_requests", "REST requests handled.", ["method", "route", "status"], registry=r
        )
        self.grpc_in_flight = Gauge(
            "elser_grpc_calls_in_flight",
            "gRPC calls being handled, as the server-wide call limit counts them (health and reflection not).",
            registry=r,
        )
        self.http_in_progress = Gauge(
            "elser_http_requests_in_progress", "REST requests being handled.", ["method", "route"], registry=r
        )
        self.http_duration = Histogram(
            "elser_http_request_duration_seconds",
            "REST request duration.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "elser_queue_wait_seconds",
            "Time a text waited in the deployment queue before its model call.",
            ["deployment"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_items = Histogram(
            "elser_batch_size_items",
            "Texts per model call.",
            ["deployment"],
            buckets=BATCH_ITEM_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "elser_batch_size_tokens",
            "Padded tokens per model call (texts × longest text: what the token budget bounds).",
            ["deployment"],
            buckets=BATCH_TOKEN_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "elser_tokens", "Tokens embedded (unpadded); rate() is tokens/s.", ["deployment"], registry=r
        )
        self.inference_time = Histogram(
            "elser_inference_duration_seconds",
            "Model call (onnxruntime run + sparsification) time per batch.",
            ["deployment"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.download_bytes = Counter(
            "elser_model_download_bytes", "Model bytes fetched from the repository.", ["model"], registry=r
        )
        self.download_failures = Counter(
            "elser_model_download_failures", "Model installs that failed.", ["model"], registry=r
        )
        self._download_done: dict[str, int] = {}
        self.auth_rejections = 0
        self.call_limit_rejections = 0

    # --- transports ----------------------------------------------------------------------------------------

    def observe_grpc(self, method: str, code: str, seconds: float) -> None:
        self.grpc_requests.labels(method, code).inc()
        self.grpc_duration.labels(method, code).observe(seconds)

    def http_started(self, method: str, route: str) -> None:
        self.http_in_progress.labels(method, route).inc()

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """A request handled (`http_started` was called for it)."""
        self.http_in_progress.labels(method, route).dec()
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route, str(status)).observe(seconds)

    def auth_rejected(self) -> None:
        self.auth_rejections += 1

    def calls_rejected(self) -> None:
        self.call_limit_rejections += 1

    # --- the core (CoreObserver) --------------------------------------------------------------------------

    def batch_done(
        self,
        deployment_id: str,
        queue_waits_s: Sequence[float],
        tokens: int,
        padded_tokens: int,
        inference_s: float,
    ) -> None:
        wait = self.queue_wait.labels(deployment_id)
        for seconds in queue_waits_s:
            wait.observe(seconds)
        self.batch_items.labels(deployment_id).observe(len(queue_waits_s))
        self.batch_tokens.labels(deployment_id).observe(padded_tokens)
        self.tokens.labels(deployment_id).inc(tokens)
        self.inference_time.labels(deployment_id).observe(inference_s)

    def deployment_stopped(self, deployment_id: str) -> None:
        # A series per deployment id ever seen would grow without bound under endpoint churn.
        for metric in (
            self.queue_wait,
            self.batch_items,
            self.batch_tokens,
            self.tokens,
            self.inference_time,
        ):
            with contextlib.suppress(KeyError):
                metric.remove(deployment_id)

    def download_progress(self, model_id: str, done: int, total: int) -> None:
        # Progress is cumulative per install and restarts at 0 for the next one (or a retried file).
        previous = self._download_done.get(model_id, 0)
        delta = done - previous if done >= previous else done
        self._download_done[model_id] = done
        if delta > 0:
            self.download_bytes.labels(model_id).inc(delta)

    def download_failed(self, model_id: str) -> None:
        self.download_failures.labels(model_id).inc()

    def watch_core(self, core: InferenceCore) -> None:
        """Expose the core's deployment state, read at scrape time."""
        self.registry.register(_DeploymentCollector(core, self))


class _DeploymentCollector(Collector):
    def __init__(self, core: InferenceCore, metrics: Metrics) -> None:
        self._core = core
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        labels = ["deployment"]
        depth = GaugeMetricFamily(
            "elser_queue_depth", "Texts waiting in the deployment queue.", labels=labels
        )
        capacity = GaugeMetricFamily(
            "elser_queue_capacity", "Bulk texts the deployment queue holds before rejecting.", labels=labels
        )
        current = GaugeMetricFamily("elser_allocations", "Allocations running.", labels=labels)
        target = GaugeMetricFamily("elser_allocations_target", "Allocations wanted.", labels=labels)
        inferences = CounterMetricFamily("elser_inferences", "Texts embedded.", labels=labels)
        errors = CounterMetricFamily(
            "elser_inference_errors", "Texts whose model call failed.", labels=labels
        )
        rejections = CounterMetricFamily(
            "elser_rejections",
            "Work refused or abandoned, by reason: queue_full (requests), deadline and cancelled (texts), "
            "auth (calls, deployment empty).",
            labels=["deployment", "reason"],
        )
        peak = GaugeMetricFamily(
            "elser_peak_throughput_per_minute",
            "Most texts embedded in one minute since the deployment started (ES peak_throughput_per_minute).",
            labels=labels,
        )
        per_text = GaugeMetricFamily(
            "elser_inference_time_per_text_seconds",
            "Model time per text: mean since start, and p99 over the recent texts (ES deployment stats).",
            labels=["deployment", "statistic"],
        )
        for endpoint in self._core.known_endpoints():
            report = self._core.deployment_stats(endpoint.inference_id)
            dep, stats = [endpoint.inference_id], report.stats
            depth.add_metric(dep, report.queued)
            capacity.add_metric(dep, report.queue_capacity)
            current.add_metric(dep, report.snapshot.current_allocations)
            target.add_metric(dep, report.snapshot.target_allocations)
            inferences.add_metric(dep, stats.inference_count)
            errors.add_metric(dep, stats.error_count)
            rejections.add_metric([*dep, "queue_full"], stats.rejected_execution_count)
            rejections.add_metric([*dep, "deadline"], stats.timeout_count)
            rejections.add_metric([*dep, "cancelled"], stats.dropped_count)
            peak.add_metric(dep, stats.peak_throughput_per_minute)
            for statistic, value_ms in (
                ("mean", stats.average_inference_time_ms),
                ("p99", stats.p99_inference_time_ms),
            ):
                if value_ms is not None:
                    per_text.add_metric([*dep, statistic], value_ms / 1000.0)
        rejections.add_metric(["", "auth"], self._metrics.auth_rejections)
        rejections.add_metric(["", "calls_in_flight"], self._metrics.call_limit_rejections)
        store = GaugeMetricFamily(
            "elser_store_available",
            "1 while the endpoint store is reachable; 0 while a shared store is not (endpoints are served from "
            "the last known state and changes are refused).",
        )
        store.add_metric([], 1.0 if self._core.store_available else 0.0)
        yield from (depth, capacity, current, target, inferences, errors, rejections, peak, per_text, store)


class MetricsServer:
    """`GET /metrics` on its own listener (in the service's loop: a scrape runs the collector, which is cheap)."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self._registry = metrics.registry
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    async def _scrape(self, _: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self._registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/metrics", self._scrape)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self._host, self._port).start()
        self._runner = runner
        return int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
