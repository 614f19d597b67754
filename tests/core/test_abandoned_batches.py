"""Work whose callers left is not computed: on a real InferenceCore (tiny model, on each backend: onnxruntime and
OpenVINO), a running batch whose callers all went away is cancelled (allocation.py's `abort_if_abandoned` →
`RunHandle.cancel`: onnxruntime aborts it through its terminate flag, OpenVINO lets it finish) and yields no rows
and no count, a batch with one caller left still finishes, and a request cancelled while queued never runs.

A "slow" batch is 128 texts of 512 tokens in one request with a token budget that takes them all at once
(seconds on the tiny model, against milliseconds to notice a cancel). Whether a batch ran to the end is read
from the deployment's counters, which only a finished batch advances (`record_batch`), never from the clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from elser_server.core.deployment import Deployment
from elser_server.core.service import InferenceCore
from elser_server.core.types import InferOptions, Priority
from elser_server.runtime.backends import RunHandle
from elser_server.runtime.layout import BACKENDS
from support import PUT_BODY, eventually_async, make_core

HANG_GUARD_S = 120.0  # only against hangs: nothing here asserts on timing
ROWS = 128
LONG_TEXTS = [f"long text {i} " + "word " * 600 for i in range(ROWS)]  # each truncated to 512 tokens
BULK = InferOptions(priority=Priority.BULK)


@pytest.fixture(params=BACKENDS)
async def core(request: pytest.FixtureRequest, tiny_repository: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "openvino":
        pytest.importorskip("elser_server.runtime.backends.openvino")
    c = make_core(
        tiny_repository,
        tmp_path,
        runtime=request.param,
        max_inputs_per_request=ROWS,
        max_input_bytes=200_000,
        default_timeout_s=600.0,
        # One allocation; a budget so large that a whole request of ROWS texts is one batch.
        token_budget=1 << 20,
        max_batch_size=ROWS,
        processors=1,
    )
    await c.start()
    await c.put_endpoint("e", "sparse_embedding", PUT_BODY)
    deployment = c.deployment("e")
    assert deployment is not None and deployment.layout is not None
    assert deployment.layout.backend == request.param
    yield c
    await c.close()


@pytest.fixture
def aborts(monkeypatch: pytest.MonkeyPatch) -> list[RunHandle]:
    """Every RunHandle.cancel call (the real cancel still runs). One abort
    may cancel its handle several times (once per abandoned row's callback): count distinct handles."""
    calls: list[RunHandle] = []
    cancel = RunHandle.cancel

    def spy(self: RunHandle) -> None:
        calls.append(self)
        cancel(self)

    monkeypatch.setattr(RunHandle, "cancel", spy)
    return calls


def counters(dep: Deployment) -> dict[str, int]:
    s = dep.stats
    return {
        "inference": s.inference_count,
        "batches": s.batch_count,
        "errors": s.error_count,
        "dequeued": s.dequeued_count,
        "timeouts": s.timeout_count,
    }


def grown(dep: Deployment, before: dict[str, int]) -> dict[str, int]:
    return {k: v - before[k] for k, v in counters(dep).items()}


async def start_running(core: InferenceCore, texts: list[str]) -> asyncio.Task[object]:
    """Start a request of `texts` and return once the (only) allocation has taken all of it as one batch."""
    dep = core.deployment("e")
    taken, finished = dep.stats.dequeued_count, dep.stats.batch_count
    task: asyncio.Task[object] = asyncio.create_task(core.infer("e", None, texts, BULK))
    await eventually_async(
        lambda: dep.stats.dequeued_count >= taken + len(texts), HANG_GUARD_S, "the request to be taken"
    )
    assert dep.stats.dequeued_count == taken + len(texts) and dep.queued == 0  # one batch, all of it
    assert dep.stats.batch_count == finished, "the slow batch finished before the test could act on it"
    return task


async def cancelled(task: asyncio.Task[object]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(HANG_GUARD_S):
            await task


async def test_a_running_batch_whose_only_caller_left_is_aborted(
    core: InferenceCore, aborts: list[RunHandle]
) -> None:
    dep = core.deployment("e")
    before = counters(dep)
    slow = await start_running(core, LONG_TEXTS)
    await cancelled(slow)
    await eventually_async(lambda: len(set(aborts)) == 1, HANG_GUARD_S, "the abandoned batch to be aborted")
    assert aborts[0].cancelled  # the running call was cancelled

    # The allocation is free again: a small request is served next.
    async with asyncio.timeout(HANG_GUARD_S):
        (result,) = await core.infer("e", None, ["small follow-up"])
    assert len(result.token_ids) > 0
    # The slow batch yielded nothing (a completed batch is counted, rows included, even with no caller left),
    # nor was it counted as an inference failure.
    assert grown(dep, before) == {
        "inference": 1,
        "batches": 1,
        "errors": 0,
        "dequeued": ROWS + 1,
        "timeouts": 0,
    }
    assert dep.queued == 0 and len(set(aborts)) == 1  # the follow-up ran to the end


async def test_a_batch_is_not_aborted_while_one_of_its_callers_still_waits(
    core: InferenceCore, aborts: list[RunHandle]
) -> None:
    dep = core.deployment("e")
    before = counters(dep)
    half = ROWS // 2
    # A slow blocker holds the allocation while two callers queue behind it ...
    blocker = await start_running(core, LONG_TEXTS)
    first = asyncio.create_task(core.infer("e", None, LONG_TEXTS[:half], BULK))
    second = asyncio.create_task(core.infer("e", None, LONG_TEXTS[half:], BULK))
    await eventually_async(lambda: dep.queued == ROWS, HANG_GUARD_S, "the two requests to be queued")
    # ... then the blocker's caller leaves: its batch is aborted and the two requests form the next batch.
    await cancelled(blocker)
    await eventually_async(
        lambda: dep.stats.dequeued_count == before["dequeued"] + 2 * ROWS,
        HANG_GUARD_S,
        "the next batch to be taken",
    )
    assert dep.queued == 0 and dep.stats.batch_count == before["batches"]
    assert len(set(aborts)) == 1

    await cancelled(first)  # one of the two callers leaves mid-batch: the other still wants its rows
    async with asyncio.timeout(HANG_GUARD_S):
        results = await second
    assert len(results) == ROWS - half and all(len(r.token_ids) > 0 for r in results)
    assert len(set(aborts)) == 1  # only the blocker's batch was aborted
    assert grown(dep, before) == {
        "inference": ROWS,  # the shared batch ran to the end
        "batches": 1,
        "errors": 0,
        "dequeued": 2 * ROWS,
        "timeouts": 0,
    }


async def test_a_request_cancelled_while_queued_never_runs(
    core: InferenceCore, aborts: list[RunHandle]
) -> None:
    dep = core.deployment("e")
    before = counters(dep)
    slow = await start_running(core, LONG_TEXTS)  # holds the only allocation
    # Bulk, so it waits: a search query would go to the query runner at once.
    queued = asyncio.create_task(core.infer("e", None, ["queued and then abandoned"], BULK))
    await eventually_async(lambda: dep.queued == 1, HANG_GUARD_S, "the small request to be queued")
    await cancelled(queued)
    # The slow batch was still running, so the allocation could not have taken the abandoned request.
    assert not slow.done() and dep.stats.batch_count == before["batches"]

    async with asyncio.timeout(HANG_GUARD_S):
        results = await slow
    assert isinstance(results, list) and len(results) == ROWS
    async with asyncio.timeout(HANG_GUARD_S):
        assert len(await core.infer("e", None, ["served after it"])) == 1
    assert aborts == []  # the slow batch still had its caller
    assert dep.queued == 0
    assert grown(dep, before) == {
        "inference": ROWS + 1,  # the slow batch and the follow-up; the abandoned request never ran
        "batches": 2,
        "errors": 0,
        "dequeued": ROWS + 1,  # it was discarded from the queue, never handed to the allocation
        "timeouts": 0,
    }


async def test_callers_that_leave_are_counted_as_dropped(core: InferenceCore) -> None:
    dep = core.deployment("e")
    before = dep.stats.dropped_count
    slow = await start_running(core, LONG_TEXTS)
    # Bulk, so it waits: a search query would go to the query runner at once.
    queued = asyncio.create_task(core.infer("e", None, ["queued and then abandoned"], BULK))
    await eventually_async(lambda: dep.queued == 1, HANG_GUARD_S, "the small request to be queued")
    await cancelled(queued)
    await cancelled(slow)
    assert dep.stats.dropped_count == before + 1 + ROWS
