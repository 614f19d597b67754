"""Memory of a server process under hostile endpoint traffic: the deployments of timed-out PUTs are visible,
deletable, bounded by the memory limit and stopped after the keep time; PUT/DELETE churn keeps RSS flat."""

from __future__ import annotations

from collections import Counter
from typing import Any

import aiohttp
import grpc
import pytest
from elser.v1 import endpoint_service_pb2, endpoint_service_pb2_grpc, types_pb2
from elser_server.model.package import ModelPackage
from serverprocess import ServerFactory
from support import PUT_BODY, eventually_async, footprint_as_served

KEEP_S = 5.0  # ELSER_TIMED_OUT_DEPLOYMENT_KEEP_S of these servers
HANG_GUARD_S = 60.0  # only against hangs: nothing here asserts on timing
MIB = 1 << 20


async def call(http: aiohttp.ClientSession, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with http.request(method, path, json=body) as response:
        return response.status, await response.json()


async def stopped(http: aiohttp.ClientSession, inference_id: str) -> None:
    """Waits until `inference_id` is gone (404): its timed-out PUT's deployment was stopped."""

    async def gone() -> bool:
        return (await call(http, "GET", f"/_inference/{inference_id}"))[0] == 404

    await eventually_async(gone, KEEP_S + HANG_GUARD_S, f"[{inference_id}] stopped")


async def test_a_timed_out_puts_deployment_is_visible_deletable_and_stopped(
    start_server: ServerFactory,
) -> None:
    server = start_server(ELSER_TIMED_OUT_DEPLOYMENT_KEEP_S=str(KEEP_S))
    async with aiohttp.ClientSession(server.base_url) as http:
        status, body = await call(http, "PUT", "/_inference/sparse_embedding/shown?timeout=0", PUT_BODY)
        assert (status, body["error"]["type"]) == (408, "status_exception")
        status, body = await call(http, "GET", "/_inference/shown")
        assert status == 200
        (shown,) = body["endpoints"]
        assert shown["inference_id"] == "shown"
        assert shown["deployment_state"] in {"downloading", "starting", "started", "fully_allocated"}
        listed = (await call(http, "GET", "/_inference/_all"))[1]["endpoints"]
        assert "shown" in [e["inference_id"] for e in listed]
        status, body = await call(http, "GET", "/_elser/deployments/shown/_stats")
        assert (status, body["deployment_stats"]["deployment_id"]) == (200, "shown")
        with grpc.insecure_channel(server.target) as channel:
            stub = endpoint_service_pb2_grpc.EndpointServiceStub(channel)
            got = stub.GetEndpoint(endpoint_service_pb2.GetEndpointRequest(inference_id="shown"), timeout=10)
        assert got.endpoint.HasField("deployment_state")
        assert got.endpoint.deployment_state != types_pb2.DEPLOYMENT_STATE_UNSPECIFIED

        status, body = await call(http, "DELETE", "/_inference/shown")
        assert (status, body["acknowledged"]) == (200, True)
        assert (await call(http, "GET", "/_inference/shown"))[0] == 404
        assert (await call(http, "GET", "/_elser/deployments/shown/_stats"))[0] == 404

        # Nobody PUTs again: the deployment is stopped after the keep time.
        assert (await call(http, "PUT", "/_inference/sparse_embedding/left?timeout=0", PUT_BODY))[0] == 408
        assert (await call(http, "GET", "/_inference/left"))[0] == 200
        await stopped(http, "left")


async def test_timed_out_puts_hold_no_more_than_the_memory_limit(
    start_server: ServerFactory, tiny_package: ModelPackage
) -> None:
    """15 PUTs with ?timeout=0 (each answered 408 at once) used to leave 15 deployments running for good: now the
    memory limit admits what fits (ES's 429 for the others) and the rest is stopped after the keep time."""
    footprint = footprint_as_served(tiny_package)
    server = start_server(
        ELSER_TIMED_OUT_DEPLOYMENT_KEEP_S=str(KEEP_S),
        ELSER_MEMORY_LIMIT=str(footprint.deployment_bytes(3)),  # the model and three allocations
    )
    async with aiohttp.ClientSession(server.base_url) as http:
        assert (await call(http, "PUT", "/_inference/sparse_embedding/stored", PUT_BODY))[0] == 200
        baseline = server.rss_kib()
        answers: Counter[tuple[int, str]] = Counter()
        for i in range(15):
            status, body = await call(
                http, "PUT", f"/_inference/sparse_embedding/orphan-{i}?timeout=0", PUT_BODY
            )
            answers[status, body["error"]["reason"]] += 1
        timed_out = "Timed out after [0s] waiting for model deployment to start."
        no_room = "Could not start deployment because no ML nodes with sufficient capacity were found"
        assert answers == Counter(
            {
                (
                    408,
                    f"{timed_out} Use the trained model stats API to track the state of the deployment.",
                ): 2,
                (429, no_room): 13,
            }
        )
        peak = server.rss_kib()
        for i in range(2):
            await stopped(http, f"orphan-{i}")
        listed = (await call(http, "GET", "/_inference/_all"))[1]["endpoints"]
        assert [e["inference_id"] for e in listed if "deployment_state" in e] == []
        assert (await call(http, "POST", "/_inference/stored", {"input": ["still here"]}))[0] == 200
        after = server.rss_kib()
    print(
        f"RSS: {baseline // 1024} MiB, with the orphans {peak // 1024} MiB, after they stopped {after // 1024} MiB"
    )
    # Two more allocations of the tiny model, and back: generous bounds, far below 15 deployments' worth.
    assert peak - baseline < 100 * 1024
    assert after - baseline < 50 * 1024


@pytest.mark.slow
async def test_put_delete_churn_keeps_rss_flat(start_server: ServerFactory) -> None:
    """Each PUT starts a deployment (sessions, threads) and each DELETE stops it: after a warm-up, RSS stays
    within 10 %. Before, freed session memory stayed in the allocator's arenas and every id kept a lock."""
    server = start_server()
    warm_up, measured = 60, 240
    rss: list[int] = []
    async with aiohttp.ClientSession(server.base_url) as http:
        for i in range(warm_up + measured):
            inference_id = f"churn-{i}-" + "x" * 2000
            assert (await call(http, "PUT", f"/_inference/sparse_embedding/{inference_id}", PUT_BODY))[
                0
            ] == 200
            assert (await call(http, "DELETE", f"/_inference/{inference_id}"))[0] == 200
            if i + 1 >= warm_up and (i + 1) % 20 == 0:
                rss.append(server.rss_kib())
    print("RSS every 20 cycles after the warm-up (MiB):", [r // 1024 for r in rss])
    assert max(rss[1:]) <= 1.10 * rss[0], f"RSS grew from {rss[0] // 1024} to {max(rss) // 1024} MiB"
