"""Search-priority work under bulk overload, end to end over REST on the real core (a small random model): a full
bulk queue answers bulk work with ES's 429 and still admits a search query, which is served without waiting for the
bulk batch that occupies the only allocation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support import eventually_async, make_slow_repository, put_body, running, server_settings

BULK_ROOM = 16
BUSY_TEXTS = 16
# About 600 word pieces: truncated to the model's 512, so every such text costs the same.
LONG = " ".join(f"word{i % 53} token{i % 17}" for i in range(300))


@pytest.fixture(scope="module")
def slow_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_slow_repository(tmp_path_factory.mktemp("slow-model"))


async def test_a_search_query_is_served_while_the_bulk_queue_is_full(
    slow_repository: Path, tmp_path: Path
) -> None:
    settings = server_settings(
        slow_repository,
        tmp_path,
        queue_capacity=BULK_ROOM,
        interactive_queue_capacity=4,
        # One batch takes all BUSY_TEXTS long texts.
        token_budget=BUSY_TEXTS * 512,
        max_batch_size=BUSY_TEXTS,
        processors=1,
    )
    async with (
        running(settings) as service,
        aiohttp.ClientSession(f"http://127.0.0.1:{service.http_port}") as http,
    ):
        async with http.put("/_inference/sparse_embedding/busy", json=put_body()) as response:
            assert response.status == 200, await response.text()
        deployment = service.core.deployment("busy")
        assert deployment is not None

        async def infer(texts: list[str], input_type: str) -> tuple[int, Any]:
            body = {"input": texts, "input_type": input_type}
            async with http.post("/_inference/busy", json=body) as response:
                return response.status, await response.json()

        # The only allocation runs one long batch while the bulk lane fills up and the query comes and goes: the
        # query runner serves it on the allocation's session.
        taken = deployment.stats.dequeued_count
        busy = asyncio.create_task(infer([LONG] * BUSY_TEXTS, "ingest"))
        await eventually_async(
            lambda: deployment.stats.dequeued_count == taken + BUSY_TEXTS, what="the long batch to start"
        )
        backlog = asyncio.create_task(infer([LONG] * BULK_ROOM, "ingest"))
        await eventually_async(lambda: deployment.queued == BULK_ROOM, what="the bulk lane to fill")
        status, body = await infer(["what is a dog"], "search")
        assert status == 200, body
        assert body["sparse_embedding"][0]["embedding"]
        assert not busy.done(), "the query waited for the bulk batch to finish"

        # The long batch still runs, so the bulk lane is still full: more bulk work is refused as ES does.
        status, body = await infer(["one more document"], "ingest")
        assert not busy.done(), "the long batch ended before the bulk refusal: the test proved nothing"
        assert status == 429, body
        assert body["error"]["type"] == "es_rejected_execution_exception"
        assert [(await busy)[0], (await backlog)[0]] == [200, 200]
