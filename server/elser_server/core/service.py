"""The core facade both transports call (the MLServer "data plane" pattern): endpoints, deployments, inference.

ES semantics live here once; transports only translate. Endpoint rules come from `endpoint_config`,
persistence from an `EndpointStore`, models from the `ModelManager`, batching from `Deployment`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from elser_server.core.adaptive import AdaptiveAllocator, AdaptiveTarget
from elser_server.core.chunking.chunker import Chunk, chunk
from elser_server.core.chunking.settings import ChunkingSettings, Strategy, parse_chunking_settings
from elser_server.core.deployment import Deployment, DeploymentStats, RowOptions, State
from elser_server.core.endpoint_config import (
    DEFAULT_ENDPOINT_ID,
    RESERVED_ENDPOINT_IDS,
    check_infer_task_type,
    check_task_type,
    default_endpoint,
    parse_put_request,
    parse_task_type,
    parse_update_request,
)
from elser_server.core.errors import (
    Code,
    ElserError,
    FieldViolation,
    deadline_exceeded,
    endpoint_exists,
    endpoint_not_found,
    internal,
    invalid,
)
from elser_server.core.events import AllocationCause, DeploymentEvent, EventHub, Phase
from elser_server.core.models import ModelManager
from elser_server.core.observer import CoreObserver
from elser_server.core.store import EndpointStore
from elser_server.core.types import Endpoint, InferOptions, Priority, SparseEmbedding, TaskType
from elser_server.runtime.layout import Layout
from elser_server.runtime.tokenizer import Encoding, Tokenizer

log = logging.getLogger(__name__)

VALIDATION_INPUT = "how big"  # ES runs this one inference before storing a new endpoint
# Endpoints stored before ES 8.16 have no chunking settings and chunk as word 250/100.
LEGACY_CHUNKING = ChunkingSettings(Strategy.WORD, max_chunk_size=250, overlap=100)
INLINE_TOKENIZE_CHARS = 2000  # ≈ 20 µs of tokenization
CHUNK_WINDOW = 16  # chunks queued at a time: small, so the first results stream out early


@dataclass(frozen=True)
class PutResult:
    endpoint: Endpoint
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DeleteResult:
    acknowledged: bool
    pipelines: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)
    error_message: str | None = None


@dataclass(frozen=True)
class ChunkEmbedding:
    """One chunk of input `input_index` (chunks numbered in text order) and its embedding."""

    input_index: int
    chunk_index: int
    chunk: Chunk
    embedding: SparseEmbedding


@dataclass(frozen=True)
class ChunkedInputDone:
    """Every chunk of input `input_index` was sent (`chunk_count`), or it failed with `error` alone."""

    input_index: int
    chunk_count: int
    error: ElserError | None = None


@dataclass(frozen=True)
class DeploymentReport:
    """What GetDeploymentStats / the stats route show (after ES deployment_stats)."""

    snapshot: DeploymentEvent
    stats: DeploymentStats
    threads_per_allocation: int
    queue_capacity: int
    queued: int = 0
    start_time: float | None = None
    layout: Layout | None = None  # how the model runs (backend, precision); None until an allocation starts


@dataclass(frozen=True)
class Limits:
    max_inputs_per_request: int = 1024
    max_input_bytes: int = 1 << 20
    default_timeout_s: float = 30.0
    put_timeout_s: float = 30.0


@dataclass(frozen=True)
class BatchingConfig:
    queue_capacity: int = 10_000
    token_budget: int = 1024
    max_batch_size: int = 32
    processors: int | None = None
    stop_grace_s: float = 10.0


@dataclass(frozen=True)
class AdaptiveConfig:
    interval_s: float = 10.0
    scale_to_zero_s: float = 24 * 3600.0
    scale_up_cooldown_s: float = 300.0


def format_time_value(seconds: float) -> str:
    """ES TimeValue rendering used in messages: 30s, 1.5s → 1500ms, 2m."""
    ms = round(seconds * 1000)
    if ms % 60_000 == 0 and ms >= 60_000:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


class InferenceCore:
    def __init__(
        self,
        store: EndpointStore,
        models: ModelManager,
        *,
        limits: Limits = Limits(),
        batching: BatchingConfig = BatchingConfig(),
        adaptive: AdaptiveConfig = AdaptiveConfig(),
        preload_default_endpoint: bool = False,
        observer: CoreObserver | None = None,
    ) -> None:
        self._store = store
        self._observer = observer
        self._models = models
        self._limits = limits
        self._batching = batching
        self._preload_default = preload_default_endpoint
        self._endpoints: dict[str, Endpoint] = {}
        self._deployments: dict[str, Deployment] = {}
        self._deploy_tasks: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._events = EventHub()
        self._allocator = AdaptiveAllocator(
            self._adaptive_targets,
            interval_s=adaptive.interval_s,
            scale_to_zero_s=adaptive.scale_to_zero_s,
            scale_up_cooldown_s=adaptive.scale_up_cooldown_s,
        )
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
        requested = parse_task_type(task_type) if task_type is not None else None
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
        requested = parse_task_type(task_type) if task_type is not None else None
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

    async def update_endpoint(
        self, inference_id: str, task_type: str | None, body: object, *, raw_body: str | None = None
    ) -> Endpoint:
        async with self._lock(inference_id):
            existing = self._endpoints.get(inference_id)
            if existing is None:
                raise endpoint_not_found(inference_id)
            updated = parse_update_request(existing, task_type, body, raw_body=raw_body)
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
        through the shared queue. Results stream in input and chunk order; one input failing does not fail the
        others. Work advances window by window (windows span inputs), so memory stays bounded whatever the text
        length."""
        requested = parse_task_type(task_type) if task_type is not None else None
        endpoint = self._get(inference_id)
        check_infer_task_type(endpoint, requested)
        self._validate_inputs(inputs, options)
        settings = (
            parse_chunking_settings(chunking_settings)
            if chunking_settings is not None
            else endpoint.chunking_settings or LEGACY_CHUNKING
        )
        if deadline is None:
            deadline = time.monotonic() + self._limits.default_timeout_s
        deployment = await self._deployment_for_inference(endpoint, deadline)
        model = await self._models.get(deployment.model_id)
        lookup = model.tokenizer.id_to_tokens if options.return_tokens else None
        row_options = RowOptions(options.top_k, options.min_weight, lookup)
        loop = asyncio.get_running_loop()
        priority = Priority.BULK if options.priority is Priority.AUTO else options.priority

        async def embed_window(window: list[tuple[int, Chunk]]) -> list[SparseEmbedding]:
            pieces = [c.text(inputs[index]) for index, c in window]
            encodings = await self._tokenize(model.tokenizer, pieces)
            rows = await deployment.embed(
                encodings, priority=priority, deadline=deadline, options=row_options
            )
            return [
                SparseEmbedding(r.token_ids, r.weights, e.is_truncated, len(e.ids), r.tokens)
                for r, e in zip(rows, encodings, strict=True)
            ]

        async def windows() -> AsyncGenerator[list[tuple[int, Chunk]], None]:
            # Windows span inputs, so many short inputs share one batch instead of one call each.
            window: list[tuple[int, Chunk]] = []
            for index, text in enumerate(inputs):
                for c in await loop.run_in_executor(self._tokenize_pool, chunk, text, settings):
                    window.append((index, c))
                    if len(window) == CHUNK_WINDOW:
                        yield window
                        window = []
            if window:
                yield window

        source = windows()
        # One window is always queued ahead of the one being streamed, so the allocations never idle.
        pending: deque[tuple[list[tuple[int, Chunk]], asyncio.Future[list[SparseEmbedding]]]] = deque()

        async def queue_ahead() -> None:
            while len(pending) < 2 and (window := await anext(source, None)) is not None:
                pending.append((window, asyncio.ensure_future(embed_window(window))))

        failed: dict[int, ElserError] = {}  # a failed window fails the inputs it held, not the others
        current, sent = 0, 0  # the input being streamed and how many of its chunks were sent
        try:
            await queue_ahead()
            while pending:
                window, future = pending.popleft()
                try:
                    embeddings = await future
                except ElserError as exc:
                    for index, _ in window:
                        failed.setdefault(index, exc)
                await queue_ahead()
                for position, (index, c) in enumerate(window):
                    while current < index:  # inputs before this one are complete (or had no chunks)
                        yield ChunkedInputDone(current, sent, failed.get(current))
                        current, sent = current + 1, 0
                    if index not in failed:
                        yield ChunkEmbedding(index, sent, c, embeddings[position])
                        sent += 1
            while current < len(inputs):
                yield ChunkedInputDone(current, sent, failed.get(current))
                current, sent = current + 1, 0
        finally:
            for _, future in pending:
                future.cancel()
            await source.aclose()

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
        requested = parse_task_type(task_type) if task_type is not None else None
        endpoint = self._get(inference_id)
        check_infer_task_type(endpoint, requested)
        self._validate_inputs(inputs, options)
        if deadline is None:
            deadline = time.monotonic() + self._limits.default_timeout_s
        deployment = await self._deployment_for_inference(endpoint, deadline)
        deployment.check_room(len(inputs))
        model = await self._models.get(deployment.model_id)
        encodings = await self._tokenize(model.tokenizer, inputs)
        lookup = model.tokenizer.id_to_tokens if options.return_tokens else None
        row_options = RowOptions(options.top_k, options.min_weight, lookup)
        rows = await deployment.embed(
            encodings, priority=options.priority, deadline=deadline, options=row_options
        )
        return [
            SparseEmbedding(r.token_ids, r.weights, e.is_truncated, len(e.ids), r.tokens)
            for r, e in zip(rows, encodings, strict=True)
        ]

    async def _tokenize(self, tokenizer: Tokenizer, texts: Sequence[str]) -> list[Encoding]:
        """Short requests (search queries) are tokenized inline: a thread hop would cost more than the work."""
        if sum(len(t) for t in texts) <= INLINE_TOKENIZE_CHARS:
            return tokenizer.encode_batch(texts)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._tokenize_pool, tokenizer.encode_batch, list(texts))

    def _validate_inputs(self, inputs: Sequence[str], options: InferOptions) -> None:
        if not inputs:
            raise invalid(
                "Validation Failed: 1: Field [input] cannot be an empty array;",
                es_type="action_request_validation_exception",
                field="input",
                error_reason="EMPTY_INPUT",
            )
        limit = self._limits.max_inputs_per_request
        if len(inputs) > limit:
            raise invalid(
                f"Validation Failed: 1: Too many inputs [{len(inputs)}]: at most [{limit}] are accepted per "
                "request;",
                es_type="action_request_validation_exception",
                field="input",
                error_reason="TOO_MANY_INPUTS",
            )
        violations = []
        for i, text in enumerate(inputs):
            try:
                size = len(text.encode("utf-8"))
            except UnicodeEncodeError:
                violations.append(FieldViolation(f"input[{i}]", f"input [{i}] is not valid Unicode text"))
                continue
            if size > self._limits.max_input_bytes:
                violations.append(
                    FieldViolation(
                        f"input[{i}]",
                        f"input [{i}] is [{size}] bytes, larger than the limit of "
                        f"[{self._limits.max_input_bytes}] bytes",
                    )
                )
        if options.top_k is not None and options.top_k < 0:
            violations.append(FieldViolation("top_k", "top_k must not be negative"))
        if options.min_weight is not None and options.min_weight < 0:
            violations.append(FieldViolation("min_weight", "min_weight must not be negative"))
        if violations:
            raise invalid(
                "Validation Failed: "
                + "".join(f"{n}: {v.description};" for n, v in enumerate(violations, start=1)),
                es_type="action_request_validation_exception",
                violations=violations,
                error_reason="INVALID_INPUT",
            )

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
            raise ElserError(
                Code.DEADLINE_EXCEEDED,
                f"Timed out after [{format_time_value(timeout_s)}] waiting for model deployment to start. "
                "Use the trained model stats API to track the state of the deployment.",
                "status_exception",
                408,
                "DEPLOYMENT_START_TIMEOUT",
            ) from None
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
        encodings: list[Encoding] = model.tokenizer.encode_batch([VALIDATION_INPUT])
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
        targets = []
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
