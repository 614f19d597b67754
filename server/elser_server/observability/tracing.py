"""OpenTelemetry tracing (the `otel` extra; imported only when `ELSER_TRACING_ENABLED=true`): one SERVER span
per gRPC call (health checks excluded) and per REST request, child of the caller's W3C `traceparent`, exported
over OTLP/gRPC. The standard `OTEL_EXPORTER_OTLP_*` and `OTEL_SERVICE_NAME` variables configure the export."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from elser_server.observability.spans import Attributes, SpanEnd

DEFAULT_SERVICE_NAME = "elser-inference"


class OtelSpans:
    """Spans through a provider of our own (not the global one): several services can share a process."""

    def __init__(self, exporter: SpanExporter | None = None) -> None:
        # Resource.create lets explicit attributes win over OTEL_SERVICE_NAME: name the service only as a default.
        named = {} if "OTEL_SERVICE_NAME" in os.environ else {"service.name": DEFAULT_SERVICE_NAME}
        self._provider = TracerProvider(resource=Resource.create(named))
        processor = (
            BatchSpanProcessor(OTLPSpanExporter()) if exporter is None else SimpleSpanProcessor(exporter)
        )
        self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer("elser_server")

    @contextmanager
    def server_span(self, name: str, carrier: Mapping[str, str], attributes: Attributes) -> Iterator[SpanEnd]:
        with self._tracer.start_as_current_span(
            name,
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes=dict(attributes),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:

            def end(final: Attributes, failed: bool) -> None:
                span.set_attributes(dict(final))
                if failed:
                    span.set_status(Status(StatusCode.ERROR))

            yield end

    def shutdown(self) -> None:
        self._provider.shutdown()
