"""Adaptive allocations: ES's scaler decisions on simulated load, and scale to/from zero on a real core."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from elser_server.core.adaptive import AdaptiveAllocator, AdaptiveScaler, KalmanFilter1D
from elser_server.core.config import AdaptiveConfig
from elser_server.core.deployment import State
from elser_server.core.events import AllocationCause, Phase
from elser_server.core.service import InferenceCore
from elser_server.core.stats import DeploymentStats
from elser_server.core.types import AdaptiveAllocations
from support import eventually_async, make_core, put_body


def test_kalman_filter_converges_and_follows_jumps() -> None:
    f = KalmanFilter1D(100.0, auto_detect_dynamics_change=True)
    for _ in range(50):
        f.add(10.0, 1.0)
    assert f.value == pytest.approx(10.0) and f.lower < 10.0 < f.upper
    f.add(1000.0, 1.0)  # a jump far outside the estimate is a change of dynamics: follow it at once
    assert f.value is not None and f.value > 900.0


@dataclass
class _Load:
    """A ScalableDeployment whose counters advance as if `rate` requests/s of `seconds` each were served;
    scale_to records the scaler's decisions instead of starting sessions."""

    target_allocations: int
    deployment_id: str = "d"
    state: State = State.STARTED
    queued: int = 0
    stats: DeploymentStats = field(default_factory=DeploymentStats)
    changes: list[tuple[float, int]] = field(default_factory=list)  # (tick time, new target)
    now: float = 0.0

    def advance(self, rate: float, seconds: float, dt: float) -> None:
        served = int(rate * dt)
        self.stats.inference_count += served
        self.stats.inference_time_s += served * seconds
        self.now += dt

    async def scale_to(self, target: int, cause: AllocationCause) -> None:
        self.changes.append((self.now, target))
        self.target_allocations = target


async def test_load_scales_up_to_max_and_idle_scales_down_to_min() -> None:
    load = _Load(target_allocations=1)
    settings = AdaptiveAllocations(True, 1, 4)
    config = AdaptiveConfig(interval_s=10, scale_to_zero_s=86_400.0, scale_up_cooldown_s=30)
    allocator = AdaptiveAllocator(lambda: [(load, settings)], config)
    for _ in range(12):  # 40 req/s × 0.1 s = 4 allocations' worth of work: capped at max 4
        load.advance(40, 0.1, 10)
        await allocator.tick(load.now)
    assert load.target_allocations == 4
    ups = [n for _, n in load.changes]
    assert ups == sorted(ups)  # only ever up under load
    last_up = load.changes[-1][0]
    for _ in range(30):  # idle from now on
        load.advance(0, 0.1, 10)
        await allocator.tick(load.now)
    downs = [(t, n) for t, n in load.changes if t > last_up]
    assert downs, "idle never scaled down"
    assert all(t - last_up >= 30 for t, _ in downs)  # not within the cool-down after the last scale-up
    assert load.target_allocations == 1  # min 1: never below


def test_idle_with_min_zero_goes_to_zero_only_after_the_idle_period() -> None:
    load = _Load(target_allocations=2)
    scaler = AdaptiveScaler()
    settings = AdaptiveAllocations(True, 0, 8)
    scaler.observe(load, 0.0)
    scaler.observe(load, 10.0)
    assert scaler.decide(2, settings, 10.0, scale_to_zero_s=60.0) == 1
    scaler.last_request_at = 0.0
    assert scaler.decide(1, settings, 61.0, scale_to_zero_s=60.0) == 0


@pytest.fixture
async def adaptive_core(tiny_repository: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    core = make_core(
        tiny_repository, tmp_path, adaptive_interval_s=0.05, scale_to_zero_s=0.3, scale_up_cooldown_s=0.0
    )
    await core.start()
    yield core
    await core.close()


async def test_scale_to_zero_then_next_request_is_queued_and_served(adaptive_core: InferenceCore) -> None:
    body = put_body(
        adaptive_allocations={"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 2}
    )
    await adaptive_core.put_endpoint("auto", "sparse_embedding", body)
    events = adaptive_core.watch_deployment("auto")
    first = await anext(events)
    assert first.phase in (Phase.STARTED, Phase.FULLY_ALLOCATED)
    deployment = adaptive_core.deployment("auto")
    assert deployment is not None
    await eventually_async(lambda: deployment.allocation_count == 0, 30, "the scale to zero")
    results = await adaptive_core.infer("auto", None, ["wake up"])
    assert len(results) == 1 and len(results[0].token_ids) > 0
    causes = []
    async with asyncio.timeout(5):
        async for event in events:
            causes.append(event.cause)
            if event.cause is AllocationCause.SCALE_FROM_ZERO and event.current_allocations == 1:
                break
    assert AllocationCause.SCALE_TO_ZERO in causes
    (listed,) = await adaptive_core.get_endpoints("auto")
    assert listed.service_settings.adaptive_allocations is not None
