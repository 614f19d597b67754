"""A deployment: `num_allocations` runtime sessions of `num_threads` threads fed by one bounded queue.

Items (one tokenized text each) wait in two lanes: interactive (search-style requests) ahead of bulk, with
aging so bulk is never starved. A free allocation takes the oldest live item of the chosen lane plus its
length-neighbours, up to a padded-token budget, so batches are length-sorted and pad only to their own longest
input. Items whose caller went away or whose deadline passed are dropped before batching, and a running batch
whose callers are all gone is aborted (the backend's abort: onnxruntime's terminate flag, OpenVINO's cancel).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from elser_server.core.errors import ElserError, deadline_exceeded, internal, queue_full, unavailable
from elser_server.core.events import AllocationCause, DeploymentEvent, Phase
from elser_server.core.observer import CoreObserver
from elser_server.core.types import Priority
from elser_server.runtime.backends import RunHandle, Session
from elser_server.runtime.batching import plan_batches
from elser_server.runtime.layout import Layout
from elser_server.runtime.sparse import sparsify
from elser_server.runtime.tokenizer import Encoding

log = logging.getLogger(__name__)

# Interactive requests are small: a few short texts (ES gives search-type inputs priority the same way).
INTERACTIVE_MAX_TEXTS = 8
INTERACTIVE_MAX_TOKENS = 512
# While interactive work is queued, the bulk lane still gets a batch whenever it has waited this long since its
# last batch (or since its head arrived), so bulk is never starved yet a deep bulk backlog does not count as
# "waiting" and cannot push every query behind it.
BULK_MAX_WAIT_S = 1.0
# While queries keep arriving (one within this many seconds), bulk batches shrink to this fraction of the token
# budget: a query waits for the running batch to finish, so shorter bulk batches bound its latency, at a small
# throughput cost paid only while there is interactive traffic.
INTERACTIVE_RECENT_S = 2.0
BULK_BUDGET_DIVISOR_WITH_QUERIES = 4
# How many queued items a batch is chosen from: wide enough to find length-neighbours, small enough to be cheap.
BATCH_WINDOW_FACTOR = 4


class State(enum.Enum):
    STARTING = "starting"
    STARTED = "started"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class SparseRow:
    token_ids: npt.NDArray[np.uint32]
    weights: npt.NDArray[np.float32]
    tokens: tuple[str, ...] | None


@dataclass(frozen=True)
class RowOptions:
    top_k: int | None = None
    min_weight: float | None = None
    token_lookup: Callable[[npt.NDArray[np.uint32]], list[str]] | None = None  # set when strings are wanted


@dataclass(eq=False)
class _Item:
    ids: npt.NDArray[np.int64]
    future: asyncio.Future[SparseRow]
    deadline: float
    enqueued: float
    options: RowOptions

    @property
    def length(self) -> int:
        return len(self.ids)


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


SessionFactory = Callable[[int], Session]


class Deployment:
    """Allocations × threads serving one model for one deployment id (= the inference id, as in ES)."""

    def __init__(
        self,
        deployment_id: str,
        model_id: str,
        *,
        num_threads: int,
        target_allocations: int,
        queue_capacity: int,
        token_budget: int,
        max_batch_size: int,
        processors: int | None = None,
        publish: Callable[[DeploymentEvent], None] | None = None,
        observer: CoreObserver | None = None,
    ) -> None:
        self.deployment_id = deployment_id
        self.model_id = model_id
        self.num_threads = num_threads
        self.queue_capacity = queue_capacity
        self.token_budget = token_budget
        self.max_batch_size = max_batch_size
        self.stats = DeploymentStats()
        self.state = State.STARTING
        self.reason: str | None = None
        self.target_allocations = target_allocations
        self.start_time = time.time()
        self._processors = processors or os.cpu_count() or 1
        self._session_factory: SessionFactory | None = None
        self.layout: Layout | None = None  # backend and precision, known once a session exists
        self._failure: ElserError | None = None
        self._lanes: dict[Priority, collections.deque[_Item]] = {
            Priority.INTERACTIVE: collections.deque(),
            Priority.BULK: collections.deque(),
        }
        self._queued = 0
        self._bulk_served_at = 0.0
        self._interactive_seen_at = -INTERACTIVE_RECENT_S
        self._queue_empty = asyncio.Event()
        self._queue_empty.set()
        self._wakeup = asyncio.Condition()
        self._workers: list[_Worker] = []
        self._started = asyncio.Event()
        self._scaling = asyncio.Lock()
        self._publish = publish
        self.observer = observer
        self._download: tuple[int, int] | None = None
        self._converting = False
        self._cause = AllocationCause.DEPLOYMENT_START
        self._from_zero: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------

    @property
    def allocation_count(self) -> int:
        return len(self._workers)

    @property
    def capacity(self) -> int:
        """Allocations this machine can run without oversubscribing its processors (ES: partial allocation)."""
        return self._processors // self.num_threads

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def phase(self) -> Phase:
        if self.state is State.STARTING:
            if self._converting:
                return Phase.CONVERTING
            return Phase.DOWNLOADING if self._download is not None else Phase.STARTING
        if self.state is State.STARTED:
            return (
                Phase.FULLY_ALLOCATED if self.allocation_count >= self.target_allocations else Phase.STARTED
            )
        return Phase[self.state.name]

    def snapshot(self) -> DeploymentEvent:
        done, total = self._download or (0, 0)
        return DeploymentEvent(
            self.deployment_id,
            self.model_id,
            self.phase,
            target_allocations=self.target_allocations,
            current_allocations=self.allocation_count,
            cause=self._cause,
            bytes_done=done,
            bytes_total=total,
            reason=self.reason,
        )

    def _emit(self) -> None:
        if self._publish is not None:
            self._publish(self.snapshot())

    def download_progress(self, done: int, total: int) -> None:
        self._download = (done, total)
        self._emit()

    def converting(self) -> None:
        """The downloaded model is being converted into a package (once per model; the download stays shown)."""
        self._converting = True
        self._emit()

    async def start(self, session_factory: SessionFactory) -> None:
        """Create the sessions (sequentially: session creation is not thread-safe) and warm them up."""
        self._session_factory = session_factory
        self._download = None
        self._converting = False
        self._emit()
        try:
            await self.scale_to(self.target_allocations)
        except Exception as exc:
            log.exception("deployment %s failed to start", self.deployment_id)
            self.fail(
                internal(f"Could not start deployment [{self.deployment_id}]: {exc}", "DEPLOYMENT_FAILED")
            )
            return
        if self.capacity < 1:
            self.reason = (
                f"Could not allocate [{self.num_threads}] threads per allocation: "
                f"this node has [{self._processors}] processors"
            )
            self._emit()  # stays starting (as ES) with the reason visible to watchers and stats
            return
        self.state = State.STARTED
        self._started.set()
        self._emit()

    def fail(self, error: ElserError) -> None:
        self.state = State.FAILED
        self.reason = error.reason
        self._failure = error
        self._cause = AllocationCause.FAILURE
        self._fail_all(error)
        self._started.set()
        self._emit()

    async def wait_started(self) -> None:
        """Return once an allocation serves; raise the failure (or UNAVAILABLE once stopped)."""
        await self._started.wait()
        if self._failure is not None:
            raise self._failure
        if self.state is not State.STARTED:
            raise unavailable(f"deployment [{self.deployment_id}] is stopped", "DEPLOYMENT_STOPPED")

    async def scale_to(self, target: int, cause: AllocationCause = AllocationCause.DEPLOYMENT_START) -> None:
        """Set the target and start/stop allocations up to what the processors allow."""
        async with self._scaling:
            self.target_allocations = target
            self._cause = cause
            wanted = min(target, self.capacity)
            if wanted < target:
                self.reason = (
                    f"[{target}] allocations of [{self.num_threads}] threads requested; this node has "
                    f"[{self._processors}] processors so [{wanted}] are allocated"
                )
            else:
                self.reason = None
            while len(self._workers) < wanted:
                worker = await asyncio.to_thread(self._new_worker, len(self._workers))
                worker.task = asyncio.create_task(
                    worker.loop(), name=f"{self.deployment_id}-alloc-{worker.index}"
                )
                self._workers.append(worker)
                if self.state is State.STARTING:
                    self.state = State.STARTED
                    self._started.set()
                self._emit()
            while len(self._workers) > wanted:
                await self._workers.pop().stop()
                self._emit()
            self._emit()

    def _new_worker(self, index: int) -> _Worker:
        assert self._session_factory is not None, "start() sets the session factory"
        session = self._session_factory(self.num_threads)
        session.warm_up(self.token_budget)
        self.layout = session.layout
        return _Worker(self, index, session)

    async def stop(self, grace_s: float) -> None:
        """Finish queued and running work (bounded by `grace_s`), then release the sessions."""
        if self.state in (State.STOPPING, State.STOPPED):
            return
        self.state = State.STOPPING
        self._emit()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue_empty.wait(), grace_s)
        self._fail_all(unavailable(f"deployment [{self.deployment_id}] is stopping", "DEPLOYMENT_STOPPING"))
        workers, self._workers = self._workers, []
        await asyncio.gather(*(w.stop() for w in workers))
        self.state = State.STOPPED
        self._started.set()
        self._emit()

    # --- inference -------------------------------------------------------------------------------------------

    def check_room(self, texts: int) -> None:
        """Reject (ES's 429) when `texts` more would overflow the queue: callers check before tokenizing too,
        so an overloaded deployment spends no CPU on work it would refuse."""
        if self._queued + texts > self.queue_capacity:
            self.stats.rejected_execution_count += 1
            raise queue_full(retry_after_s=self._retry_hint())

    async def embed(
        self,
        encodings: Sequence[Encoding],
        *,
        priority: Priority,
        deadline: float,
        options: RowOptions,
    ) -> list[SparseRow]:
        """Queue every text, wait for all rows (input order). Cancelling the caller drops its queued work."""
        if self.state in (State.STOPPING, State.STOPPED):
            raise unavailable(f"deployment [{self.deployment_id}] is stopping", "DEPLOYMENT_STOPPING")
        if self._failure is not None:
            raise self._failure
        self.check_room(len(encodings))
        if self.target_allocations == 0 and self.state is State.STARTED and self._from_zero is None:
            # Scaled to zero: bring one allocation back; this request waits in the queue meanwhile.
            self._from_zero = asyncio.create_task(self._scale_from_zero())
        if priority is Priority.AUTO:
            small = len(encodings) <= INTERACTIVE_MAX_TEXTS
            short = sum(len(e.ids) for e in encodings) <= INTERACTIVE_MAX_TOKENS
            priority = Priority.INTERACTIVE if small and short else Priority.BULK
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        items = [_Item(e.ids, loop.create_future(), deadline, now, options) for e in encodings]
        if priority is Priority.INTERACTIVE:
            self._interactive_seen_at = now
        # Queue a request's texts shortest first so neighbours in the lane make tight batches.
        lane = self._lanes[priority]
        lane.extend(sorted(items, key=lambda it: it.length))
        self._queued += len(items)
        self._queue_empty.clear()
        async with self._wakeup:
            self._wakeup.notify(len(self._workers) or 1)
        timed_out = False
        try:
            async with asyncio.timeout_at(_loop_time(loop, deadline)):
                return list(await asyncio.gather(*(it.future for it in items)))
        except TimeoutError:
            timed_out = True
            self.stats.timeout_count += 1
            raise deadline_exceeded("Timed out waiting for inference result") from None
        finally:
            # A caller that leaves cancels the gather, which has already cancelled the unfinished rows.
            abandoned = [it for it in items if it.future.cancelled() or not it.future.done()]
            for it in abandoned:
                it.future.cancel()
            if not timed_out:
                self.stats.dropped_count += len(abandoned)

    async def _scale_from_zero(self) -> None:
        try:
            await self.scale_to(1, AllocationCause.SCALE_FROM_ZERO)
        finally:
            self._from_zero = None

    def _retry_hint(self) -> float:
        per_item = (self.stats.average_inference_time_ms or 10.0) / 1000.0
        return max(0.1, min(30.0, per_item * self._queued / max(1, self.allocation_count)))

    def _fail_all(self, error: ElserError) -> None:
        for lane in self._lanes.values():
            while lane:
                item = lane.popleft()
                if not item.future.done():
                    item.future.set_exception(error)
        self._dequeued(self._queued)

    def _dequeued(self, n: int) -> None:
        self._queued -= n
        if self._queued == 0:
            self._queue_empty.set()

    async def _next_batch(self, worker: _Worker) -> list[_Item]:
        async with self._wakeup:
            while True:
                if worker.stopping:
                    return []
                batch = self._take_batch()
                if batch:
                    return batch
                await self._wakeup.wait()

    def _take_batch(self) -> list[_Item]:
        now = time.monotonic()
        lane = self._choose_lane(now)
        if lane is None:
            return []
        window: list[_Item] = []
        limit = self.max_batch_size * BATCH_WINDOW_FACTOR
        while lane and len(window) < limit:
            item = lane.popleft()
            if self._alive(item, now):
                window.append(item)
            else:
                self._dequeued(1)
        if not window:
            return []
        budget = self.token_budget
        if lane is self._lanes[Priority.BULK] and now - self._interactive_seen_at < INTERACTIVE_RECENT_S:
            budget = max(1, budget // BULK_BUDGET_DIVISOR_WITH_QUERIES)
        # The oldest live item (window[0]) is always in the batch: no starvation within a lane.
        groups = plan_batches([it.length for it in window], budget, self.max_batch_size)
        chosen = set(next(g for g in groups if 0 in g))
        lane.extendleft(reversed([it for i, it in enumerate(window) if i not in chosen]))
        self._dequeued(len(chosen))
        batch = [window[i] for i in sorted(chosen)]
        self.stats.dequeued_count += len(batch)
        self.stats.queue_time_s += sum(now - it.enqueued for it in batch)
        return batch

    def _choose_lane(self, now: float) -> collections.deque[_Item] | None:
        interactive, bulk = self._lanes[Priority.INTERACTIVE], self._lanes[Priority.BULK]
        self._prune(interactive, now)
        self._prune(bulk, now)
        if bulk and (not interactive or now - max(self._bulk_served_at, bulk[0].enqueued) > BULK_MAX_WAIT_S):
            self._bulk_served_at = now
            return bulk
        return interactive or None

    def _prune(self, lane: collections.deque[_Item], now: float) -> None:
        """Drop dead items at the head (cheap); dead items further back are skipped by the window scan."""
        while lane and not self._alive(lane[0], now):
            lane.popleft()
            self._dequeued(1)

    def _alive(self, item: _Item, now: float) -> bool:
        if item.future.done():  # its caller went away (counted as dropped when it left)
            return False
        if now >= item.deadline:
            self.stats.timeout_count += 1
            item.future.set_exception(deadline_exceeded("Timed out waiting for inference result"))
            return False
        return True


def _loop_time(loop: asyncio.AbstractEventLoop, monotonic_deadline: float) -> float:
    return loop.time() + (monotonic_deadline - time.monotonic())


class _Worker:
    """One allocation: a session and the single thread that runs it."""

    def __init__(self, deployment: Deployment, index: int, session: Session) -> None:
        self.deployment = deployment
        self.index = index
        self.session = session
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"alloc-{index}")
        self.task: asyncio.Task[None] | None = None
        self.stopping = False

    async def loop(self) -> None:
        dep = self.deployment
        aio_loop = asyncio.get_running_loop()
        while not self.stopping:
            batch = await dep._next_batch(self)
            if not batch:
                continue
            control = RunHandle()
            watchers = [it.future for it in batch]

            def abort_if_abandoned(
                _: asyncio.Future[SparseRow],
                futures: list[asyncio.Future[SparseRow]] = watchers,
                ctl: RunHandle = control,
            ) -> None:
                if all(f.cancelled() for f in futures):
                    ctl.cancel()

            for f in watchers:
                f.add_done_callback(abort_if_abandoned)
            dequeued = time.monotonic()
            started = time.perf_counter()
            try:
                rows = await aio_loop.run_in_executor(self.executor, _run_batch, self.session, batch, control)
            except Exception as exc:
                if control.cancelled:
                    continue  # every caller of this batch had gone; they were counted as dropped
                dep.stats.error_count += len(batch)
                log.exception("inference failed on %s", dep.deployment_id)
                err = internal(f"inference failed: {exc}", "INFERENCE_FAILED")
                for it in batch:
                    if not it.future.done():
                        it.future.set_exception(err)
                continue
            finally:
                for f in watchers:
                    f.remove_done_callback(abort_if_abandoned)
            elapsed = time.perf_counter() - started
            dep.stats.record_batch(len(batch), elapsed, time.monotonic())
            if dep.observer is not None:
                lengths = [it.length for it in batch]
                dep.observer.batch_done(
                    dep.deployment_id,
                    [dequeued - it.enqueued for it in batch],
                    sum(lengths),
                    max(lengths) * len(lengths),
                    elapsed,
                )
            for it, row in zip(batch, rows, strict=True):
                if not it.future.done():
                    it.future.set_result(row)

    async def stop(self) -> None:
        self.stopping = True
        async with self.deployment._wakeup:
            self.deployment._wakeup.notify_all()
        if self.task is not None:
            await self.task
        self.executor.shutdown(wait=True)


def _run_batch(session: Session, batch: list[_Item], control: RunHandle) -> list[SparseRow]:
    dense = session.run([it.ids for it in batch], run_options=control)
    rows = []
    for it, vec in zip(batch, dense, strict=True):
        opts = it.options
        ids, weights = sparsify(vec, top_k=opts.top_k, min_weight=opts.min_weight)
        tokens = tuple(opts.token_lookup(ids)) if opts.token_lookup is not None else None
        rows.append(SparseRow(ids, weights, tokens))
    return rows
