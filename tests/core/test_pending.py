"""The deployment of a PUT that timed out (ES's 408): shown by GET with its state, reported by stats and watches,
stopped by DELETE or after the keep time unless a retried PUT adopts it; a PUT refused otherwise leaves nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from elser_server.core.errors import Code, ElserError
from elser_server.core.events import DeploymentEvent, Phase
from elser_server.core.service import InferenceCore
from support import eventually_async, make_core, put_body

HANG_GUARD_S = 60.0  # only against hangs: nothing here asserts on timing
# Two threads per allocation on one processor: the deployment stays starting (as ES), so PUT always times out.
STUCK = put_body(num_threads=2)


@pytest.fixture
async def core(tiny_repository: Path, tmp_path: Path) -> AsyncIterator[InferenceCore]:
    c = make_core(tiny_repository, tmp_path, processors=1)
    await c.start()
    yield c
    await c.close()


async def timed_out_put(core: InferenceCore, inference_id: str, body: dict[str, Any] = STUCK) -> None:
    with pytest.raises(ElserError) as exc:
        await core.put_endpoint(inference_id, "sparse_embedding", body, timeout_s=0)
    assert exc.value.http_status == 408


async def subscribe(core: InferenceCore, inference_id: str) -> AsyncIterator[DeploymentEvent]:
    """A watcher is subscribed once its first event (the current snapshot) was read."""
    stream = core.watch_deployment(inference_id)
    async with asyncio.timeout(HANG_GUARD_S):
        await anext(stream)
    return stream


async def final_event(stream: AsyncIterator[DeploymentEvent]) -> DeploymentEvent:
    async with asyncio.timeout(HANG_GUARD_S):
        return [event async for event in stream][-1]


async def test_get_list_and_stats_show_a_timed_out_puts_deployment(core: InferenceCore) -> None:
    await timed_out_put(core, "slow")
    (shown,) = await core.get_endpoints("slow")
    assert shown.to_dict()["service_settings"] == STUCK["service_settings"]

    async def starting() -> bool:
        return (await core.get_endpoints("slow"))[0].deployment_state is Phase.STARTING

    await eventually_async(starting, HANG_GUARD_S, "starting")
    assert (await core.get_endpoints("slow"))[0].to_dict()["deployment_state"] == "starting"
    assert "slow" in [e.inference_id for e in await core.get_endpoints()]
    report = core.deployment_stats("slow")
    assert report.snapshot.phase is Phase.STARTING and report.threads_per_allocation == 2
    # It is no endpoint yet: inference and updates do not find it (as in ES).
    with pytest.raises(ElserError) as exc:
        await core.infer("slow", None, ["text"])
    assert exc.value.code is Code.NOT_FOUND
    with pytest.raises(ElserError) as exc:
        await core.update_endpoint("slow", None, {"service_settings": {"num_allocations": 2}})
    assert exc.value.code is Code.NOT_FOUND


async def test_delete_stops_a_timed_out_puts_deployment(core: InferenceCore) -> None:
    await timed_out_put(core, "slow")
    watch = await subscribe(core, "slow")
    result = await core.delete_endpoint("slow")
    assert result.acknowledged
    assert core.deployment("slow") is None
    with pytest.raises(ElserError) as exc:
        await core.get_endpoints("slow")
    assert exc.value.code is Code.NOT_FOUND
    last = await final_event(watch)
    assert (last.phase, last.reason) == (Phase.STOPPED, "inference endpoint deleted")


async def test_an_unadopted_deployment_is_stopped_after_the_keep_time(
    tiny_repository: Path, tmp_path: Path
) -> None:
    core = make_core(tiny_repository, tmp_path, processors=1, timed_out_deployment_keep_s=0.2)
    await core.start()
    try:
        await timed_out_put(core, "gone")
        watch = await subscribe(core, "gone")
        last = await final_event(watch)
        assert last.phase is Phase.STOPPED
        assert last.reason == (
            "stopped: the PUT of [gone] timed out and no PUT adopted its deployment within [200ms]"
        )
        assert core.deployment("gone") is None
        assert "gone" not in [e.inference_id for e in await core.get_endpoints()]
    finally:
        await core.close()


async def test_a_retried_put_adopts_the_deployment_for_good(tiny_repository: Path, tmp_path: Path) -> None:
    core = make_core(tiny_repository, tmp_path, timed_out_deployment_keep_s=0.2)
    await core.start()
    try:
        await timed_out_put(core, "retried", put_body())
        started = core.deployment("retried")
        await core.put_endpoint("retried", "sparse_embedding", put_body())
        assert core.deployment("retried") is started
        (endpoint,) = await core.get_endpoints("retried")
        assert endpoint.deployment_state is None and "deployment_state" not in endpoint.to_dict()
        await asyncio.sleep(0.5)  # past the keep time of the timed-out PUT: nothing may stop the endpoint now
        assert len(await core.infer("retried", None, ["still served"])) == 1
    finally:
        await core.close()


async def test_a_put_refused_otherwise_leaves_no_deployment(tiny_repository: Path, tmp_path: Path) -> None:
    core = make_core(tiny_repository, tmp_path, memory_limit=1 << 20)  # not even the model fits
    await core.start()
    try:
        with pytest.raises(ElserError) as exc:
            await core.put_endpoint("big", "sparse_embedding", put_body())
        assert (exc.value.http_status, exc.value.reason) == (
            429,
            "Could not start deployment because no ML nodes with sufficient capacity were found",
        )
        assert core.deployment("big") is None
        with pytest.raises(ElserError):
            await core.get_endpoints("big")
    finally:
        await core.close()
