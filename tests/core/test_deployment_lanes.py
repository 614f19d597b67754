"""Priority lanes of a real Deployment (tiny model): a query overtakes a deep bulk backlog, and bulk still moves."""

from __future__ import annotations

import asyncio
import time

import pytest
from elser_server.core import queue as queue_module
from elser_server.core.deployment import Deployment
from elser_server.core.queue import RowOptions
from elser_server.core.types import Priority
from elser_server.model.package import ModelPackage
from elser_server.runtime.backends.onnxruntime import SpladeSession
from elser_server.runtime.tokenizer import Tokenizer
from support import eventually_async

BACKLOG = 600


async def test_query_overtakes_a_bulk_backlog_older_than_the_aging_limit(
    tiny_package: ModelPackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every bulk item soon waits longer than this; aging must still not put each query behind the whole backlog.
    monkeypatch.setattr(queue_module, "BULK_MAX_WAIT_S", 0.05)
    tokenizer = Tokenizer.from_file(tiny_package.tokenizer_path)
    dep = Deployment(
        "lanes",
        tiny_package.model_id,
        num_threads=1,
        target_allocations=1,
        queue_capacity=BACKLOG + 1,
        interactive_queue_capacity=10,
        token_budget=512,
        max_batch_size=8,
        processors=1,
    )
    await dep.start(lambda threads: SpladeSession(tiny_package, threads))
    deadline = time.monotonic() + 120
    texts = [" ".join(f"bulk{i} word{j}" for j in range(20)) for i in range(BACKLOG)]
    bulk = asyncio.create_task(
        dep.embed(
            tokenizer.encode_batch(texts), priority=Priority.BULK, deadline=deadline, options=RowOptions()
        )
    )
    await eventually_async(lambda: dep.stats.batch_count >= 2, 120, "the backlog to be served")
    await asyncio.sleep(0.1)  # the clock is the condition: the backlog's head gets older than BULK_MAX_WAIT_S
    (row,) = await dep.embed(
        tokenizer.encode_batch(["what is a dog"]),
        priority=Priority.INTERACTIVE,
        deadline=deadline,
        options=RowOptions(),
    )
    assert len(row.token_ids) > 0
    assert dep.queued > BACKLOG // 2, "the query waited for most of the bulk backlog"
    # Bulk is not starved: it all completes.
    assert len(await bulk) == BACKLOG
    await dep.stop(1.0)
