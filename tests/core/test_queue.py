"""The deployment queue's batching policy (core/queue.py), driven through its public interface."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from elser_server.core.errors import ElserError
from elser_server.core.queue import INTERACTIVE_MAX_TEXTS, BatchQueue, QueuedText, RowOptions, SparseRow
from elser_server.core.stats import DeploymentStats
from elser_server.core.types import Priority
from support import eventually_async

HANG_GUARD_S = 10.0  # only against hangs: nothing here asserts on timing


def text(length: int, enqueued: float) -> QueuedText:
    future: asyncio.Future[SparseRow] = asyncio.get_running_loop().create_future()
    return QueuedText(np.zeros(length, dtype=np.int64), future, time.monotonic() + 60, enqueued, RowOptions())


def never() -> bool:
    return False


async def test_interactive_lane_first_but_bulk_ages() -> None:
    queue = BatchQueue(
        100, interactive_capacity=10, token_budget=64, max_batch_size=4, stats=DeploymentStats()
    )
    now = time.monotonic()
    query = text(5, now)
    await queue.put([text(10, now) for _ in range(3)], Priority.BULK, wake=1)
    await queue.put([query], Priority.INTERACTIVE, wake=1)
    assert await queue.next_batch(never) == [query]

    aged = BatchQueue(
        100, interactive_capacity=10, token_budget=64, max_batch_size=4, stats=DeploymentStats()
    )
    old = text(10, now - 5.0)
    await aged.put([old], Priority.BULK, wake=1)
    await aged.put([text(5, now)], Priority.INTERACTIVE, wake=1)
    batch = await aged.next_batch(never)
    assert batch[0] is old  # aged bulk work goes before newer interactive work


async def test_batches_respect_token_budget_and_drop_cancelled() -> None:
    stats = DeploymentStats()
    queue = BatchQueue(100, interactive_capacity=10, token_budget=40, max_batch_size=8, stats=stats)
    now = time.monotonic()
    texts = [text(n, now) for n in (5, 6, 7, 30, 31)]
    texts[1].future.cancel()
    await queue.put(texts, Priority.BULK, wake=1)
    first = await queue.next_batch(never)
    assert texts[1] not in first and texts[0] in first
    assert len(first) * max(t.length for t in first) <= 40
    taken = list(first)
    while queue.queued:
        taken += await queue.next_batch(never)
    assert {id(t) for t in taken} == {id(t) for t in texts if t is not texts[1]}
    assert stats.dequeued_count == 4


async def test_a_full_queue_rejects_with_es_429_and_counts_it() -> None:
    stats = DeploymentStats()
    queue = BatchQueue(2, interactive_capacity=10, token_budget=64, max_batch_size=4, stats=stats)
    now = time.monotonic()
    await queue.put([text(3, now), text(3, now)], Priority.BULK, wake=1)
    with pytest.raises(ElserError) as exc:
        queue.check_room(1, Priority.BULK, lambda queued: 0.5)
    assert exc.value.http_status == 429 and exc.value.retry_after_s == 0.5
    assert stats.rejected_execution_count == 1


async def test_each_lane_has_its_own_room() -> None:
    stats = DeploymentStats()
    room = INTERACTIVE_MAX_TEXTS + 1
    queue = BatchQueue(4, interactive_capacity=room, token_budget=64, max_batch_size=4, stats=stats)
    now = time.monotonic()
    await queue.put([text(3, now) for _ in range(4)], Priority.BULK, wake=1)

    def hint(queued: int) -> float:
        return queued / 10

    with pytest.raises(ElserError) as exc:
        queue.check_room(1, Priority.BULK, hint)
    assert exc.value.http_status == 429 and exc.value.retry_after_s == 0.4
    # A full bulk lane refuses no search query, nor an unclassified request that may turn out to be one.
    queue.check_room(room, Priority.INTERACTIVE, hint)
    queue.check_room(INTERACTIVE_MAX_TEXTS, Priority.AUTO, hint)
    with pytest.raises(ElserError):
        queue.check_room(INTERACTIVE_MAX_TEXTS + 1, Priority.AUTO, hint)  # too many texts to be a query

    # The interactive lane is bounded on its own: a flood of queries is refused, with its own retry hint.
    await queue.put([text(3, now) for _ in range(room)], Priority.INTERACTIVE, wake=1)
    with pytest.raises(ElserError) as exc:
        queue.check_room(1, Priority.INTERACTIVE, hint)
    assert exc.value.http_status == 429 and exc.value.retry_after_s == room / 10
    with pytest.raises(ElserError):
        queue.check_room(1, Priority.AUTO, hint)  # both lanes it could land in are full
    assert stats.rejected_execution_count == 4
    assert queue.queued == 4 + room


async def test_the_query_runner_takes_only_interactive_work() -> None:
    queue = BatchQueue(
        100, interactive_capacity=10, token_budget=64, max_batch_size=4, stats=DeploymentStats()
    )
    now = time.monotonic()
    bulk = text(10, now - 5.0)
    query = text(5, now)
    await queue.put([bulk], Priority.BULK, wake=1)
    await queue.put([query], Priority.INTERACTIVE, wake=1)
    assert await queue.next_batch(never, interactive_only=True) == [query]  # the older bulk text stays
    assert queue.queued == 1
    assert await queue.next_batch(never) == [bulk]


async def test_bulk_work_wakes_an_allocation_while_the_query_runner_waits() -> None:
    queue = BatchQueue(
        100, interactive_capacity=10, token_budget=64, max_batch_size=4, stats=DeploymentStats()
    )
    runner = asyncio.create_task(queue.next_batch(never, interactive_only=True))
    allocation = asyncio.create_task(queue.next_batch(never))
    await eventually_async(lambda: queue.waiting == 2, what="both consumers to wait")
    bulk = text(10, time.monotonic())
    await queue.put([bulk], Priority.BULK, wake=1)
    async with asyncio.timeout(HANG_GUARD_S):
        assert await allocation == [bulk]
    assert not runner.done()
    query = text(5, time.monotonic())
    await queue.put([query], Priority.INTERACTIVE, wake=0)  # no allocation to wake: the runner still is
    async with asyncio.timeout(HANG_GUARD_S):
        assert await runner == [query]


async def test_an_expired_text_is_answered_with_a_timeout_and_never_batched() -> None:
    stats = DeploymentStats()
    queue = BatchQueue(10, interactive_capacity=10, token_budget=64, max_batch_size=4, stats=stats)
    now = time.monotonic()
    expired = text(3, now)
    expired.deadline = now - 1.0
    live = text(4, now)
    await queue.put([expired, live], Priority.BULK, wake=1)
    assert await queue.next_batch(never) == [live]
    with pytest.raises(ElserError) as exc:
        expired.future.result()
    assert exc.value.http_status == 408 and stats.timeout_count == 1


async def test_a_stopping_allocation_gets_no_batch() -> None:
    queue = BatchQueue(
        10, interactive_capacity=10, token_budget=64, max_batch_size=4, stats=DeploymentStats()
    )
    await queue.put([text(3, time.monotonic())], Priority.BULK, wake=1)
    assert await queue.next_batch(lambda: True) == []
    assert queue.queued == 1
