"""The core facade both transports call (the MLServer "data plane" pattern): endpoint CRUD, deployments'
lifecycle, inference.

ES semantics live here once; transports only translate. Endpoint rules come from `endpoint_rules` and
`update_rules`, persistence from an `EndpointStore`, models from the `ModelManager`, batching from `Deployment`,
chunked inference from `chunked`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from elser_server.core.adaptive import AdaptiveAllocator, AdaptiveTarget
from elser_server.core.chunked import chunked_embeddings
from elser_server.core.chunking.settings import ChunkingSettings, Strategy, parse_chunking_settings
from elser_server.core.config import CoreConfig
from elser_server.core.defaults import DEFAULT_ENDPOINT_ID, RESERVED_ENDPOINT_IDS, default_endpoint
from elser_server.core.deployment import Deployment, State
from elser_server.core.embedder import Embedder
from elser_server.core.endpoint_rules import (
    check_infer_task_type,
    check_task_type,
    parse_put_request,
    parse_task_type,
    validate_infer_inputs,
)
from elser_server.core.errors import (
    ElserError,
    deadline_exceeded,
    deployment_start_timeout,
    endpoint_exists,
    endpoint_not_found,
    internal,
    invalid,
)
from elser_server.core.es_validation import format_time_value
from elser_server.core.events import AllocationCause, DeploymentEvent, EventHub, Phase
from elser_server.core.model_manager import ModelManager
from elser_server.core.observer import CoreObserver
from elser_server.core.queue import RowOptions
from elser_server.core.stats import DeploymentStats
from elser_server.core.store import EndpointStore
from elser_server.core.types import (
    ChunkedInputDone,
    ChunkEmbedding,
    DeleteResult,
    DeploymentReport,
    Endpoint,
    InferOptions,
    Priority,
    PutResult,
    SparseEmbedding,
    TaskType,
)
from elser_server.core.update_rules import apply_update, check_update_request

log = logging.getLogger(__name__)

VALIDATION_INPUT = "how big"  # ES runs this one inference before storing a new endpoint
# Endpoints stored before ES 8.16 have no chunking settings and chunk as word 250/100.
LEGACY_CHUNKING = ChunkingSettings(Strategy.WORD, max_chunk_size=250, overlap=100)


class InferenceCore:
    def __init__(
        self,
        store: EndpointStore,
        models: ModelManager,
        config: CoreConfig,
        *,
        observer: CoreObserver | None = None,
    ) -> None:
        self._store = store
        self._observer = observer
        self._models = models
        self._limits = config.limits
        self._batching = config.batching
        self._preload_default = config.preload_default_endpoint
        self._endpoints: dict[str, Endpoint] = {}
        self._deployments: dict[str, Deployment] = {}
        self._deploy_tasks: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._events = EventHub()
        self._allocator = AdaptiveAllocator(self._adaptive_targets, config.adaptive)
        self._allocator_task: asyncio.Task[None] | None = None
        self._readiness_listeners: list[Callable[[bool], None]] = []
        self._draining = False
        self._streams_closing = asyncio.Event()
        self._last_ready = False
        # Tokenization is CPU-bound Rust that releases the GIL: keep it off the event loop.
        self._tokenize_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tokenize")

    # --- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load persisted endpoints and redeploy them (in the background: start-up is not blocked)."""
        for endpoint in await asyncio.to_thread(self._store.load_all):
            self._endpoints[endpoint.inference_id] = endpoint
            self._start_deployment(endpoint)
        if self._preload_default:
            self._start_deployment(default_endpoint())
        self._allocator_task = asyncio.create_task(self._allocator.run(), name="adaptive-allocations")
        log.info("core started with %d endpoints", len(self._endpoints))

    async def close(self) -> None:
        self._models.cancel_installs()
        if self._allocator_task is not None:
            self._allocator_task.cancel()
        self._draining = True
        self._notify_readiness()
        await asyncio.gather(
            *(d.stop(self._batching.stop_grace_s) for d in self._deployments.values()), return_exceptions=True
        )
        for task in self._deploy_tasks.values():
            task.cancel()
        self._tokenize_pool.shutdown(wait=False)
        await asyncio.to_thread(self._store.close)

    def begin_drain(self) -> None:
        """Stop advertising readiness (health NOT_SERVING) while in-flight work finishes."""
        self._draining = True
        self._notify_readiness()

    def end_streams(self) -> None:
        """Shutdown, after the drain period: watches fail with SHUTTING_DOWN and bulk streams stop taking
        messages, so long-lived streams do not hold the listeners' grace period until it runs out."""
        self._events.shut_down()
        self._streams_closing.set()

    async def streams_closing(self) -> None:
        """Returns once `end_streams()` was called: a bulk stream then answers what it read and ends."""
        await self._streams_closing.wait()

    @property
    def ready(self) -> bool:
        return not self._draining and any(d.state is State.STARTED for d in self._deployments.values())

    def add_readiness_listener(self, cb: Callable[[bool], None]) -> None:
        self._readiness_listeners.append(cb)
        cb(self.ready)

    def _notify_readiness(self) -> None:
        ready = self.ready
        if ready != self._last_ready:
            self._last_ready = ready
            for cb in self._readiness_listeners:
                cb(ready)

    # --- endpoints -------------------------------------------------------------------------------------------

    async def put_endpoint(
        self, inference_id: str, task_type: str | None, body: object, *, timeout_s: float | None = None
    ) -> PutResult:
        parsed = parse_put_request(inference_id, task_type, body)
        endpoint = parsed.endpoint
        async with self._lock(inference_id):
            if inference_id in self._endpoints:
                raise endpoint_exists(inference_id)
            await self._replace_orphan_deployment(endpoint)
            deployment = await self._deployment_started(
                endpoint, self._limits.put_timeout_s if timeout_s is None else timeout_s
            )
            wanted = _initial_allocations(endpoint)
            if deployment.target_allocations != wanted:
                await deployment.scale_to(wanted, AllocationCause.USER_UPDATE)
            await self._validation_inference(endpoint, deployment)
            await asyncio.to_thread(self._store.insert, endpoint)
            self._endpoints[inference_id] = endpoint
        return PutResult(endpoint, parsed.warnings)  # as configured; GET shows the live allocation count

    def get_endpoints(self, inference_id: str | None = None, task_type: str | None = None) -> list[Endpoint]:
        requested = parse_task_type(task_type)
        if inference_id in (None, "_all", "*"):
            found = [
                e
                for e in self._all_endpoints()
                if requested in (None, TaskType.ANY) or e.task_type is requested
            ]
            return [self._view(e) for e in sorted(found, key=lambda e: e.inference_id)]
        assert inference_id is not None
        endpoint = self._get(inference_id)
        check_task_type(endpoint, requested)
        return [self._view(endpoint)]

    async def delete_endpoint(
        self, inference_id: str, task_type: str | None = None, *, dry_run: bool = False, force: bool = False
    ) -> DeleteResult:
        requested = parse_task_type(task_type)
        async with self._lock(inference_id):
            endpoint = self._get(inference_id)
            check_task_type(endpoint, requested)
            if inference_id in RESERVED_ENDPOINT_IDS:
                raise invalid(
                    f"[{inference_id}] is a reserved inference endpoint. "
                    "Cannot delete a reserved inference endpoint.",
                    error_reason="RESERVED_INFERENCE_ID",
                )
            if dry_run:
                # Nothing in this service references endpoints (no pipelines or index mappings).
                return DeleteResult(acknowledged=False, error_message="")
            await asyncio.to_thread(self._store.delete, inference_id)
            del self._endpoints[inference_id]
            await self._stop_deployment(inference_id)
            self._events.close(
                inference_id,
                DeploymentEvent(
                    inference_id,
                    endpoint.service_settings.model_id,
                    Phase.STOPPED,
                    reason="inference endpoint deleted",
                ),
            )
        return DeleteResult(acknowledged=True)

    async def update_endpoint(self, inference_id: str, task_type: str | None, body: object) -> Endpoint:
        update = check_update_request(inference_id, task_type, body)  # ES checks these before the lookup
        async with self._lock(inference_id):
            existing = self._endpoints.get(inference_id)
            if existing is None:
                raise endpoint_not_found(inference_id)
            updated = apply_update(existing, update)
            deployment = self._deployments.get(inference_id)
            if deployment is not None:
                await deployment.scale_to(_initial_allocations(updated), AllocationCause.USER_UPDATE)
            await asyncio.to_thread(self._store.replace, updated)
            self._endpoints[inference_id] = updated
        return updated

    async def infer_chunked(
        self,
        inference_id: str,
        task_type: str | None,
        inputs: Sequence[str],
        options: InferOptions = InferOptions(),
        *,
        chunking_settings: object = None,
        deadline: float | None = None,
    ) -> AsyncIterator[ChunkEmbedding | ChunkedInputDone]:
        """Chunk each input (the endpoint's settings, or `chunking_settings` when given) and embed every chunk
        (core/chunked.py). One input failing does not fail the others."""
        endpoint = self._get(inference_id)
        check_infer_task_type(endpoint, parse_task_type(task_type))
        settings = (
            parse_chunking_settings(chunking_settings)
            if chunking_settings is not None
            else endpoint.chunking_settings or LEGACY_CHUNKING
        )
        embedder = await self._embedder(endpoint, inputs, options, deadline)
        priority = Priority.BULK if options.priority is Priority.AUTO else options.priority
        async for item in chunked_embeddings(embedder, inputs, settings, priority):
            yield item

    # --- deployments: watch and stats -------------------------------------------------------------------------

    def watch_deployment(self, inference_id: str) -> AsyncIterator[DeploymentEvent]:
        """The deployment's current snapshot, then every change; ends after the endpoint is deleted.

        A deployment being created by a PUT can be watched before the endpoint is stored (ES: the deployment
        id is the inference id and exists first)."""
        deployment = self._deployments.get(inference_id)
        if deployment is not None:
            return self._events.watch(inference_id, deployment.snapshot())
        endpoint = self._get(inference_id)
        idle = DeploymentEvent(
            inference_id,
            endpoint.service_settings.model_id,
            Phase.STOPPED,
            reason="not deployed: deploys on first use",
        )
        return self._events.watch(inference_id, idle)

    @property
    def models(self) -> ModelManager:
        return self._models

    def deployment(self, inference_id: str) -> Deployment | None:
        """The local deployment serving `inference_id` (also one a PUT is still creating); None when it has
        none (the default endpoint before its first use)."""
        return self._deployments.get(inference_id)

    def deployment_stats(self, inference_id: str) -> DeploymentReport:
        endpoint = self._get(inference_id)
        settings = endpoint.service_settings
        deployment = self._deployments.get(inference_id)
        if deployment is None:
            snapshot = DeploymentEvent(inference_id, settings.model_id, Phase.STOPPED, reason="not deployed")
            return DeploymentReport(
                snapshot, DeploymentStats(), settings.num_threads, self._batching.queue_capacity
            )
        return DeploymentReport(
            deployment.snapshot(),
            deployment.stats,
            deployment.num_threads,
            deployment.queue_capacity,
            queued=deployment.queued,
            start_time=deployment.start_time,
        )

    # --- inference -------------------------------------------------------------------------------------------

    async def infer(
        self,
        inference_id: str,
        task_type: str | None,
        inputs: Sequence[str],
        options: InferOptions = InferOptions(),
        *,
        deadline: float | None = None,
    ) -> list[SparseEmbedding]:
        """Embeddings in input order. `deadline`: a time.monotonic() value (None: the default timeout).
        Cancelling the caller (client cancel, deadline) drops its queued work."""
        endpoint = self._get(inference_id)
        check_infer_task_type(endpoint, parse_task_type(task_type))
        embedder = await self._embedder(endpoint, inputs, options, deadline)
        # Refused before tokenizing: an overloaded deployment spends no CPU on work it would refuse.
        embedder.deployment.check_room(len(inputs))
        return await embedder.embed(inputs, options.priority)

    async def _embedder(
        self, endpoint: Endpoint, inputs: Sequence[str], options: InferOptions, deadline: float | None
    ) -> Embedder:
        """Validate the inputs and wait (within the deadline) for the endpoint's deployment to serve."""
        validate_infer_inputs(
            inputs,
            options,
            max_inputs=self._limits.max_inputs_per_request,
            max_input_bytes=self._limits.max_input_bytes,
        )
        if deadline is None:
            deadline = time.monotonic() + self._limits.default_timeout_s
        deployment = await self._deployment_for_inference(endpoint, deadline)
        model = await self._models.get(deployment.model_id)
        lookup = model.tokenizer.id_to_tokens if options.return_tokens else None
        row_options = RowOptions(options.top_k, options.min_weight, lookup)
        return Embedder(deployment, model.tokenizer, row_options, deadline, self._tokenize_pool)

    # --- deployments -----------------------------------------------------------------------------------------

    def _start_deployment(self, endpoint: Endpoint) -> Deployment:
        """Create the deployment for `endpoint` (deployment id = inference id) unless it exists; start it in
        the background so a PUT that times out leaves it starting, as ES does."""
        existing = self._deployments.get(endpoint.inference_id)
        if existing is not None and existing.state not in (State.STOPPED, State.FAILED):
            return existing
        settings = endpoint.service_settings
        model_id = settings.model_id
        deployment = Deployment(
            endpoint.inference_id,
            model_id,
            num_threads=settings.num_threads,
            target_allocations=_initial_allocations(endpoint),
            queue_capacity=self._batching.queue_capacity,
            token_budget=self._batching.token_budget,
            max_batch_size=self._batching.max_batch_size,
            processors=self._batching.processors,
            publish=self._events.publish,
            observer=self._observer,
        )
        self._deployments[endpoint.inference_id] = deployment
        self._deploy_tasks[endpoint.inference_id] = asyncio.create_task(
            self._run_deployment(deployment), name=f"deploy-{endpoint.inference_id}"
        )
        return deployment

    async def _run_deployment(self, deployment: Deployment) -> None:
        try:
            model = await self._models.get(
                deployment.model_id,
                on_progress=deployment.download_progress,
                on_converting=deployment.converting,
            )
        except ElserError as exc:
            deployment.fail(exc)
            self._notify_readiness()
            return
        except Exception as exc:
            log.exception("installing model %s failed", deployment.model_id)
            deployment.fail(
                internal(f"Could not install model [{deployment.model_id}]: {exc}", "MODEL_INSTALL_FAILED")
            )
            self._notify_readiness()
            return
        await deployment.start(model.new_session)
        self._notify_readiness()

    async def _deployment_started(self, endpoint: Endpoint, timeout_s: float) -> Deployment:
        deployment = self._start_deployment(endpoint)
        try:
            await asyncio.wait_for(asyncio.shield(deployment.wait_started()), timeout_s)
        except TimeoutError:
            raise deployment_start_timeout(format_time_value(timeout_s)) from None
        return deployment

    async def _deployment_for_inference(self, endpoint: Endpoint, deadline: float) -> Deployment:
        """The endpoint's started deployment; a missing one (the default endpoint) is deployed on demand and
        the request waits for it within its own deadline."""
        deployment = self._start_deployment(endpoint)
        remaining = deadline - time.monotonic()
        try:
            await asyncio.wait_for(asyncio.shield(deployment.wait_started()), max(remaining, 0.0))
        except TimeoutError:
            raise deadline_exceeded(
                f"Timed out waiting for deployment [{endpoint.inference_id}] to start"
            ) from None
        return deployment

    async def _validation_inference(self, endpoint: Endpoint, deployment: Deployment) -> None:
        model = await self._models.get(deployment.model_id)
        encodings = model.tokenizer.encode_batch([VALIDATION_INPUT])
        try:
            await deployment.embed(
                encodings,
                priority=InferOptions().priority,
                deadline=time.monotonic() + self._limits.put_timeout_s,
                options=RowOptions(),
            )
        except ElserError as exc:
            await self._stop_deployment(endpoint.inference_id)
            raise invalid(
                "Could not complete inference endpoint creation as validation call to service threw an exception.",
                error_reason="VALIDATION_INFERENCE_FAILED",
            ) from exc

    async def _replace_orphan_deployment(self, endpoint: Endpoint) -> None:
        """A deployment without an endpoint was left by a PUT that timed out (ES keeps it starting). A new PUT
        for the same id reuses it, unless it asks for another model or thread count: then the new PUT wins."""
        orphan = self._deployments.get(endpoint.inference_id)
        settings = endpoint.service_settings
        if orphan is not None and (
            orphan.model_id != settings.model_id or orphan.num_threads != settings.num_threads
        ):
            await self._stop_deployment(endpoint.inference_id)

    async def _stop_deployment(self, deployment_id: str) -> None:
        deployment = self._deployments.pop(deployment_id, None)
        task = self._deploy_tasks.pop(deployment_id, None)
        if task is not None and not task.done():
            task.cancel()
        if deployment is not None:
            await deployment.stop(self._batching.stop_grace_s)
            if all(d.model_id != deployment.model_id for d in self._deployments.values()):
                self._models.release(deployment.model_id)
        self._notify_readiness()

    # --- helpers ---------------------------------------------------------------------------------------------

    def _adaptive_targets(self) -> list[AdaptiveTarget]:
        targets: list[AdaptiveTarget] = []
        for dep_id, deployment in self._deployments.items():
            endpoint = self._endpoints.get(dep_id) or (
                default_endpoint() if dep_id == DEFAULT_ENDPOINT_ID else None
            )
            adaptive = endpoint.service_settings.adaptive_allocations if endpoint is not None else None
            if adaptive is not None and adaptive.enabled:
                targets.append((deployment, adaptive))
        return targets

    def _lock(self, inference_id: str) -> asyncio.Lock:
        return self._locks.setdefault(inference_id, asyncio.Lock())

    def _all_endpoints(self) -> list[Endpoint]:
        endpoints = dict(self._endpoints)
        endpoints.setdefault(DEFAULT_ENDPOINT_ID, default_endpoint())
        return list(endpoints.values())

    def _get(self, inference_id: str) -> Endpoint:
        endpoint = self._endpoints.get(inference_id)
        if endpoint is None and inference_id == DEFAULT_ENDPOINT_ID:
            endpoint = default_endpoint()
        if endpoint is None:
            raise endpoint_not_found(inference_id)
        return endpoint

    def _view(self, endpoint: Endpoint) -> Endpoint:
        """ES shows the deployment's current allocation count in place of the configured one."""
        deployment = self._deployments.get(endpoint.inference_id)
        if deployment is None or deployment.state is not State.STARTED:
            return endpoint
        settings = replace(endpoint.service_settings, num_allocations=deployment.allocation_count)
        return replace(endpoint, service_settings=settings)


def _initial_allocations(endpoint: Endpoint) -> int:
    """ES: with adaptive allocations enabled, the adaptive min when > 0, else 1 (a count stored before adaptive
    was switched on by an update does not apply); otherwise the explicit count."""
    settings = endpoint.service_settings
    adaptive = settings.adaptive_allocations
    if adaptive is not None and adaptive.enabled:
        return max(adaptive.min_number_of_allocations or 0, 1)
    return settings.num_allocations or 1
