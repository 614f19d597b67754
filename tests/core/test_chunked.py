"""Chunked inference (core/chunked.py) on a real InferenceCore: chunks of many inputs share model calls and
stream back in input order; a failed window fails only the inputs it held."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from elser_server.core.deployment import Deployment
from elser_server.core.errors import Code, ElserError
from elser_server.core.service import InferenceCore
from elser_server.core.types import ChunkedInputDone
from support import PUT_BODY, make_core


@pytest.fixture
async def core(tiny_repository: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    c = make_core(tiny_repository, tmp_path)
    await c.start()
    yield c
    await c.close()


WORD_CHUNKING = {"strategy": "word", "max_chunk_size": 10, "overlap": 1}


async def test_chunked_inputs_share_batches_and_stream_in_order(
    core: InferenceCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await core.put_endpoint("chunks", "sparse_embedding", PUT_BODY)
    calls: list[int] = []
    embed = Deployment.embed

    async def counting(self: Deployment, encodings: Any, **rest: Any) -> Any:
        calls.append(len(encodings))
        return await embed(self, encodings, **rest)

    monkeypatch.setattr(Deployment, "embed", counting)
    long_text = " ".join(f"word{i}" for i in range(35))  # 4 chunks of at most 10 words
    inputs = [f"short input {i}" for i in range(20)] + [long_text, "", "last one"]
    results = [r async for r in core.infer_chunked("chunks", None, inputs, chunking_settings=WORD_CHUNKING)]
    assert sum(calls) == 20 + 4 + 1 + 1  # every chunk once (the empty input is one empty chunk, as in ES)
    assert len(calls) == 2  # 26 chunks in windows of 16 across inputs, not one call per input
    order = [(r.input_index, getattr(r, "chunk_index", "done")) for r in results]
    expected = [x for i in range(20) for x in ((i, 0), (i, "done"))]
    expected += [
        (20, 0),
        (20, 1),
        (20, 2),
        (20, 3),
        (20, "done"),
        (21, 0),
        (21, "done"),
        (22, 0),
        (22, "done"),
    ]
    assert order == expected
    single = await core.infer("chunks", None, [long_text.split(" word10")[0]])
    assert list(results[40].embedding.token_ids) == list(single[0].token_ids)  # first chunk of the long input


async def test_a_failed_chunk_window_fails_only_its_inputs(
    core: InferenceCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await core.put_endpoint("chunks", "sparse_embedding", PUT_BODY)
    embed = Deployment.embed
    windows = 0

    async def second_window_fails(self: Deployment, encodings: Any, **rest: Any) -> Any:
        nonlocal windows
        windows += 1
        if windows == 2:
            raise ElserError(Code.UNAVAILABLE, "injected", "status_exception", 503, "INJECTED")
        return await embed(self, encodings, **rest)

    monkeypatch.setattr(Deployment, "embed", second_window_fails)
    inputs = [" ".join(f"w{i}x{j}" for j in range(100)) for i in range(4)]  # 11 chunks each
    results = [r async for r in core.infer_chunked("chunks", None, inputs, chunking_settings=WORD_CHUNKING)]
    done = {r.input_index: r for r in results if isinstance(r, ChunkedInputDone)}
    # Windows of 16: input 0 (11) + input 1 (5) | failed: input 1 (6) + input 2 (10) | input 2 (1) + input 3 (11).
    assert done[0].error is None and done[0].chunk_count == 11
    assert done[1].error is not None and done[1].error.reason == "injected" and done[1].chunk_count == 5
    assert done[2].error is not None and done[2].chunk_count == 0
    assert done[3].error is None and done[3].chunk_count == 11
    assert [r.input_index for r in results if isinstance(r, ChunkedInputDone)] == [0, 1, 2, 3]
