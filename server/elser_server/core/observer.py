"""What the core reports as it works, for metrics: a protocol, so the core knows nothing of Prometheus.

Calls come from the event loop, once per batch or download step; implementations must be cheap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class CoreObserver(Protocol):
    def batch_done(
        self,
        deployment_id: str,
        queue_waits_s: Sequence[float],
        tokens: int,
        padded_tokens: int,
        inference_s: float,
    ) -> None:
        """A model call finished: one queue wait per text, real and padded token counts, model call time."""

    def deployment_stopped(self, deployment_id: str) -> None:
        """The deployment is gone: forget what is kept per deployment id."""

    def download_progress(self, model_id: str, done: int, total: int) -> None:
        """Bytes of `model_id` fetched so far (cumulative within one install)."""

    def download_failed(self, model_id: str) -> None:
        """Installing `model_id` failed."""
