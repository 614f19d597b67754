"""A deployment's queue: tokenized texts wait in two lanes and leave as length-sorted batches.

Each lane has its own room: a full bulk lane refuses bulk work (ES's 429) but never a search query, and a flood
of queries is refused by the interactive lane's own, smaller bound. Interactive (search-style) requests go ahead
of bulk, with aging so bulk is never starved. Besides the allocations, the deployment's query runner takes
interactive batches only (`next_batch(..., interactive_only=True)`), so a query need not wait for a bulk batch.

A free allocation takes the oldest live text of the chosen lane plus its length-neighbours, up to a padded-token
budget, so batches pad only to their own longest input. Texts whose caller went away or whose deadline passed
are dropped before batching.

Example: bulk holds texts of 300, 20, 25 and 280 tokens (oldest first) with a 1024-token budget. The batch is
the oldest (300) plus its nearest length (280): 2 × 300 padded tokens; 20 and 25 go together next.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from elser_server.core.errors import ElserError, deadline_exceeded, queue_full
from elser_server.core.stats import DeploymentStats
from elser_server.core.types import Priority
from elser_server.runtime.batching import plan_batches

# Interactive requests are small: a few short texts (ES gives search-type inputs priority the same way).
INTERACTIVE_MAX_TEXTS = 8
INTERACTIVE_MAX_TOKENS = 512
# While interactive work is queued, the bulk lane still gets a batch whenever it has waited this long since its
# last batch (or since its head arrived), so bulk is never starved yet a deep bulk backlog does not count as
# "waiting" and cannot push every query behind it.
BULK_MAX_WAIT_S = 1.0
# How many queued texts a batch is chosen from: wide enough to find length-neighbours, small enough to be cheap.
BATCH_WINDOW_FACTOR = 4


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
class QueuedText:
    ids: npt.NDArray[np.int64]
    future: asyncio.Future[SparseRow]
    deadline: float
    enqueued: float
    options: RowOptions

    @property
    def length(self) -> int:
        return len(self.ids)


def _candidate_lanes(priority: Priority, texts: int) -> tuple[Priority, ...]:
    if priority is not Priority.AUTO:
        return (priority,)
    if texts > INTERACTIVE_MAX_TEXTS:
        return (Priority.BULK,)
    return (Priority.INTERACTIVE, Priority.BULK)


def request_priority(lengths: Sequence[int]) -> Priority:
    """AUTO's choice: a few short texts are a search query, anything else is bulk."""
    small = len(lengths) <= INTERACTIVE_MAX_TEXTS
    short = sum(lengths) <= INTERACTIVE_MAX_TOKENS
    return Priority.INTERACTIVE if small and short else Priority.BULK


class _Lane:
    def __init__(self, priority: Priority, capacity: int) -> None:
        self.priority = priority
        self.capacity = capacity
        self.texts: collections.deque[QueuedText] = collections.deque()

    def has_room(self, texts: int) -> bool:
        return len(self.texts) + texts <= self.capacity


