"""A deployment: `num_allocations` model sessions of `num_threads` threads each, fed by one bounded queue
(core/queue.py), for one deployment id (= the inference id, as in ES). This module owns its life: starting
(download and conversion progress, then sessions), scaling between allocation counts, stopping, and the
phase watchers and stats see.

`State` is the internal lifecycle; `Phase` (core/events.py) is what the API calls the deployment's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import time
from collections.abc import Callable, Sequence

from elser_server.core.allocation import Allocation
from elser_server.core.errors import (
    ElserError,
    deadline_exceeded,
    internal,
    not_enough_memory_to_update,
    unavailable,
)
from elser_server.core.events import AllocationCause, DeploymentEvent, Phase
from elser_server.core.memory import MemoryBudget
from elser_server.core.observer import CoreObserver
from elser_server.core.queue import BatchQueue, QueuedText, RowOptions, SparseRow, request_priority
from elser_server.core.stats import DeploymentStats
from elser_server.core.types import Priority
from elser_server.runtime.backends import Session
from elser_server.runtime.layout import Layout
from elser_server.runtime.memory import release_free_memory
from elser_server.runtime.tokenizer import Encoding

log = logging.getLogger(__name__)


class State(enum.Enum):
    STARTING = "starting"
    STARTED = "started"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


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
        interactive_queue_capacity: int,
        token_budget: int,
        max_batch_size: int,
        processors: int | None = None,
        publish: Callable[[DeploymentEvent], None] | None = None,
        observer: CoreObserver | None = None,
        memory: MemoryBudget | None = None,
    ) -> None:
        """`memory`: the budget this deployment's allocations are reserved in (none: unbounded)."""
        self.deployment_id = deployment_id
        self.model_id = model_id
        self.num_threads = num_threads
        self.token_budget = token_budget
        self.stats = DeploymentStats()
        self._queue = BatchQueue(
            queue_capacity, interactive_queue_capacity, token_budget, max_batch_size, self.stats
        )
        self.state = State.STARTING
        self.reason: str | None = None
        self.target_allocations = target_allocations
        self.start_time = time.time()
        self._processors = processors or os.cpu_count() or 1
        self._session_factory: SessionFactory | None = None
        self.layout: Layout | None = None  # backend and precision, known once a session exists
        self._failure: ElserError | None = None
        self._allocations: list[Allocation] = []
        self._query_runner: Allocation | None = None
        self._started = asyncio.Event()
        self._scaling = asyncio.Lock()
        self._publish = publish
        self._observer = observer
        self._memory = memory
        self._download: tuple[int, int] | None = None
        self._converting = False
        self._cause = AllocationCause.DEPLOYMENT_START
        self._from_zero: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------

    @property
    def allocation_count(self) -> int:
        return len(self._allocations)

    @property
    def queue_capacity(self) -> int:
        return self._queue.capacity

    @property
    def capacity(self) -> int:
        """Allocations this machine can run without oversubscribing its processors (ES: partial allocation)."""
        return self._processors // self.num_threads

    @property
    def queued(self) -> int:
        return self._queue.queued

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
        self._queue.fail_all(error)
        self._started.set()
        self._emit()

    async def wait_started(self) -> None:
        """Return once an allocation serves; raise the failure (or UNAVAILABLE once stopped)."""
        await self._started.wait()
        if self._failure is not None:
            raise self._failure
        if self.state is not State.STARTED:
            raise unavailable(f"deployment [{self.deployment_id}] is stopped", "DEPLOYMENT_STOPPED")

    @property
    def wanted_allocations(self) -> int:
        """The allocations the target asks for that the processors can run."""
        return min(self.target_allocations, self.capacity)

    async def scale_to(self, target: int, cause: AllocationCause = AllocationCause.DEPLOYMENT_START) -> None:
        """Set the target and start/stop allocations up to what the processors and the memory budget allow."""
        async with self._scaling:
            if self.state in (State.STOPPING, State.STOPPED):
                return  # a stopped deployment starts no sessions again
            self.target_allocations = target
            self._cause = cause
            wanted = self.wanted_allocations
            allowed = self._memory.fit(self, wanted) if self._memory is not None else wanted
            if allowed < wanted:
                self.reason = (
                    f"[{target}] allocations requested; the memory limit leaves room for [{allowed}]"
                )
            elif wanted < target:
                self.reason = (
                    f"[{target}] allocations of [{self.num_threads}] threads requested; this node has "
                    f"[{self._processors}] processors so [{wanted}] are allocated"
                )
            else:
                self.reason = None
            if self._session_factory is None:  # still installing the model: start() applies the target
                self._emit()
                return
            while len(self._allocations) < allowed:
                allocation = await asyncio.to_thread(self._new_allocation, len(self._allocations))
                allocation.start()
                self._allocations.append(allocation)
                if self.state is State.STARTING:
                    self.state = State.STARTED
                    self._started.set()
                self._emit()
            if len(self._allocations) > allowed:
                while len(self._allocations) > allowed:
                    await self._allocations.pop().stop()
                    self._emit()
                # The query runner holds the first session: stopped (with none left) before the memory goes back.
                await self._keep_query_runner()
                await asyncio.to_thread(release_free_memory)
            else:
                await self._keep_query_runner()
            self._emit()

    async def _keep_query_runner(self) -> None:
        """A query runner while any allocation serves, on the first allocation's weights (the last one stopped)."""
        if self._allocations and self._query_runner is None:
            first = self._allocations[0]
            # Off the event loop: a backend may compile a model for it (OpenVINO, small models).
            session = await asyncio.to_thread(first.session.concurrent_session)
            self._query_runner = Allocation(
                self.deployment_id,
                first.index,
                session,
                self._queue,
                self.stats,
                self._observer,
                interactive_only=True,
            )
            self._query_runner.start()
        elif not self._allocations and self._query_runner is not None:
            runner, self._query_runner = self._query_runner, None
            await runner.stop()

    def _new_allocation(self, index: int) -> Allocation:
        assert self._session_factory is not None, "start() sets the session factory"
        session = self._session_factory(self.num_threads)
        session.warm_up(self.token_budget)
        self.layout = session.layout
        return Allocation(self.deployment_id, index, session, self._queue, self.stats, self._observer)

    async def stop(self, grace_s: float) -> None:
        """Finish queued and running work (bounded by `grace_s`), then release the sessions."""
        if self.state in (State.STOPPING, State.STOPPED):
            return
        self.state = State.STOPPING
        self._emit()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.wait_empty(), grace_s)
        self._queue.fail_all(
            unavailable(f"deployment [{self.deployment_id}] is stopping", "DEPLOYMENT_STOPPING")
        )
        async with self._scaling:  # a scaling under way (a session being made) finishes first, then stops
            allocations, self._allocations = self._allocations, []
            runners = [self._query_runner] if self._query_runner is not None else []
            self._query_runner = None
        await asyncio.gather(*(a.stop() for a in [*allocations, *runners]))
        # The sessions are gone once their threads have ended; give their memory back to the system.
        del allocations, runners
        await asyncio.to_thread(release_free_memory)
        self.state = State.STOPPED
        self._started.set()
        self._emit()

    # --- inference -------------------------------------------------------------------------------------------

    def check_room(self, texts: int, priority: Priority) -> None:
        """Reject (ES's 429) when `texts` more would overflow their lane of the queue: callers check before
        tokenizing too, so an overloaded deployment spends no CPU on work it would refuse."""
        self._queue.check_room(texts, priority, self._retry_hint)

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
        if priority is Priority.AUTO:
            priority = request_priority([len(e.ids) for e in encodings])
        self.check_room(len(encodings), priority)
        if self.target_allocations == 0 and self.state is State.STARTED and self._from_zero is None:
            # Scaled to zero: bring one allocation back; this request waits in the queue meanwhile.
            self._from_zero = asyncio.create_task(self._scale_from_zero())
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        items = [QueuedText(e.ids, loop.create_future(), deadline, now, options) for e in encodings]
        await self._queue.put(items, priority, wake=len(self._allocations) or 1)
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
            if not self._allocations:
                # No memory for one allocation: nothing would ever serve what is queued.
                self._queue.fail_all(not_enough_memory_to_update())
        finally:
            self._from_zero = None

    def _retry_hint(self, queued: int) -> float:
        """Seconds until `queued` texts ahead have likely been served."""
        per_item = (self.stats.average_inference_time_ms or 10.0) / 1000.0
        return max(0.1, min(30.0, per_item * queued / max(1, self.allocation_count)))


def _loop_time(loop: asyncio.AbstractEventLoop, monotonic_deadline: float) -> float:
    return loop.time() + (monotonic_deadline - time.monotonic())
