"""Adaptive allocations, after Elasticsearch's AdaptiveAllocationsScaler.

Each tick, a deployment's request rate and per-request inference time are estimated with 1-D Kalman filters;
allocations go up while the lower estimate of load per allocation exceeds 0.9 and down while the upper estimate
would stay under 0.85 with one fewer, clamped to [min, max] (32 without an explicit max). With min 0, a deployment
idle for `scale_to_zero_s` goes to zero; the next request scales it back to one and waits (queued, not failed).
No scale-down within `scale_up_cooldown_s` of a scale-up.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from elser_server.core.config import AdaptiveConfig
from elser_server.core.defaults import DEFAULT_MAX_ALLOCATIONS
from elser_server.core.deployment import State
from elser_server.core.events import AllocationCause
from elser_server.core.stats import DeploymentStats
from elser_server.core.types import AdaptiveAllocations

log = logging.getLogger(__name__)

SCALE_UP_THRESHOLD = 0.9
SCALE_DOWN_THRESHOLD = 0.85
SMOOTHING = 100.0
DYNAMICS_CHANGE_THRESHOLD = 100.0


class KalmanFilter1D:
    """ES's filter: process variance is measurement variance / smoothing, except after a change of dynamics
    (flagged from outside, or detected as a jump), where the estimate is allowed to move at once."""

    def __init__(self, smoothing: float, auto_detect_dynamics_change: bool) -> None:
        self.smoothing = smoothing
        self.auto_detect = auto_detect_dynamics_change
        self.value: float | None = None
        self.variance = math.inf
        self._changed = False

    @property
    def has_value(self) -> bool:
        return self.value is not None and math.isfinite(self.variance)

    @property
    def lower(self) -> float:
        assert self.value is not None
        return self.value - math.sqrt(self.variance)

    @property
    def upper(self) -> float:
        assert self.value is not None
        return self.value + math.sqrt(self.variance)

    def add(self, x: float, measurement_variance: float, dynamics_changed: bool = False) -> None:
        if self.value is None or not math.isfinite(self.variance):
            self.value, self.variance = x, measurement_variance
            return
        process_variance = measurement_variance / self.smoothing
        jump = (x - self.value) ** 2 / (measurement_variance + self.variance) > DYNAMICS_CHANGE_THRESHOLD
        changed = dynamics_changed or (self.auto_detect and jump)
        if changed or self._changed:
            process_variance = x * x
        self._changed = changed
        gain = (self.variance + process_variance) / (self.variance + process_variance + measurement_variance)
        self.value += gain * (x - self.value)
        self.variance = (1 - gain) * (self.variance + process_variance)


@dataclass
class _Baseline:
    success: int
    failed: int
    inference_time_s: float
    at: float


class ScalableDeployment(Protocol):
    """What the scaler reads and drives (core/deployment.py's Deployment)."""

    @property
    def deployment_id(self) -> str: ...
    @property
    def stats(self) -> DeploymentStats: ...
    @property
    def queued(self) -> int: ...
    @property
    def state(self) -> State: ...
    @property
    def target_allocations(self) -> int: ...
    async def scale_to(self, target: int, cause: AllocationCause) -> None: ...


class AdaptiveScaler:
    """The estimates and decision for one deployment."""

    def __init__(self) -> None:
        self.rate = KalmanFilter1D(SMOOTHING, auto_detect_dynamics_change=True)
        self.inference_time = KalmanFilter1D(SMOOTHING, auto_detect_dynamics_change=False)
        self._baseline: _Baseline | None = None
        self._allocations_changed = False
        self.last_request_at = time.monotonic()
        self.observations = 0  # ticks observed

    def observe(self, deployment: ScalableDeployment, now: float) -> None:
        self.observations += 1
        stats = deployment.stats
        failed = stats.error_count + stats.timeout_count + stats.rejected_execution_count
        previous, self._baseline = (
            self._baseline,
            _Baseline(stats.inference_count, failed, stats.inference_time_s, now),
        )
        if previous is None:
            return  # the first tick only records baselines
        dt = now - previous.at
        if dt <= 0:
            return
        success = max(0, stats.inference_count - previous.success)
        failures = max(0, failed - previous.failed)
        pending = deployment.queued
        requests = success + pending + failures
        if requests > 0:
            self.last_request_at = now
        rate = requests / dt
        estimate = self.rate.value if self.rate.value is not None else rate
        self.rate.add(rate, max(1.0, estimate * dt) / (dt * dt))
        if success > 0:
            seconds = max(0.0, stats.inference_time_s - previous.inference_time_s) / success
            estimate_t = self.inference_time.value if self.inference_time.value is not None else seconds
            variance = max(estimate_t * estimate_t, 1e-12) / requests
            self.inference_time.add(seconds, variance, dynamics_changed=self._allocations_changed)
        self._allocations_changed = False

    def allocations_changed(self) -> None:
        self._allocations_changed = True

    def decide(
        self, current: int, settings: AdaptiveAllocations, now: float, scale_to_zero_s: float
    ) -> int | None:
        if not self.rate.has_value:
            return None
        has_time = self.inference_time.has_value
        load_lower = max(0.0, self.rate.lower) * (max(0.0, self.inference_time.lower) if has_time else 1.0)
        load_upper = self.rate.upper * (self.inference_time.upper if has_time else 1.0)
        n = current
        while load_lower > 0 and (n == 0 or load_lower / n > SCALE_UP_THRESHOLD):
            n += 1
        while n > 1 and load_upper / (n - 1) < SCALE_DOWN_THRESHOLD:
            n -= 1
        maximum = settings.max_number_of_allocations
        minimum = settings.min_number_of_allocations
        n = min(n, maximum if maximum is not None else DEFAULT_MAX_ALLOCATIONS)
        n = max(n, minimum or 0)
        if not minimum and now - self.last_request_at > scale_to_zero_s:
            n = 0
        return n if n != current else None


AdaptiveTarget = tuple[ScalableDeployment, AdaptiveAllocations]


class AdaptiveAllocator:
    """Runs the scaler of every deployment with adaptive allocations enabled, every `interval_s`."""

    def __init__(
        self,
        targets: Callable[[], Iterable[AdaptiveTarget]],
        config: AdaptiveConfig,
    ) -> None:
        self._targets = targets
        self.interval_s = config.interval_s
        self.scale_to_zero_s = config.scale_to_zero_s
        self.scale_up_cooldown_s = config.scale_up_cooldown_s
        # Per deployment id, with the deployment the estimates are of: a new deployment under an old id (deleted
        # and created again) starts afresh. Ids not seen in a tick are dropped.
        self._scalers: dict[str, tuple[ScalableDeployment, AdaptiveScaler]] = {}
        self._last_scale_up: dict[str, float] = {}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.tick()
            except Exception:
                log.exception("adaptive allocations tick failed")

    async def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        live = set()
        for deployment, settings in self._targets():
            dep_id = deployment.deployment_id
            live.add(dep_id)
            known = self._scalers.get(dep_id)
            if known is None or known[0] is not deployment:
                known = self._scalers[dep_id] = (deployment, AdaptiveScaler())
                self._last_scale_up.pop(dep_id, None)
            scaler = known[1]
            scaler.observe(deployment, now)
            if deployment.state is not State.STARTED:
                continue
            current = deployment.target_allocations
            wanted = scaler.decide(current, settings, now, self.scale_to_zero_s)
            if wanted is None:
                continue
            recently_up = now - self._last_scale_up.get(dep_id, -math.inf) < self.scale_up_cooldown_s
            if wanted < current and recently_up:
                continue
            if wanted > current:
                self._last_scale_up[dep_id] = now
                cause = AllocationCause.ADAPTIVE_SCALE_UP
            else:
                cause = AllocationCause.SCALE_TO_ZERO if wanted == 0 else AllocationCause.ADAPTIVE_SCALE_DOWN
            log.info("adaptive allocations scaler: scaled [%s] to [%d] allocations.", dep_id, wanted)
            await deployment.scale_to(wanted, cause)
            scaler.allocations_changed()
        for gone in set(self._scalers) - live:
            del self._scalers[gone]
            self._last_scale_up.pop(gone, None)

    def scaler(self, deployment_id: str) -> AdaptiveScaler | None:
        """The estimates of `deployment_id`; None until its first tick."""
        known = self._scalers.get(deployment_id)
        return known[1] if known is not None else None

    @property
    def tracked_ids(self) -> int:
        """Deployment ids the scaler keeps estimates for."""
        return len(self._scalers)
