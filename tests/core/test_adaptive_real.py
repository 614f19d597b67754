"""Adaptive allocations driven by real load: sustained concurrent `infer` calls on a real InferenceCore (tiny
model, real onnxruntime) make the real AdaptiveAllocator scale the deployment from 1 to its max of 2.

The scaler's own decisions on simulated counters are in test_adaptive.py; here nothing is simulated: the rate
and inference-time estimates come from the deployment's real stats, sampled every `interval_s`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from elser_server.core.events import AllocationCause, DeploymentEvent, Phase
from elser_server.core.types import InferOptions, Priority
from support import eventually_async, make_core, put_body

HANG_GUARD_S = 60.0  # only against hangs: the test waits for the event, it never asserts on timing
BODY = put_body(
    adaptive_allocations={"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 2}
)


async def test_sustained_load_scales_up_to_max_with_an_adaptive_event(
    tiny_repository: Path, tmp_path: Path
) -> None:
    core = make_core(
        tiny_repository,
        tmp_path,
        default_timeout_s=120.0,
        processors=2,  # room for 2 one-thread allocations whatever the machine
        # a short tick; a long cool-down so the scale-up is not undone between load bursts
        adaptive_interval_s=0.1,
        scale_up_cooldown_s=3600.0,
    )
    await core.start()
    stop = asyncio.Event()
    try:
        await core.put_endpoint("auto", "sparse_embedding", BODY)
        deployment = core.deployment("auto")
        assert (deployment.target_allocations, deployment.allocation_count) == (1, 1)  # starts at the min

        events: AsyncIterator[DeploymentEvent] = core.watch_deployment("auto")
        first = await anext(events)
        assert first.current_allocations == 1

        # Control: idle, the scaler ticks (it has a rate estimate and samples again) and keeps the min.
        def ticked_with_an_estimate() -> bool:
            scaler = core.adaptive_scaler("auto")
            return scaler is not None and scaler.rate.has_value and scaler.observations >= 5

        await eventually_async(ticked_with_an_estimate, HANG_GUARD_S, "five ticks of the scaler")
        assert deployment.target_allocations == 1 and deployment.allocation_count == 1

        texts = [f"sustained load text number {i} " * 12 for i in range(16)]
        served = 0

        async def client() -> None:
            nonlocal served
            while not stop.is_set():
                results = await core.infer("auto", None, texts, InferOptions(priority=Priority.BULK))
                assert len(results) == len(texts)
                served += len(results)

        clients = [asyncio.create_task(client()) for _ in range(8)]
        seen: list[DeploymentEvent] = []
        try:
            async with asyncio.timeout(HANG_GUARD_S):
                async for event in events:
                    seen.append(event)
                    if event.cause is AllocationCause.ADAPTIVE_SCALE_UP and event.current_allocations == 2:
                        break
            # The scale-up may come before the first request is answered (the queue alone shows the load).
            await eventually_async(lambda: served > 0, HANG_GUARD_S, "the load to be served")
        finally:
            stop.set()
            for task in clients:
                task.cancel()
            results = await asyncio.gather(*clients, return_exceptions=True)
        failures = [
            r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
        ]
        assert not failures, failures  # the load itself was served without errors while scaling

        scale_up = seen[-1]
        assert scale_up.target_allocations == 2 and scale_up.phase is Phase.FULLY_ALLOCATED
        assert served > 0 and deployment.stats.inference_count >= served
        assert deployment.allocation_count == 2
        report = core.deployment_stats("auto")
        assert report.snapshot.cause is AllocationCause.ADAPTIVE_SCALE_UP
        assert (report.snapshot.target_allocations, report.snapshot.current_allocations) == (2, 2)
        (listed,) = await core.get_endpoints("auto")
        assert listed.service_settings.num_allocations == 2  # GET shows the live count
        assert listed.service_settings.adaptive_allocations is not None
        # never beyond the max, however long the load lasted
        assert all(e.target_allocations <= 2 for e in seen)
        # the two allocations both serve
        assert len(await core.infer("auto", None, texts)) == len(texts)
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]
    finally:
        stop.set()
        await core.close()
