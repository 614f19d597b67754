"""OpenTelemetry tracing (the `otel` extra): server spans for both transports, caller context continued,
health checks left out."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import grpc
import pytest
from elser.v1 import endpoint_service_pb2 as es_pb2
from elser.v1 import endpoint_service_pb2_grpc as es_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import running, server_settings

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


async def test_spans_for_grpc_and_rest_but_not_health(tiny_repository: Path, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    settings = server_settings(tiny_repository, tmp_path, tracing_enabled=True)
    async with (
        running(settings, span_exporter=exporter) as service,
        grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel,
        aiohttp.ClientSession(f"http://127.0.0.1:{service.http_port}") as http,
    ):
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        stub = es_grpc.EndpointServiceStub(channel)
        await stub.ListEndpoints(es_pb2.ListEndpointsRequest(), metadata=(("traceparent", TRACEPARENT),))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetEndpoint(es_pb2.GetEndpointRequest(inference_id="missing"))
        async with http.get("/_inference/missing", headers={"traceparent": TRACEPARENT}) as response:
            assert response.status == 404
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {
        "/elser.v1.EndpointService/ListEndpoints",
        "/elser.v1.EndpointService/GetEndpoint",
        "GET /_inference/{inference_id}",
    }
    listed = spans["/elser.v1.EndpointService/ListEndpoints"]
    assert listed.kind is SpanKind.SERVER
    assert f"{listed.context.trace_id:032x}" == TRACE_ID
    assert listed.attributes is not None and listed.attributes["rpc.grpc.status_code"] == 0
    missing = spans["/elser.v1.EndpointService/GetEndpoint"]
    assert missing.attributes is not None and missing.attributes["rpc.grpc.status_code"] == 5  # NOT_FOUND
    assert missing.status.status_code is StatusCode.UNSET  # the caller's fault, not the server's
    rest = spans["GET /_inference/{inference_id}"]
    assert f"{rest.context.trace_id:032x}" == TRACE_ID
    assert rest.attributes is not None and rest.attributes["http.response.status_code"] == 404
