"""Metrics scraped over HTTP from a running service after traffic on both transports."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import grpc
import pytest
from elser.v1 import inference_service_pb2 as is_pb2
from elser.v1 import inference_service_pb2_grpc as is_grpc
from prometheus_client.parser import text_string_to_metric_families
from support import PUT_BODY, eventually_async, running, server_settings

ENDPOINT = "my-elser"
INFER = "/elser.v1.InferenceService/Infer"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _scrape(port: int) -> tuple[str, Samples]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def test_metrics_after_traffic(tiny_repository: Path, tmp_path: Path) -> None:
    settings = server_settings(tiny_repository, tmp_path, api_keys="k")
    auth = {"Authorization": "Bearer k"}
    async with (
        running(settings) as service,
        aiohttp.ClientSession(f"http://127.0.0.1:{service.http_port}") as http,
        grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel,
    ):
        async with http.put(
            f"/_inference/sparse_embedding/{ENDPOINT}", json=PUT_BODY, headers=auth
        ) as response:
            assert response.status == 200
        async with http.post(
            f"/_inference/{ENDPOINT}", json={"input": ["a dog", "the cat sat on the mat"]}, headers=auth
        ) as response:
            assert response.status == 200
        async with http.get("/_inference/nope", headers=auth) as response:
            assert response.status == 404
        async with http.get("/_inference") as response:
            assert response.status == 401
        stub = is_grpc.InferenceServiceStub(channel)
        await stub.Infer(
            is_pb2.InferRequest(inference_id=ENDPOINT, input=["one", "two words", "three more words"]),
            metadata=(("authorization", "Bearer k"),),
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Infer(is_pb2.InferRequest(inference_id=ENDPOINT, input=["no key"]))
        # An aborted call's status reaches the client before the server-side wrapper records it: wait for it.
        unauthenticated = (
            "elser_grpc_requests_total",
            frozenset({"method": INFER, "code": "UNAUTHENTICATED"}.items()),
        )

        async def recorded() -> bool:
            return unauthenticated in (await _scrape(service.metrics_port))[1]

        await eventually_async(recorded, 30, "the UNAUTHENTICATED call in the metrics")
        text, samples = await _scrape(service.metrics_port)

    route = "/_inference/{task_type}/{inference_id}"
    assert _value(samples, "elser_http_requests_total", method="PUT", route=route, status="200") == 1
    assert (
        _value(
            samples,
            "elser_http_requests_total",
            method="POST",
            route="/_inference/{inference_id}",
            status="200",
        )
        == 1
    )
    assert (
        _value(
            samples,
            "elser_http_requests_total",
            method="GET",
            route="/_inference/{inference_id}",
            status="404",
        )
        == 1
    )
    assert _value(samples, "elser_http_requests_total", method="GET", route="/_inference", status="401") == 1
    duration = _value(
        samples,
        "elser_http_request_duration_seconds_count",
        method="POST",
        route="/_inference/{inference_id}",
        status="200",
    )
    assert duration == 1
    infer = INFER
    assert _value(samples, "elser_grpc_requests_total", method=infer, code="OK") == 1
    assert _value(samples, "elser_grpc_request_duration_seconds_count", method=infer, code="OK") == 1
    assert _value(samples, "elser_grpc_request_duration_seconds_sum", method=infer, code="OK") > 0
    assert _value(samples, "elser_grpc_requests_total", method=infer, code="UNAUTHENTICATED") == 1

    # PUT's validation inference (1 text) + 2 REST texts + 3 gRPC texts, all through the one deployment.
    dep = {"deployment": ENDPOINT}
    assert _value(samples, "elser_batch_size_items_sum", **dep) == 6
    assert _value(samples, "elser_queue_wait_seconds_count", **dep) == 6
    batches = _value(samples, "elser_batch_size_items_count", **dep)
    assert 3 <= batches <= 6
    assert _value(samples, "elser_inference_duration_seconds_count", **dep) == batches
    tokens = _value(samples, "elser_tokens_total", **dep)
    assert tokens >= 6 * 3  # every text is at least [CLS] word [SEP]
    assert _value(samples, "elser_batch_size_tokens_sum", **dep) >= tokens  # padded ≥ real
    assert _value(samples, "elser_inferences_total", **dep) == 6
    assert _value(samples, "elser_queue_depth", **dep) == 0
    assert _value(samples, "elser_allocations", **dep) == 1
    assert _value(samples, "elser_allocations_target", **dep) == 1
    assert _value(samples, "elser_rejections_total", deployment="", reason="auth") == 2
    assert _value(samples, "elser_rejections_total", deployment=ENDPOINT, reason="queue_full") == 0
    assert _value(samples, "elser_peak_throughput_per_minute", **dep) == 6
    mean = _value(samples, "elser_inference_time_per_text_seconds", **dep, statistic="mean")
    p99 = _value(samples, "elser_inference_time_per_text_seconds", **dep, statistic="p99")
    assert mean > 0 and p99 > 0
    assert _value(samples, "elser_model_download_bytes_total", model=".elser_model_2") > 0
    assert "# TYPE elser_queue_wait_seconds histogram" in text


async def test_metrics_can_be_turned_off(tiny_repository: Path, tmp_path: Path) -> None:
    async with running(server_settings(tiny_repository, tmp_path, metrics_enabled=False)) as service:
        assert service.metrics_server is None and service.metrics_port == 0


async def test_a_deleted_endpoint_leaves_no_deployment_series(tiny_repository: Path, tmp_path: Path) -> None:
    """Series per deployment id are dropped with the deployment: endpoint churn does not grow the registry."""
    settings = server_settings(tiny_repository, tmp_path)
    async with (
        running(settings) as service,
        aiohttp.ClientSession(f"http://127.0.0.1:{service.http_port}") as http,
    ):
        async with http.put("/_inference/sparse_embedding/short-lived", json=PUT_BODY) as response:
            assert response.status == 200
        async with http.post("/_inference/short-lived", json={"input": ["a dog"]}) as response:
            assert response.status == 200
        text, _ = await _scrape(service.metrics_port)
        assert 'deployment="short-lived"' in text
        async with http.delete("/_inference/short-lived") as response:
            assert response.status == 200
        text, _ = await _scrape(service.metrics_port)
    assert 'deployment="short-lived"' not in text
