"""InferenceCore against a real tiny model, real onnxruntime and a real SQLite store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from elser_server.core.deployment import Deployment, RowOptions, _Item
from elser_server.core.errors import Code, ElserError
from elser_server.core.models import ModelManager
from elser_server.core.service import BatchingConfig, ChunkedInputDone, InferenceCore, Limits
from elser_server.core.store import SqliteEndpointStore
from elser_server.core.types import InferOptions, Priority
from elser_server.runtime.backends.onnxruntime import SpladeSession
from elser_server.runtime.sparse import sparsify
from elser_server.runtime.tokenizer import Tokenizer

BODY = {
    "service": "elasticsearch",
    "service_settings": {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1},
}


def make_core(repo: Path, data: Path, **batching: int) -> InferenceCore:
    return InferenceCore(
        SqliteEndpointStore(data / "endpoints.sqlite3"),
        ModelManager(str(repo), data / "models"),
        limits=Limits(max_inputs_per_request=64, max_input_bytes=200_000),
        batching=BatchingConfig(**batching),
    )


@pytest.fixture
async def core(tiny_repository: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    c = make_core(tiny_repository, tmp_path)
    await c.start()
    yield c
    await c.close()


async def test_lifecycle(core: InferenceCore) -> None:
    put = await core.put_endpoint("my-elser", "sparse_embedding", BODY)
    assert put.endpoint.to_dict()["service_settings"] == {
        "num_allocations": 1,
        "num_threads": 1,
        "model_id": ".elser_model_2",
    }
    ids = [e.inference_id for e in core.get_endpoints()]
    assert ids == sorted(ids) and {"my-elser", ".elser-2-elasticsearch"} <= set(ids)
    with pytest.raises(ElserError) as exc:
        await core.put_endpoint("my-elser", "sparse_embedding", BODY)
    assert exc.value.code is Code.ALREADY_EXISTS
    assert exc.value.reason == "Inference endpoint [my-elser] already exists"

    updated = await core.update_endpoint("my-elser", None, {"service_settings": {"num_allocations": 2}})
    assert updated.service_settings.num_allocations == 2

    with pytest.raises(ElserError) as exc:
        core.get_endpoints("my-elser", "text_embedding")
    assert exc.value.reason == (
        "Requested task type [text_embedding] does not match the inference endpoint's task type [sparse_embedding]"
    )
    result = await core.delete_endpoint("my-elser")
    assert result.acknowledged
    with pytest.raises(ElserError) as exc:
        core.get_endpoints("my-elser")
    assert exc.value.code is Code.NOT_FOUND
    assert exc.value.reason == "Inference endpoint not found [my-elser]"


async def test_infer_matches_direct_session_in_input_order(core: InferenceCore, tiny_package: Path) -> None:
    await core.put_endpoint("e", "sparse_embedding", BODY)
    texts = ["a much longer text " * 20, "short", "", "medium length text here", "x " * 700]
    results = await core.infer("e", None, texts)
    model = await core._models.get(".elser_model_2")
    session = SpladeSession(model.package)
    encodings = model.tokenizer.encode_batch(texts)
    for text, enc, got in zip(texts, encodings, results, strict=True):
        ids, weights = sparsify(session.run([enc.ids])[0])
        assert got.token_ids.tolist() == ids.tolist(), text
        np.testing.assert_allclose(got.weights, weights, atol=1e-5)
        assert got.tokens == tuple(model.tokenizer.id_to_tokens(ids))
        assert got.is_truncated == enc.is_truncated
        assert got.num_tokens == len(enc.ids)
    assert results[-1].is_truncated and not results[1].is_truncated


async def test_infer_pruning_options(core: InferenceCore) -> None:
    await core.put_endpoint("e", None, {**BODY, "task_type": "sparse_embedding"})
    full = (await core.infer("e", "sparse_embedding", ["pruning test"]))[0]
    top = (await core.infer("e", None, ["pruning test"], InferOptions(top_k=3, return_tokens=False)))[0]
    assert top.tokens is None and top.token_ids.tolist() == full.token_ids[:3].tolist()
    threshold = float(full.weights[len(full.weights) // 2])
    pruned = (await core.infer("e", None, ["pruning test"], InferOptions(min_weight=threshold)))[0]
    assert pruned.weights.min() >= threshold and len(pruned.weights) < len(full.weights)


async def test_bad_inputs_are_rejected_with_clear_errors(core: InferenceCore) -> None:
    await core.put_endpoint("e", None, {**BODY, "task_type": "sparse_embedding"})
    with pytest.raises(ElserError) as exc:
        await core.infer("e", None, [])
    assert exc.value.reason == "Validation Failed: 1: Field [input] cannot be an empty array;"
    with pytest.raises(ElserError) as exc:
        await core.infer("e", None, ["ok", "bad \ud800 surrogate"])
    assert exc.value.code is Code.INVALID_ARGUMENT
    assert exc.value.field_violations[0].field == "input[1]"
    with pytest.raises(ElserError) as exc:
        await core.infer("e", None, ["x"] * 65)
    assert exc.value.error_reason == "TOO_MANY_INPUTS"
    with pytest.raises(ElserError) as exc:
        await core.infer("e", "text_embedding", ["x"])
    assert exc.value.reason == (
        "Incompatible task_type, the requested type [text_embedding] does not match the model type [sparse_embedding]"
    )
    # nothing was lost: the endpoint still serves
    assert len(await core.infer("e", None, ["still fine"])) == 1


async def test_expired_deadline_never_runs_the_model(core: InferenceCore) -> None:
    await core.put_endpoint("e", None, {**BODY, "task_type": "sparse_embedding"})
    deployment = core._deployments["e"]
    before = deployment.stats.inference_count
    with pytest.raises(ElserError) as exc:
        await core.infer("e", None, ["too late"], deadline=time.monotonic() - 0.001)
    assert exc.value.code is Code.DEADLINE_EXCEEDED
    await asyncio.sleep(0.05)
    assert deployment.stats.inference_count == before
    assert deployment.queued == 0


async def test_full_queue_rejects_with_retry_hint(
    tiny_repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = make_core(tiny_repository, tmp_path, queue_capacity=4)
    await core.start()
    try:
        await core.put_endpoint("e", None, {**BODY, "task_type": "sparse_embedding"})
        tokenized: list[int] = []
        encode_batch = Tokenizer.encode_batch
        monkeypatch.setattr(
            Tokenizer,
            "encode_batch",
            lambda self, texts: tokenized.append(len(texts)) or encode_batch(self, texts),
        )
        with pytest.raises(ElserError) as exc:
            await core.infer("e", None, ["a"] * 5)
        assert tokenized == []  # refused before any CPU was spent on it
        assert exc.value.code is Code.RESOURCE_EXHAUSTED
        assert exc.value.es_type == "es_rejected_execution_exception" and exc.value.http_status == 429
        assert exc.value.retry_after_s and exc.value.retry_after_s > 0
        assert len(await core.infer("e", None, ["a"] * 4)) == 4
    finally:
        await core.close()


async def test_restart_restores_endpoints(tiny_repository: Path, tmp_path: Path) -> None:
    first = make_core(tiny_repository, tmp_path)
    await first.start()
    await first.put_endpoint("kept", None, {**BODY, "task_type": "sparse_embedding"})
    expected = (await first.infer("kept", None, ["persist me"]))[0]
    await first.close()

    second = make_core(tiny_repository, tmp_path)
    await second.start()
    try:
        assert "kept" in [e.inference_id for e in second.get_endpoints()]
        got = (await second.infer("kept", None, ["persist me"]))[0]
        assert got.token_ids.tolist() == expected.token_ids.tolist()
    finally:
        await second.close()


async def test_default_endpoint_deploys_on_first_use(core: InferenceCore) -> None:
    (listed,) = core.get_endpoints(".elser-2-elasticsearch")
    assert listed.service_settings.num_allocations is None  # not deployed yet: ES shows no count
    results = await core.infer(
        ".elser-2-elasticsearch", "sparse_embedding", ["Hello World", "Goodnight moon"]
    )
    assert len(results) == 2
    (listed,) = core.get_endpoints(".elser-2-elasticsearch")
    assert listed.service_settings.num_allocations == 1
    with pytest.raises(ElserError) as exc:
        await core.delete_endpoint(".elser-2-elasticsearch")
    assert "is a reserved inference endpoint" in exc.value.reason


async def test_missing_model_fails_put_clearly(core: InferenceCore) -> None:
    body = {
        "service": "elasticsearch",
        "service_settings": {
            "model_id": ".elser_model_2_linux-x86_64",
            "num_allocations": 1,
            "num_threads": 1,
        },
    }
    (core._models.cache_dir / "x").mkdir(parents=True, exist_ok=True)
    core._models.repository = str(core._models.cache_dir / "x")  # an empty repository
    with pytest.raises(ElserError) as exc:
        await core.put_endpoint("nomodel", "sparse_embedding", body)
    assert exc.value.code is Code.NOT_FOUND
    assert (
        exc.value.reason
        == "Could not deploy model [.elser_model_2_linux-x86_64] as the model cannot be found."
    )
    assert "nomodel" not in [e.inference_id for e in core.get_endpoints()]


async def test_put_timeout_is_es_408(tiny_repository: Path, tmp_path: Path) -> None:
    core = make_core(tiny_repository, tmp_path)
    await core.start()
    try:
        with pytest.raises(ElserError) as exc:
            await core.put_endpoint("slow", "sparse_embedding", BODY, timeout_s=0.0001)
        assert exc.value.http_status == 408 and exc.value.code is Code.DEADLINE_EXCEEDED
        assert exc.value.reason.startswith("Timed out after [0s] waiting for model deployment to start.")
        # the deployment keeps starting in the background; a retried PUT then succeeds
        put = await core.put_endpoint("slow", "sparse_embedding", BODY)
        assert put.endpoint.inference_id == "slow"
    finally:
        await core.close()


def _item(length: int, enqueued: float) -> _Item:
    fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    return _Item(np.zeros(length, dtype=np.int64), fut, time.monotonic() + 60, enqueued, RowOptions())  # type: ignore[arg-type]


async def test_interactive_lane_first_but_bulk_ages() -> None:
    dep = Deployment(
        "d", "m", num_threads=1, target_allocations=1, queue_capacity=100, token_budget=64, max_batch_size=4
    )
    now = time.monotonic()
    bulk = [_item(10, now) for _ in range(3)]
    inter = _item(5, now)
    dep._lanes[Priority.BULK].extend(bulk)
    dep._lanes[Priority.INTERACTIVE].append(inter)
    dep._queued = 4
    assert dep._take_batch() == [inter]
    old = _item(10, now - 5.0)
    dep._lanes[Priority.BULK].appendleft(old)
    dep._lanes[Priority.INTERACTIVE].append(_item(5, now))
    dep._queued += 2
    batch = dep._take_batch()
    assert batch[0] is old  # aged bulk work goes before newer interactive work


async def test_batches_respect_token_budget_and_drop_cancelled() -> None:
    dep = Deployment(
        "d", "m", num_threads=1, target_allocations=1, queue_capacity=100, token_budget=40, max_batch_size=8
    )
    now = time.monotonic()
    items = [_item(n, now) for n in (5, 6, 7, 30, 31)]
    items[1].future.cancel()
    dep._lanes[Priority.BULK].extend(items)
    dep._queued = len(items)
    first = dep._take_batch()
    assert items[1] not in first and items[0] in first
    assert len(first) * max(i.length for i in first) <= 40
    taken = list(first)
    while dep.queued:
        taken += dep._take_batch()
    assert {id(i) for i in taken} == {id(i) for i in items if i is not items[1]}


WORD_CHUNKING = {"strategy": "word", "max_chunk_size": 10, "overlap": 1}


async def test_chunked_inputs_share_batches_and_stream_in_order(
    core: InferenceCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await core.put_endpoint("chunks", "sparse_embedding", BODY)
    calls: list[int] = []
    embed = Deployment.embed

    async def counting(self: Deployment, encodings: Any, **rest: Any) -> Any:
        calls.append(len(encodings))
        return await embed(self, encodings, **rest)

    monkeypatch.setattr(Deployment, "embed", counting)
    long_text = " ".join(f"word{i}" for i in range(35))  # 4 chunks of at most 10 words
    inputs = [f"short input {i}" for i in range(20)] + [long_text, "", "last one"]
    results = [r async for r in core.infer_chunked("chunks", None, inputs, chunking_settings=WORD_CHUNKING)]
    assert sum(calls) == 20 + 4 + 1  # every chunk once (the empty input has none)
    assert len(calls) == 2  # 25 chunks in windows of 16 across inputs, not one call per input
    order = [(r.input_index, getattr(r, "chunk_index", "done")) for r in results]
    expected = [x for i in range(20) for x in ((i, 0), (i, "done"))]
    expected += [(20, 0), (20, 1), (20, 2), (20, 3), (20, "done"), (21, "done"), (22, 0), (22, "done")]
    assert order == expected
    single = await core.infer("chunks", None, [long_text.split(" word10")[0]])
    assert list(results[40].embedding.token_ids) == list(single[0].token_ids)  # first chunk of the long input


async def test_a_failed_chunk_window_fails_only_its_inputs(
    core: InferenceCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await core.put_endpoint("chunks", "sparse_embedding", BODY)
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


async def test_threads_beyond_the_processors_stay_starting_with_the_reason(
    tiny_repository: Path, tmp_path: Path
) -> None:
    core = make_core(tiny_repository, tmp_path, processors=1)
    await core.start()
    try:
        body = {**BODY, "service_settings": {**BODY["service_settings"], "num_threads": 2}}
        with pytest.raises(ElserError) as exc:
            await core.put_endpoint("wide", "sparse_embedding", body, timeout_s=2)
        assert exc.value.http_status == 408
        watch = core.watch_deployment("wide")
        async with asyncio.timeout(30):
            event = await anext(watch)
        assert event.phase.name == "STARTING" and event.current_allocations == 0
        assert event.reason == "Could not allocate [2] threads per allocation: this node has [1] processors"
        await watch.aclose()
    finally:
        await core.close()


async def test_a_model_is_unloaded_with_its_last_deployment(tiny_repository: Path, tmp_path: Path) -> None:
    models = ModelManager(str(tiny_repository), tmp_path / "models")
    core = InferenceCore(SqliteEndpointStore(tmp_path / "db.sqlite3"), models)
    await core.start()
    try:
        await core.put_endpoint("one", "sparse_embedding", BODY)
        await core.put_endpoint("two", "sparse_embedding", BODY)
        assert models.loaded == {".elser_model_2"}
        await core.delete_endpoint("one")
        assert models.loaded == {".elser_model_2"}  # "two" still serves it
        await core.delete_endpoint("two")
        assert models.loaded == frozenset()
        again = await core.put_endpoint("three", "sparse_embedding", BODY)  # loads it back from the cache
        assert again.endpoint.inference_id == "three" and models.loaded == {".elser_model_2"}
    finally:
        await core.close()
