"""The local deployments, one per deployment id (= the inference id, as in ES): admitted against the memory
budget, created in the background so a PUT that times out leaves its deployment starting, started from the model
manager's loaded model, stopped (with everything kept for their id), and a model released when its last deployment
stops."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from elser_server.core.config import BatchingConfig
from elser_server.core.deployment import Deployment, State
from elser_server.core.errors import (
    ElserError,
    deadline_exceeded,
    deployment_not_started,
    deployment_start_timeout,
    internal,
)
from elser_server.core.es_validation import format_time_value
from elser_server.core.events import EventHub
from elser_server.core.memory import MemoryBudget, estimate_footprint
from elser_server.core.model_manager import ModelManager
from elser_server.core.observer import CoreObserver
from elser_server.core.types import Endpoint

log = logging.getLogger(__name__)


def initial_allocations(endpoint: Endpoint) -> int:
    """ES: with adaptive allocations enabled, the adaptive min when > 0, else 1 (a count stored before adaptive
    was switched on by an update does not apply); otherwise the explicit count."""
    settings = endpoint.service_settings
    adaptive = settings.adaptive_allocations
    if adaptive is not None and adaptive.enabled:
        return max(adaptive.min_number_of_allocations or 0, 1)
    return settings.num_allocations or 1


class Deployments:
    def __init__(
        self,
        models: ModelManager,
        batching: BatchingConfig,
        events: EventHub,
        observer: CoreObserver | None,
        on_change: Callable[[], None],
        memory: MemoryBudget,
    ) -> None:
        """`on_change` is called whenever a deployment starts, fails or stops (readiness may have changed)."""
        self._models = models
        self.memory = memory
        self._batching = batching
        self._events = events
        self._observer = observer
        self._on_change = on_change
        self._deployments: dict[str, Deployment] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def get(self, deployment_id: str) -> Deployment | None:
        return self._deployments.get(deployment_id)

    def items(self) -> list[tuple[str, Deployment]]:
        return list(self._deployments.items())

    @property
    def any_started(self) -> bool:
        return any(d.state is State.STARTED for d in self._deployments.values())

    def start(self, endpoint: Endpoint) -> Deployment:
        """The deployment of `endpoint`, created and started in the background unless it exists. When its model
        is installed already, its memory is admitted here (ES's 429 before anything is created); otherwise once
        the model is installed, before it is loaded."""
        existing = self._deployments.get(endpoint.inference_id)
        if existing is not None and existing.state not in (State.STOPPED, State.FAILED):
            return existing
        settings = endpoint.service_settings
        deployment = Deployment(
            endpoint.inference_id,
            settings.model_id,
            num_threads=settings.num_threads,
            target_allocations=initial_allocations(endpoint),
            queue_capacity=self._batching.queue_capacity,
            interactive_queue_capacity=self._batching.interactive_queue_capacity,
            token_budget=self._batching.token_budget,
            max_batch_size=self._batching.max_batch_size,
            processors=self._batching.processors,
            publish=self._events.publish,
            observer=self._observer,
            memory=self.memory,
        )
        package = self._models.installed(settings.model_id)
        if package is not None:
            layout = self._models.layout_for(settings.model_id, package)
            footprint = estimate_footprint(package, self._batching.token_budget, layout)
            self.memory.admit(deployment, settings.model_id, footprint, deployment.wanted_allocations)
        self._deployments[endpoint.inference_id] = deployment
        self._tasks[endpoint.inference_id] = asyncio.create_task(
            self._run(deployment), name=f"deploy-{endpoint.inference_id}"
        )
        return deployment

    async def _run(self, deployment: Deployment) -> None:
        try:
            package = await self._models.install(
                deployment.model_id,
                on_progress=deployment.download_progress,
                on_converting=deployment.converting,
            )
            if not self.memory.holds(deployment):
                layout = self._models.layout_for(deployment.model_id, package)
                footprint = estimate_footprint(package, self._batching.token_budget, layout)
                self.memory.admit(deployment, deployment.model_id, footprint, deployment.wanted_allocations)
            model = await self._models.get(deployment.model_id)
        except ElserError as exc:
            self._failed(deployment, exc)
            return
        except Exception as exc:
            log.exception("installing model %s failed", deployment.model_id)
            self._failed(
                deployment,
                internal(f"Could not install model [{deployment.model_id}]: {exc}", "MODEL_INSTALL_FAILED"),
            )
            return
        await deployment.start(model.new_session)
        if deployment.state is State.FAILED:
            self.memory.release(deployment)
        self._on_change()

    def _failed(self, deployment: Deployment, error: ElserError) -> None:
        self.memory.release(deployment)
        deployment.fail(error)
        self._on_change()

    async def started(self, endpoint: Endpoint, timeout_s: float) -> Deployment:
        """PUT's wait: the started deployment, or ES's 408 after `timeout_s` (it keeps starting)."""
        deployment = self.start(endpoint)
        try:
            await asyncio.wait_for(deployment.wait_started(), timeout_s)
        except TimeoutError:
            raise deployment_start_timeout(format_time_value(timeout_s)) from None
        return deployment

    async def serving(self, endpoint: Endpoint, deadline: float) -> Deployment:
        """Inference's wait: the started deployment; a missing one (the default endpoint) is deployed on
        demand and the request waits for it within its own deadline."""
        deployment = self.start(endpoint)
        remaining = deadline - time.monotonic()
        try:
            await asyncio.wait_for(deployment.wait_started(), max(remaining, 0.0))
        except TimeoutError:
            raise deadline_exceeded(
                f"Timed out waiting for deployment [{endpoint.inference_id}] to start"
            ) from None
        return deployment

    async def replace_incompatible(self, endpoint: Endpoint) -> None:
        """A deployment without an endpoint was left by a PUT that timed out (ES keeps it starting). A new PUT
        for the same id reuses it, unless it asks for another model or thread count: then the new PUT wins."""
        orphan = self._deployments.get(endpoint.inference_id)
        settings = endpoint.service_settings
        if orphan is not None and (
            orphan.model_id != settings.model_id or orphan.num_threads != settings.num_threads
        ):
            await self.stop(endpoint.inference_id)

    def check_updatable(self, deployment: Deployment) -> None:
        """ES allows an allocation update of a started deployment only (409 while it starts, stops or failed)."""
        if deployment.state is not State.STARTED:
            raise deployment_not_started()

    async def stop(self, deployment_id: str) -> None:
        """Stop the deployment and release everything kept for it: its memory, its model when no other
        deployment uses it, its latest event and its metrics."""
        deployment = self._deployments.pop(deployment_id, None)
        task = self._tasks.pop(deployment_id, None)
        if task is not None and not task.done():
            task.cancel()
        if deployment is not None:
            try:
                await deployment.stop(self._batching.stop_grace_s)
            finally:
                self.memory.release(deployment)
            if all(d.model_id != deployment.model_id for d in self._deployments.values()):
                self._models.release(deployment.model_id)
        if deployment_id not in self._deployments:
            self._events.forget(deployment_id)
            if self._observer is not None:
                self._observer.deployment_stopped(deployment_id)
        self._on_change()

    async def close(self) -> None:
        await asyncio.gather(
            *(d.stop(self._batching.stop_grace_s) for d in self._deployments.values()), return_exceptions=True
        )
        for task in self._tasks.values():
            task.cancel()
