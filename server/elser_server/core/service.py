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
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from elser_server.core.adaptive import AdaptiveAllocator, AdaptiveScaler, AdaptiveTarget
from elser_server.core.chunked import chunked_embeddings
from elser_server.core.chunking.settings import ChunkingSettings, Strategy, parse_chunking_settings
from elser_server.core.config import CoreConfig
from elser_server.core.defaults import DEFAULT_ENDPOINT_ID, RESERVED_ENDPOINT_IDS, default_endpoint
from elser_server.core.deployment import Deployment, State
from elser_server.core.deployments import Deployments, initial_allocations
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
    endpoint_exists,
    endpoint_not_found,
    invalid,
    not_enough_memory_to_start,
    not_enough_memory_to_update,
)
from elser_server.core.events import AllocationCause, DeploymentEvent, EventHub, Phase
from elser_server.core.keyed_locks import KeyedLocks
from elser_server.core.memory import MemoryBudget
from elser_server.core.model_manager import ModelManager
from elser_server.core.observer import CoreObserver
from elser_server.core.pending import PendingEndpoints
from elser_server.core.queue import RowOptions
from elser_server.core.replication import ReplicaSync
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
from elser_server.core.update_rules import UpdateRequest, apply_update, check_update_request

log = logging.getLogger(__name__)

VALIDATION_INPUT = "how big"  # ES runs this one inference before storing a new endpoint
# Endpoints stored before ES 8.16 have no chunking settings and chunk as word 250/100.
LEGACY_CHUNKING = ChunkingSettings(Strategy.WORD, max_chunk_size=250, overlap=100)

T = TypeVar("T")


