"""A deployment's counters, after ES's trained-model deployment stats (shown by `_stats` and
GetDeploymentStats, and read by the adaptive-allocations scaler)."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class DeploymentStats:
    inference_count: int = 0
    error_count: int = 0
    rejected_execution_count: int = 0
    timeout_count: int = 0
    dropped_count: int = 0
    batch_count: int = 0
    inference_time_s: float = 0.0
    queue_time_s: float = 0.0
    dequeued_count: int = 0
    recent_item_times_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=2048)
    )
    last_access: float | None = None
    peak_throughput_per_minute: int = 0
    _minute_start: float = 0.0
    _minute_count: int = 0

    def record_batch(self, items: int, seconds: float, now: float) -> None:
        self.batch_count += 1
        self.inference_count += items
        self.inference_time_s += seconds
        per_item_ms = seconds * 1000.0 / max(items, 1)
        self.recent_item_times_ms.extend([per_item_ms] * min(items, 64))
        self.last_access = time.time()  # wall clock: shown as a timestamp (`now` is monotonic)
        if now - self._minute_start >= 60.0:
            self._minute_start, self._minute_count = now, 0
        self._minute_count += items
        self.peak_throughput_per_minute = max(self.peak_throughput_per_minute, self._minute_count)

    @property
    def average_inference_time_ms(self) -> float | None:
        if not self.inference_count:
            return None
        return self.inference_time_s * 1000.0 / self.inference_count

    @property
    def average_queue_time_ms(self) -> float | None:
        if not self.dequeued_count:
            return None
        return self.queue_time_s * 1000.0 / self.dequeued_count

    @property
    def p99_inference_time_ms(self) -> float | None:
        if not self.recent_item_times_ms:
            return None
        return float(np.percentile(np.fromiter(self.recent_item_times_ms, dtype=np.float64), 99))