class BatchQueue:
    """Bounded by `capacity` bulk texts and, apart, `interactive_capacity` interactive ones; rejections, timeouts
    and queue times are counted in `stats`."""

    def __init__(
        self,
        capacity: int,
        interactive_capacity: int,
        token_budget: int,
        max_batch_size: int,
        stats: DeploymentStats,
    ) -> None:
        self.capacity = capacity
        self.token_budget = token_budget
        self.max_batch_size = max_batch_size
        self._stats = stats
        self._lanes = {
            Priority.INTERACTIVE: _Lane(Priority.INTERACTIVE, interactive_capacity),
            Priority.BULK: _Lane(Priority.BULK, capacity),
        }
        self._bulk_served_at = 0.0
        self._empty = asyncio.Event()
        self._empty.set()
        lock = asyncio.Lock()
        self._wakeup = asyncio.Condition(lock)
        self._query_wakeup = asyncio.Condition(lock)  # the query runner, woken by interactive work only
        self._waiting = 0

    @property
    def queued(self) -> int:
        return sum(len(lane.texts) for lane in self._lanes.values())

    @property
    def waiting(self) -> int:
        """Consumers (idle allocations, the query runner) waiting for work."""
        return self._waiting

    def check_room(self, texts: int, priority: Priority, retry_after_s: Callable[[int], float]) -> None:
        """Reject (ES's 429) when `texts` more would overflow their lane; `retry_after_s` maps the texts queued in
        that lane to the retry hint. AUTO is not classified yet (that needs token counts): it passes while a lane
        it may land in has room, and is checked again once classified."""
        lanes = [self._lanes[p] for p in _candidate_lanes(priority, texts)]
        if any(lane.has_room(texts) for lane in lanes):
            return
        self._stats.rejected_execution_count += 1
        raise queue_full(retry_after_s=retry_after_s(min(len(lane.texts) for lane in lanes)))

    async def put(self, texts: list[QueuedText], priority: Priority, wake: int) -> None:
        """Queue a request's texts (shortest first, so lane neighbours make tight batches) and wake up to
        `wake` idle allocations."""
        self._lanes[priority].texts.extend(sorted(texts, key=lambda t: t.length))
        self._empty.clear()
        async with self._wakeup:
            self._wakeup.notify(wake)
            if priority is Priority.INTERACTIVE:
                self._query_wakeup.notify()

    async def next_batch(
        self, stopping: Callable[[], bool], *, interactive_only: bool = False
    ) -> list[QueuedText]:
        """Wait for the next batch; [] once `stopping()` is true (see `wake_all`). `interactive_only`: the query
        runner's view, which never takes bulk work."""
        wakeup = self._query_wakeup if interactive_only else self._wakeup
        async with wakeup:
            while True:
                if stopping():
                    return []
                batch = self._take_batch(interactive_only)
                if batch:
                    return batch
                self._waiting += 1
                try:
                    await wakeup.wait()
                finally:
                    self._waiting -= 1

    async def wake_all(self) -> None:
        async with self._wakeup:
            self._wakeup.notify_all()
            self._query_wakeup.notify_all()

    async def wait_empty(self) -> None:
        await self._empty.wait()

    def fail_all(self, error: ElserError) -> None:
        for lane in self._lanes.values():
            while lane.texts:
                text = lane.texts.popleft()
                if not text.future.done():
                    text.future.set_exception(error)
        self._dequeued()

    def _dequeued(self) -> None:
        if not any(lane.texts for lane in self._lanes.values()):
            self._empty.set()

    def _take_batch(self, interactive_only: bool) -> list[QueuedText]:
        now = time.monotonic()
        lane = self._choose_lane(now, interactive_only)
        if lane is None:
            return []
        window: list[QueuedText] = []
        limit = self.max_batch_size * BATCH_WINDOW_FACTOR
        while lane.texts and len(window) < limit:
            text = lane.texts.popleft()
            if self._alive(text, now):
                window.append(text)
        if not window:
            self._dequeued()
            return []
        # The oldest live text (window[0]) is always in the batch: no starvation within a lane.
        groups = plan_batches([t.length for t in window], self.token_budget, self.max_batch_size)
        chosen = set(next(g for g in groups if 0 in g))
        lane.texts.extendleft(reversed([t for i, t in enumerate(window) if i not in chosen]))
        self._dequeued()
        batch = [window[i] for i in sorted(chosen)]
        self._stats.dequeued_count += len(batch)
        self._stats.queue_time_s += sum(now - t.enqueued for t in batch)
        return batch

    def _choose_lane(self, now: float, interactive_only: bool) -> _Lane | None:
        interactive, bulk = self._lanes[Priority.INTERACTIVE], self._lanes[Priority.BULK]
        self._prune(interactive, now)
        if interactive_only:
            return interactive if interactive.texts else None
        self._prune(bulk, now)
        waited = now - max(self._bulk_served_at, bulk.texts[0].enqueued) if bulk.texts else 0.0
        if bulk.texts and (not interactive.texts or waited > BULK_MAX_WAIT_S):
            self._bulk_served_at = now
            return bulk
        return interactive if interactive.texts else None

    def _prune(self, lane: _Lane, now: float) -> None:
        """Drop dead texts at the head (cheap); dead texts further back are skipped by the window scan."""
        while lane.texts and not self._alive(lane.texts[0], now):
            lane.texts.popleft()
        self._dequeued()

    def _alive(self, text: QueuedText, now: float) -> bool:
        if text.future.done():  # its caller went away (counted as dropped when it left)
            return False
        if now >= text.deadline:
            self._stats.timeout_count += 1
            text.future.set_exception(deadline_exceeded("Timed out waiting for inference result"))
            return False
        return True