class InferenceCore:
    def __init__(
        self,
        store: EndpointStore,
        models: ModelManager,
        config: CoreConfig,
        *,
        observer: CoreObserver | None = None,
        replica: ReplicaSync | None = None,
    ) -> None:
        """`replica`: the store is shared with other replicas, which this one follows (core/replication.py)."""
        self._store = store
        self._replica = replica
        self.replica_name = config.replica_name
        self._observer = observer
        self._models = models
        self._limits = config.limits
        self._batching = config.batching
        self._preload_default = config.preload_default_endpoint
        self._endpoints: dict[str, Endpoint] = {}
        self._locks = KeyedLocks()
        self._events = EventHub()
        self._deployments = Deployments(
            models,
            config.batching,
            self._events,
            observer,
            self._notify_readiness,
            MemoryBudget(config.memory_budget),
        )
        self._pending = PendingEndpoints(
            self._deployments, self._events, self._locks, config.limits.timed_out_deployment_keep_s
        )
        self._changes: set[asyncio.Task[Any]] = set()
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
        if self._replica is not None:
            await self._replica.start(self)
        else:
            for endpoint in await asyncio.to_thread(self._store.load_all):
                self._endpoints[endpoint.inference_id] = endpoint
                self._deployments.start(endpoint)
        if self._preload_default:
            self._deployments.start(default_endpoint())
        self._allocator_task = asyncio.create_task(self._allocator.run(), name="adaptive-allocations")
        log.info("core started with %d endpoints", len(self._endpoints))

    async def close(self) -> None:
        self._models.cancel_installs()
        if self._allocator_task is not None:
            self._allocator_task.cancel()
        if self._replica is not None:
            await self._replica.close()
        self._draining = True
        self._notify_readiness()
        self._pending.close()
        for change in self._changes:
            change.cancel()
        await self._deployments.close()
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
        return not self._draining and self._deployments.any_started

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
        if self._replica is not None:
            self._replica.check_writable()
            await self._resolve(inference_id)
        timeout = self._limits.put_timeout_s if timeout_s is None else timeout_s
        await self._whole(self._put(parsed.endpoint, timeout))
        # As configured; GET shows the live allocation count.
        return PutResult(parsed.endpoint, parsed.warnings)

    async def _put(self, endpoint: Endpoint, timeout_s: float) -> None:
        inference_id = endpoint.inference_id
        async with self._locks.hold(inference_id):
            if inference_id in self._endpoints:
                raise endpoint_exists(inference_id)
            self._pending.take(inference_id)  # a retried PUT adopts the deployment of a timed-out one
            await self._deployments.replace_incompatible(endpoint)
            try:
                deployment = await self._deployments.started(endpoint, timeout_s)
                wanted = initial_allocations(endpoint)
                if deployment.target_allocations != wanted:
                    if not self._deployments.memory.grow(deployment, min(wanted, deployment.capacity)):
                        raise not_enough_memory_to_start(some_fit=True)
                    await deployment.scale_to(wanted, AllocationCause.USER_UPDATE)
                await self._validation_inference(endpoint, deployment)
            except ElserError as exc:
                if exc.error_reason == "DEPLOYMENT_START_TIMEOUT":
                    self._pending.add(endpoint)  # ES's deployment goes on starting: kept for a while
                else:
                    await self._deployments.stop(inference_id)  # nothing is left of a refused PUT
                raise
            try:
                await asyncio.to_thread(self._store.insert, endpoint)
            except Exception:
                await self._deployments.stop(inference_id)
                raise
            self._endpoints[inference_id] = endpoint

    async def get_endpoints(
        self, inference_id: str | None = None, task_type: str | None = None
    ) -> list[Endpoint]:
        """With a shared store, a read asks the store first (a change on another replica shows at once)."""
        requested = parse_task_type(task_type)
        listing = inference_id in (None, "_all", "*")
        if self._replica is not None:
            await self._replica.read_through(None if listing else inference_id)
        if listing:
            found = [
                e
                for e in self._all_endpoints() + self._pending.endpoints()
                if requested in (None, TaskType.ANY) or e.task_type is requested
            ]
            return [self._view(e) for e in sorted(found, key=lambda e: e.inference_id)]
        assert inference_id is not None
        endpoint = self._known(inference_id)
        check_task_type(endpoint, requested)
        return [self._view(endpoint)]

    async def delete_endpoint(
        self, inference_id: str, task_type: str | None = None, *, dry_run: bool = False, force: bool = False
    ) -> DeleteResult:
        requested = parse_task_type(task_type)
        await self._resolve(inference_id)
        return await self._whole(self._delete(inference_id, requested, dry_run))

    async def _delete(self, inference_id: str, requested: TaskType | None, dry_run: bool) -> DeleteResult:
        async with self._locks.hold(inference_id):
            pending = self._pending.get(inference_id)
            endpoint = self._known(inference_id)
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
            if pending is not None:
                await self._pending.discard(inference_id, "inference endpoint deleted")
                return DeleteResult(acknowledged=True)
            if self._replica is not None:
                self._replica.check_writable()
            existed = await asyncio.to_thread(self._store.delete, inference_id)
            await self._forget(endpoint)
            if not existed:  # another replica deleted it first
                raise endpoint_not_found(inference_id)
        return DeleteResult(acknowledged=True)

    async def _forget(self, endpoint: Endpoint) -> None:
        """The endpoint is gone from the store: stop serving it and end its watches."""
        inference_id = endpoint.inference_id
        self._endpoints.pop(inference_id, None)
        await self._deployments.stop(inference_id)
        self._events.close(
            inference_id,
            DeploymentEvent(
                inference_id,
                endpoint.service_settings.model_id,
                Phase.STOPPED,
                reason="inference endpoint deleted",
            ),
        )

    async def update_endpoint(self, inference_id: str, task_type: str | None, body: object) -> Endpoint:
        update = check_update_request(inference_id, task_type, body)  # ES checks these before the lookup
        if self._replica is not None:
            self._replica.check_writable()
            await self._replica.refresh(inference_id)  # update what the store holds now, not an older copy
        return await self._whole(self._update(inference_id, update))

    async def _update(self, inference_id: str, update: UpdateRequest) -> Endpoint:
        """All or nothing (ES's order: the deployment, then the store): an allocation change of a deployment
        that is not started is ES's 409 and one that does not fit in memory ES's 429, before anything changes;
        a store that fails puts the deployment back. With a shared store the endpoint's deployment is every
        replica's: one still starting here (it just learned of the endpoint) takes the new target as it starts."""
        async with self._locks.hold(inference_id):
            existing = self._endpoints.get(inference_id)
            if existing is None:
                raise endpoint_not_found(inference_id)
            updated = apply_update(existing, update)
            deployment = self._deployments.get(inference_id)
            old, new = existing.service_settings, updated.service_settings
            if (old.num_allocations, old.adaptive_allocations) == (
                new.num_allocations,
                new.adaptive_allocations,
            ):
                deployment = None  # nothing live changes
            previous = 0
            if deployment is not None:
                if self._replica is None or deployment.state is not State.STARTING:
                    self._deployments.check_updatable(deployment)
                wanted = initial_allocations(updated)
                if not self._deployments.memory.grow(deployment, min(wanted, deployment.capacity)):
                    raise not_enough_memory_to_update()
                previous = deployment.target_allocations
                await deployment.scale_to(wanted, AllocationCause.USER_UPDATE)
            try:
                await asyncio.to_thread(self._store.replace, updated)
            except Exception:
                if deployment is not None:
                    await deployment.scale_to(previous, AllocationCause.USER_UPDATE)
                raise
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
        await self._resolve(inference_id)
        endpoint = self._get(inference_id)
        check_infer_task_type(endpoint, parse_task_type(task_type))
        settings = (
            parse_chunking_settings(chunking_settings)
            if chunking_settings is not None
            else endpoint.chunking_settings or LEGACY_CHUNKING
        )
        embedder = await self._embedder(endpoint, inputs, options, deadline)
        priority = Priority.BULK if options.priority is Priority.AUTO else options.priority
        chunks = chunked_embeddings(embedder, inputs, settings, priority, self._limits.separator_timeout_s)
        async for item in chunks:
            yield item

    # --- deployments: watch and stats -------------------------------------------------------------------------

    def watch_deployment(self, inference_id: str) -> AsyncIterator[DeploymentEvent]:
        """The deployment's current snapshot, then every change; ends after the endpoint is deleted.

        A deployment being created by a PUT can be watched before the endpoint is stored (ES: the deployment
        id is the inference id and exists first)."""
        deployment = self._deployments.get(inference_id)
        if deployment is not None:
            return self._events.watch(inference_id, deployment.snapshot())
        endpoint = self._known(inference_id)
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

    def watch_backlogs(self, inference_id: str) -> list[int]:
        """For each open watch of `inference_id`, how many events wait unread (empty: no watcher)."""
        return self._events.backlogs(inference_id)

    def adaptive_scaler(self, inference_id: str) -> AdaptiveScaler | None:
        """The adaptive-allocations estimates of `inference_id`'s deployment; None before their first tick."""
        return self._allocator.scaler(inference_id)

    def deployment_stats(self, inference_id: str) -> DeploymentReport:
        endpoint = self._known(inference_id)
        settings = endpoint.service_settings
        deployment = self._deployments.get(inference_id)
        if deployment is None:
            snapshot = DeploymentEvent(inference_id, settings.model_id, Phase.STOPPED, reason="not deployed")
            return DeploymentReport(
                snapshot,
                DeploymentStats(),
                settings.num_threads,
                self._batching.queue_capacity,
                replica=self.replica_name,
            )
        return DeploymentReport(
            deployment.snapshot(),
            deployment.stats,
            deployment.num_threads,
            deployment.queue_capacity,
            queued=deployment.queued,
            start_time=deployment.start_time,
            replica=self.replica_name,
            layout=deployment.layout,
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
        await self._resolve(inference_id)
        endpoint = self._get(inference_id)
        check_infer_task_type(endpoint, parse_task_type(task_type))
        embedder = await self._embedder(endpoint, inputs, options, deadline)
        # Refused before tokenizing: an overloaded deployment spends no CPU on work it would refuse.
        embedder.deployment.check_room(len(inputs), options.priority)
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
        deployment = await self._deployments.serving(endpoint, deadline)
        model = await self._models.get(deployment.model_id)
        lookup = model.tokenizer.id_to_tokens if options.return_tokens else None
        row_options = RowOptions(options.top_k, options.min_weight, lookup)
        return Embedder(deployment, model.tokenizer, row_options, deadline, self._tokenize_pool)

    # --- deployments -----------------------------------------------------------------------------------------

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
            await self._deployments.stop(endpoint.inference_id)
            raise invalid(
                "Could not complete inference endpoint creation as validation call to service threw an exception.",
                error_reason="VALIDATION_INFERENCE_FAILED",
            ) from exc

    # --- replication (core/replication.py decides what the store holds; these apply it) ----------------------

    @property
    def store_available(self) -> bool:
        """False while a shared store is unreachable: endpoints are served from the last known state."""
        return self._replica is None or self._replica.available

    def known_endpoints(self) -> list[Endpoint]:
        """Every endpoint this replica serves, as it last knew them, without asking the store (for metrics)."""
        return sorted(self._all_endpoints(), key=lambda e: e.inference_id)

    def local_endpoint_ids(self) -> Collection[str]:
        return list(self._endpoints)

    def local_endpoint(self, inference_id: str) -> Endpoint | None:
        return self._endpoints.get(inference_id)

    async def apply_stored(self, inference_id: str, stored: Endpoint | None) -> None:
        """Serve what the shared store holds for `inference_id`: deploy it, bring its deployment to the stored
        settings (a new model or thread count redeploys), or stop it once deleted. A no-op when already so."""
        if stored == self._endpoints.get(inference_id):
            return  # the common case (our own change, an unknown id): no lock is created for it
        async with self._locks.hold(inference_id):
            current = self._endpoints.get(inference_id)
            if stored == current:
                return
            if stored is None:
                assert current is not None
                await self._forget(current)
                return
            self._endpoints[inference_id] = stored
            self._pending.take(
                inference_id
            )  # another replica stored it: our timed-out PUT's deployment serves
            await self._deployments.replace_incompatible(stored)
            deployment = self._deployments.start(stored)
            wanted = initial_allocations(stored)
            settings_changed = current is None or current.service_settings != stored.service_settings
            if settings_changed and deployment.target_allocations != wanted:
                await deployment.scale_to(wanted, AllocationCause.USER_UPDATE)

    async def _resolve(self, inference_id: str) -> None:
        """An id this replica does not know may have just been stored by another one: ask the store (unless it
        is unreachable: then the last known state answers)."""
        if self._replica is not None and inference_id not in self._endpoints:
            await self._replica.read_through(inference_id)

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

    async def _whole(self, change: Coroutine[Any, Any, T]) -> T:
        """Run an endpoint change to its end even when its caller leaves (a client cancel or disconnect), as ES
        completes a request whose client went away: a change is never half applied."""
        task = asyncio.create_task(change)
        self._changes.add(task)
        task.add_done_callback(self._changes.discard)
        return await asyncio.shield(task)

    @property
    def locked_ids(self) -> int:
        """Inference ids with a change under way (held or awaited per-id locks)."""
        return len(self._locks)

    def _all_endpoints(self) -> list[Endpoint]:
        endpoints = dict(self._endpoints)
        endpoints.setdefault(DEFAULT_ENDPOINT_ID, default_endpoint())
        return list(endpoints.values())

    def _known(self, inference_id: str) -> Endpoint:
        """A stored endpoint, or the endpoint of a timed-out PUT whose deployment is kept (core/pending.py)."""
        pending = self._pending.get(inference_id)
        return pending if pending is not None else self._get(inference_id)

    def _get(self, inference_id: str) -> Endpoint:
        endpoint = self._endpoints.get(inference_id)
        if endpoint is None and inference_id == DEFAULT_ENDPOINT_ID:
            endpoint = default_endpoint()
        if endpoint is None:
            raise endpoint_not_found(inference_id)
        return endpoint

    def _view(self, endpoint: Endpoint) -> Endpoint:
        """ES shows the deployment's current allocation count in place of the configured one; the endpoint of a
        timed-out PUT shows its deployment's state."""
        deployment = self._deployments.get(endpoint.inference_id)
        if self._pending.get(endpoint.inference_id) is not None:
            phase = deployment.phase if deployment is not None else Phase.STOPPED
            return replace(endpoint, deployment_state=phase)
        if deployment is None or deployment.state is not State.STARTED:
            return endpoint
        settings = replace(endpoint.service_settings, num_allocations=deployment.allocation_count)
        return replace(endpoint, service_settings=settings)
