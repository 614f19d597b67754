"""watch_deployment on a real InferenceCore (tiny model, real onnxruntime, real SQLite store): the final STOPPED
event of a deleted endpoint, USER_UPDATE allocation changes, slow watchers and many watchers."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from elser_server.core.errors import Code, ElserError
from elser_server.core.events import WATCHER_QUEUE_SIZE, AllocationCause, DeploymentEvent, Phase
from elser_server.core.service import InferenceCore
from support import PUT_BODY, make_core

LIMITS = {"max_inputs_per_request": 64, "max_input_bytes": 200_000}

HANG_GUARD_S = 60.0  # only against hangs: nothing here asserts on timing


@pytest.fixture
async def core(tiny_repository: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    c = make_core(tiny_repository, tmp_path, **LIMITS, processors=2)  # two 1-thread allocations fit
    await c.start()
    yield c
    await c.close()


async def subscribe(
    core: InferenceCore, inference_id: str
) -> tuple[AsyncIterator[DeploymentEvent], DeploymentEvent]:
    """A watcher is subscribed once its first event (the current snapshot) was read."""
    stream = core.watch_deployment(inference_id)
    async with asyncio.timeout(HANG_GUARD_S):
        first = await anext(stream)
    return stream, first


async def read_to_end(stream: AsyncIterator[DeploymentEvent]) -> list[DeploymentEvent]:
    async with asyncio.timeout(HANG_GUARD_S):
        return [event async for event in stream]


def is_final(event: DeploymentEvent, inference_id: str) -> bool:
    return (
        event.deployment_id == inference_id
        and event.phase is Phase.STOPPED
        and event.reason == "inference endpoint deleted"
    )


async def test_deleting_the_endpoint_sends_a_final_stopped_event_and_ends_the_stream(
    core: InferenceCore,
) -> None:
    await core.put_endpoint("w", "sparse_embedding", PUT_BODY)
    stream, first = await subscribe(core, "w")
    assert first.phase is Phase.FULLY_ALLOCATED
    assert (first.target_allocations, first.current_allocations) == (1, 1)
    reader = asyncio.create_task(read_to_end(stream))
    await asyncio.sleep(0)  # one pass of the loop: the reader runs up to its wait on the watcher's queue

    assert (await core.delete_endpoint("w")).acknowledged
    events = await reader  # the stream ended on its own (StopAsyncIteration), no cancellation needed
    assert events, "the watcher saw nothing of the delete"
    assert is_final(events[-1], "w")
    assert events[-1].model_id == ".elser_model_2"
    phases = [e.phase for e in events]
    assert (
        Phase.STOPPING in phases[:-1]
    )  # the deployment stopped first, then the final event closed the stream
    assert phases.index(Phase.STOPPING) < len(phases) - 1
    assert core.watch_backlogs("w") == []  # no watch is left open on a deleted endpoint
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    with pytest.raises(ElserError) as exc:
        core.watch_deployment("w")
    assert exc.value.code is Code.NOT_FOUND


async def test_update_num_allocations_is_a_user_update_event_and_shows_in_stats(core: InferenceCore) -> None:
    await core.put_endpoint("w", "sparse_embedding", PUT_BODY)
    before = core.deployment_stats("w").snapshot
    assert (before.target_allocations, before.current_allocations) == (1, 1)
    stream, _ = await subscribe(core, "w")

    updated = await core.update_endpoint("w", None, {"service_settings": {"num_allocations": 2}})
    assert updated.service_settings.num_allocations == 2
    seen: list[DeploymentEvent] = []
    async with asyncio.timeout(HANG_GUARD_S):
        async for event in stream:
            seen.append(event)
            if event.cause is AllocationCause.USER_UPDATE and event.current_allocations == 2:
                break
    change = seen[-1]
    assert change.target_allocations == 2 and change.phase is Phase.FULLY_ALLOCATED
    assert change.reason is None
    assert all(e.cause is AllocationCause.USER_UPDATE for e in seen)  # no event kept the old cause

    report = core.deployment_stats("w")  # what GetDeploymentStats and the REST stats route render
    assert report.snapshot.phase is Phase.FULLY_ALLOCATED
    assert report.snapshot.cause is AllocationCause.USER_UPDATE
    assert (report.snapshot.target_allocations, report.snapshot.current_allocations) == (2, 2)
    (listed,) = await core.get_endpoints("w")
    assert listed.service_settings.num_allocations == 2
    # both allocations serve
    assert len(await core.infer("w", None, [f"text {i}" for i in range(20)])) == 20

    await core.update_endpoint("w", None, {"service_settings": {"num_allocations": 1}})
    async with asyncio.timeout(HANG_GUARD_S):
        async for event in stream:
            if event.current_allocations == 1:
                break
    assert event.cause is AllocationCause.USER_UPDATE and event.target_allocations == 1
    assert core.deployment_stats("w").snapshot.current_allocations == 1
    await stream.aclose()  # type: ignore[attr-defined]


async def test_update_beyond_the_processors_is_partially_allocated_with_a_reason(
    tiny_repository: Path, tmp_path: Path
) -> None:
    core = make_core(tiny_repository, tmp_path, **LIMITS, processors=1)
    await core.start()
    try:
        await core.put_endpoint("w", "sparse_embedding", PUT_BODY)
        stream, _ = await subscribe(core, "w")
        await core.update_endpoint("w", None, {"service_settings": {"num_allocations": 2}})
        async with asyncio.timeout(HANG_GUARD_S):
            async for event in stream:
                if event.cause is AllocationCause.USER_UPDATE and event.target_allocations == 2:
                    break
        assert event.current_allocations == 1 and event.phase is Phase.STARTED
        assert event.reason is not None and "[1] processors" in event.reason
        snapshot = core.deployment_stats("w").snapshot
        assert (snapshot.target_allocations, snapshot.current_allocations) == (2, 1)
        assert snapshot.phase is Phase.STARTED and snapshot.reason == event.reason
        await stream.aclose()  # type: ignore[attr-defined]
    finally:
        await core.close()


async def test_slow_watcher_does_not_block_and_reads_only_the_newest_snapshots(core: InferenceCore) -> None:
    await core.put_endpoint("w", "sparse_embedding", PUT_BODY)
    fast, _ = await subscribe(core, "w")
    fast_reader = asyncio.create_task(read_to_end(fast))
    slow, _ = await subscribe(core, "w")  # subscribed, then not read while the events below are published

    async with asyncio.timeout(HANG_GUARD_S):  # the unread watcher must not hold the deployment up
        for _ in range(30):
            await core.update_endpoint("w", None, {"service_settings": {"num_allocations": 2}})
            await core.update_endpoint("w", None, {"service_settings": {"num_allocations": 1}})
    assert (
        max(core.watch_backlogs("w")) == WATCHER_QUEUE_SIZE
    )  # the slow watcher's queue is bounded: the oldest were dropped

    async with asyncio.timeout(HANG_GUARD_S):
        newest = [await anext(slow) for _ in range(WATCHER_QUEUE_SIZE)]
    latest = newest[-1]  # the current state, though it is the slow watcher's first read since the updates
    current = core.deployment_stats("w").snapshot
    assert (
        (latest.phase, latest.cause)
        == (current.phase, current.cause)
        == (
            Phase.FULLY_ALLOCATED,
            AllocationCause.USER_UPDATE,
        )
    )
    assert (latest.target_allocations, latest.current_allocations) == (1, 1)
    assert [e.time for e in newest] == sorted(e.time for e in newest)  # still in publication order

    await core.delete_endpoint("w")
    rest = await read_to_end(slow)
    everything = await fast_reader
    assert is_final(rest[-1], "w") and everything[-1] is rest[-1]
    # The slow watcher got exactly the newest events, the same ones the fast watcher saw last ...
    assert newest + rest == everything[-len(newest + rest) :]
    # ... and missed older ones: 60 updates published more than its queue holds.
    assert len(everything) > len(newest + rest) + WATCHER_QUEUE_SIZE


async def test_fifty_watchers_all_see_the_same_final_event(core: InferenceCore) -> None:
    await core.put_endpoint("w", "sparse_embedding", PUT_BODY)
    streams = [(await subscribe(core, "w"))[0] for _ in range(50)]
    readers = [asyncio.create_task(read_to_end(s)) for s in streams]
    await core.update_endpoint("w", None, {"service_settings": {"num_allocations": 2}})
    assert len(await core.infer("w", None, ["still serving while watched"])) == 1
    await core.delete_endpoint("w")
    async with asyncio.timeout(HANG_GUARD_S):
        results = await asyncio.gather(*readers)
    final = results[0][-1]
    assert is_final(final, "w")
    for events in results:
        assert events[-1] is final  # one event object fanned out to every watcher
        assert any(
            e.cause is AllocationCause.USER_UPDATE and e.current_allocations == 2 for e in events
        )  # each saw the allocation change too
        assert events == results[0]  # none fell behind: all saw the same sequence
    assert core.watch_backlogs("w") == []


async def test_one_update_sends_each_allocation_change_once(core: InferenceCore) -> None:
    await core.put_endpoint("w", "sparse_embedding", PUT_BODY)
    stream, first = await subscribe(core, "w")
    await core.update_endpoint("w", None, {"service_settings": {"num_allocations": 2}})
    await core.update_endpoint("w", None, {"service_settings": {"num_allocations": 1}})
    await core.delete_endpoint("w")
    events = [first, *await read_to_end(stream)]
    snapshots = [dataclasses.replace(e, time=0.0) for e in events]
    repeated = [a for a, b in itertools.pairwise(snapshots) if a == b]
    assert not repeated, f"the same event was sent twice: {repeated}"
    updates = [
        (e.target_allocations, e.current_allocations)
        for e in events
        if e.cause is AllocationCause.USER_UPDATE
    ]
    assert (2, 2) in updates and (1, 1) in updates
