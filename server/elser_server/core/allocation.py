"""One allocation: a model session and the single thread that runs it, taking batches from the deployment's
queue. A running batch whose callers have all left is aborted (the backend's abort, through `RunHandle`).

The same class, with `interactive_only`, is a deployment's query runner: one more thread that runs search
queries on an allocation's weights (`Session.concurrent_session`) while every allocation is busy
with bulk work, so a query never waits for a bulk batch to finish."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from elser_server.core.errors import internal
from elser_server.core.observer import CoreObserver
from elser_server.core.queue import BatchQueue, QueuedText, SparseRow
from elser_server.core.stats import DeploymentStats
from elser_server.runtime.backends import RunHandle, Session
from elser_server.runtime.sparse import sparsify

log = logging.getLogger(__name__)


class Allocation:
    def __init__(
        self,
        deployment_id: str,
        index: int,
        session: Session,
        queue: BatchQueue,
        stats: DeploymentStats,
        observer: CoreObserver | None,
        *,
        interactive_only: bool = False,
    ) -> None:
        self.deployment_id = deployment_id
        self.index = index
        self.session = session
        self._queue = queue
        self._stats = stats
        self._observer = observer
        self._interactive_only = interactive_only
        self._name = "queries" if interactive_only else f"alloc-{index}"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"{self.deployment_id}-{self._name}")

    async def stop(self) -> None:
        """Finish the running batch, then release the thread."""
        self._stopping = True
        await self._queue.wake_all()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    async def _loop(self) -> None:
        while not self._stopping:
            batch = await self._queue.next_batch(
                lambda: self._stopping, interactive_only=self._interactive_only
            )
            if batch:
                await self._run(batch)

    async def _run(self, batch: list[QueuedText]) -> None:
        control = RunHandle()
        watchers = [t.future for t in batch]

        def abort_if_abandoned(_: asyncio.Future[SparseRow]) -> None:
            if all(f.cancelled() for f in watchers):
                control.cancel()

        for f in watchers:
            f.add_done_callback(abort_if_abandoned)
        dequeued = time.monotonic()
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            rows = await loop.run_in_executor(self._executor, _run_batch, self.session, batch, control)
        except Exception as exc:
            if control.cancelled:
                return  # every caller of this batch had gone; they were counted as dropped
            self._stats.error_count += len(batch)
            log.exception("inference failed on %s", self.deployment_id)
            err = internal(f"inference failed: {exc}", "INFERENCE_FAILED")
            for t in batch:
                if not t.future.done():
                    t.future.set_exception(err)
            return
        finally:
            for f in watchers:
                f.remove_done_callback(abort_if_abandoned)
        elapsed = time.perf_counter() - started
        self._stats.record_batch(len(batch), elapsed, time.monotonic())
        if self._observer is not None:
            lengths = [t.length for t in batch]
            self._observer.batch_done(
                self.deployment_id,
                [dequeued - t.enqueued for t in batch],
                sum(lengths),
                max(lengths) * len(lengths),
                elapsed,
            )
        for t, row in zip(batch, rows, strict=True):
            if not t.future.done():
                t.future.set_result(row)


def _run_batch(session: Session, batch: list[QueuedText], control: RunHandle) -> list[SparseRow]:
    dense = session.run([t.ids for t in batch], run_options=control)
    rows = []
    for t, vec in zip(batch, dense, strict=True):
        opts = t.options
        ids, weights = sparsify(vec, top_k=opts.top_k, min_weight=opts.min_weight)
        tokens = tuple(opts.token_lookup(ids)) if opts.token_lookup is not None else None
        rows.append(SparseRow(ids, weights, tokens))
    return rows
