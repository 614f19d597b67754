"""InferenceCore against a real tiny model, real onnxruntime and a real SQLite store."""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from elser_server.core.errors import Code, ElserError
from elser_server.core.service import InferenceCore
from elser_server.core.types import InferOptions
from elser_server.model.package import ModelPackage
from elser_server.runtime.backends.onnxruntime import SpladeSession
from elser_server.runtime.sparse import sparsify
from elser_server.runtime.tokenizer import Tokenizer
from support import PUT_BODY, footprint_as_served, make_core, put_body

LIMITS = {"max_inputs_per_request": 64, "max_input_bytes": 200_000}

WITH_TASK_TYPE = {**PUT_BODY, "task_type": "sparse_embedding"}


@pytest.fixture
async def core(tiny_repository: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    c = make_core(tiny_repository, tmp_path, **LIMITS)
    await c.start()
    yield c
    await c.close()


async def test_lifecycle(core: InferenceCore) -> None:
    put = await core.put_endpoint("my-elser", "sparse_embedding", PUT_BODY)
    assert put.endpoint.to_dict()["service_settings"] == {
        "num_allocations": 1,
        "num_threads": 1,
        "model_id": ".elser_model_2",
    }
    ids = [e.inference_id for e in await core.get_endpoints()]
    assert ids == sorted(ids) and {"my-elser", ".elser-2-elasticsearch"} <= set(ids)
    with pytest.raises(ElserError) as exc:
        await core.put_endpoint("my-elser", "sparse_embedding", PUT_BODY)
    assert exc.value.code is Code.ALREADY_EXISTS
    assert exc.value.reason == "Inference endpoint [my-elser] already exists"

    updated = await core.update_endpoint("my-elser", None, {"service_settings": {"num_allocations": 2}})
    assert updated.service_settings.num_allocations == 2

    with pytest.raises(ElserError) as exc:
        await core.get_endpoints("my-elser", "text_embedding")
    assert exc.value.reason == (
        "Requested task type [text_embedding] does not match the inference endpoint's task type [sparse_embedding]"
    )
    result = await core.delete_endpoint("my-elser")
    assert result.acknowledged
    with pytest.raises(ElserError) as exc:
        await core.get_endpoints("my-elser")
    assert exc.value.code is Code.NOT_FOUND
    assert exc.value.reason == "Inference endpoint not found [my-elser]"


async def test_infer_matches_direct_session_in_input_order(core: InferenceCore, tiny_package: Path) -> None:
    await core.put_endpoint("e", "sparse_embedding", PUT_BODY)
    texts = ["a much longer text " * 20, "short", "", "medium length text here", "x " * 700]
    results = await core.infer("e", None, texts)
    model = await core.models.get(".elser_model_2")
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
    await core.put_endpoint("e", None, WITH_TASK_TYPE)
    full = (await core.infer("e", "sparse_embedding", ["pruning test"]))[0]
    top = (await core.infer("e", None, ["pruning test"], InferOptions(top_k=3, return_tokens=False)))[0]
    assert top.tokens is None and top.token_ids.tolist() == full.token_ids[:3].tolist()
    threshold = float(full.weights[len(full.weights) // 2])
    pruned = (await core.infer("e", None, ["pruning test"], InferOptions(min_weight=threshold)))[0]
    assert pruned.weights.min() >= threshold and len(pruned.weights) < len(full.weights)


async def test_bad_inputs_are_rejected_with_clear_errors(core: InferenceCore) -> None:
    await core.put_endpoint("e", None, WITH_TASK_TYPE)
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
    await core.put_endpoint("e", None, WITH_TASK_TYPE)
    deployment = core.deployment("e")
    before = deployment.stats.inference_count
    with pytest.raises(ElserError) as exc:
        await core.infer("e", None, ["too late"], deadline=time.monotonic() - 0.001)
    assert exc.value.code is Code.DEADLINE_EXCEEDED
    # A later request of the same lane is taken after anything the expired one could have queued.
    assert len(await core.infer("e", None, ["in time"])) == 1
    assert deployment.stats.inference_count == before + 1
    assert deployment.queued == 0


async def test_full_queue_rejects_with_retry_hint(
    tiny_repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = make_core(tiny_repository, tmp_path, **LIMITS, queue_capacity=4, interactive_queue_capacity=4)
    await core.start()
    try:
        await core.put_endpoint("e", None, WITH_TASK_TYPE)
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
    first = make_core(tiny_repository, tmp_path, **LIMITS)
    await first.start()
    await first.put_endpoint("kept", None, WITH_TASK_TYPE)
    expected = (await first.infer("kept", None, ["persist me"]))[0]
    await first.close()

    second = make_core(tiny_repository, tmp_path, **LIMITS)
    await second.start()
    try:
        assert "kept" in [e.inference_id for e in await second.get_endpoints()]
        got = (await second.infer("kept", None, ["persist me"]))[0]
        assert got.token_ids.tolist() == expected.token_ids.tolist()
    finally:
        await second.close()


async def test_default_endpoint_deploys_on_first_use(core: InferenceCore) -> None:
    (listed,) = await core.get_endpoints(".elser-2-elasticsearch")
    assert listed.service_settings.num_allocations is None  # not deployed yet: ES shows no count
    results = await core.infer(
        ".elser-2-elasticsearch", "sparse_embedding", ["Hello World", "Goodnight moon"]
    )
    assert len(results) == 2
    (listed,) = await core.get_endpoints(".elser-2-elasticsearch")
    assert listed.service_settings.num_allocations == 1
    with pytest.raises(ElserError) as exc:
        await core.delete_endpoint(".elser-2-elasticsearch")
    assert "is a reserved inference endpoint" in exc.value.reason


async def test_missing_model_fails_put_clearly(core: InferenceCore) -> None:
    body = put_body(".elser_model_2_linux-x86_64")
    (core.models.cache_dir / "x").mkdir(parents=True, exist_ok=True)
    core.models.repository = str(core.models.cache_dir / "x")  # an empty repository
    with pytest.raises(ElserError) as exc:
        await core.put_endpoint("nomodel", "sparse_embedding", body)
    assert exc.value.code is Code.NOT_FOUND
    assert (
        exc.value.reason
        == "Could not deploy model [.elser_model_2_linux-x86_64] as the model cannot be found."
    )
    assert "nomodel" not in [e.inference_id for e in await core.get_endpoints()]


async def test_put_timeout_is_es_408(tiny_repository: Path, tmp_path: Path) -> None:
    core = make_core(tiny_repository, tmp_path, **LIMITS)
    await core.start()
    try:
        with pytest.raises(ElserError) as exc:
            await core.put_endpoint("slow", "sparse_embedding", PUT_BODY, timeout_s=0.0001)
        assert exc.value.http_status == 408 and exc.value.code is Code.DEADLINE_EXCEEDED
        assert exc.value.reason.startswith("Timed out after [0s] waiting for model deployment to start.")
        # the deployment keeps starting in the background; a retried PUT then succeeds
        put = await core.put_endpoint("slow", "sparse_embedding", PUT_BODY)
        assert put.endpoint.inference_id == "slow"
    finally:
        await core.close()


async def test_threads_beyond_the_processors_stay_starting_with_the_reason(
    tiny_repository: Path, tmp_path: Path
) -> None:
    core = make_core(tiny_repository, tmp_path, **LIMITS, processors=1)
    await core.start()
    try:
        body = put_body(num_threads=2)
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
    core = make_core(tiny_repository, tmp_path, **LIMITS)
    models = core.models
    await core.start()
    try:
        await core.put_endpoint("one", "sparse_embedding", PUT_BODY)
        await core.put_endpoint("two", "sparse_embedding", PUT_BODY)
        assert models.loaded == {".elser_model_2"}
        await core.delete_endpoint("one")
        assert models.loaded == {".elser_model_2"}  # "two" still serves it
        await core.delete_endpoint("two")
        assert models.loaded == frozenset()
        again = await core.put_endpoint("three", "sparse_embedding", PUT_BODY)  # loads it back from the cache
        assert again.endpoint.inference_id == "three" and models.loaded == {".elser_model_2"}
    finally:
        await core.close()


async def test_update_while_the_deployment_starts_is_es_409_and_changes_nothing(
    tiny_repository: Path, tmp_path: Path
) -> None:
    """Right after a restart the deployment is still starting: an allocation update is ES's conflict, neither the
    store nor the live deployment changes, and a restart still has the stored count."""
    two_threads = {**PUT_BODY, "service_settings": {**PUT_BODY["service_settings"], "num_threads": 2}}
    first = make_core(tiny_repository, tmp_path, **LIMITS, processors=2)
    await first.start()
    await first.put_endpoint("e", "sparse_embedding", two_threads)
    await first.close()
    # One processor for two threads per allocation: after this restart the deployment stays starting (as ES).
    restarted = make_core(tiny_repository, tmp_path, **LIMITS, processors=1)
    await restarted.start()
    try:
        with pytest.raises(ElserError) as exc:
            await restarted.update_endpoint("e", None, {"service_settings": {"num_allocations": 3}})
        assert (exc.value.code, exc.value.http_status, exc.value.es_type) == (
            Code.FAILED_PRECONDITION,
            409,
            "status_exception",
        )
        assert exc.value.reason == "cannot update deployment that is not in [started] state"
        deployment = restarted.deployment("e")
        assert deployment is not None and deployment.target_allocations == 1
        assert (await restarted.get_endpoints("e"))[0].service_settings.num_allocations == 1
        # An update that changes no allocations does not touch the deployment (ES: nothing to update).
        same = await restarted.update_endpoint("e", None, {"task_settings": {}})
        assert same.service_settings.num_allocations == 1
    finally:
        await restarted.close()
    again = make_core(tiny_repository, tmp_path, **LIMITS, processors=2)
    await again.start()
    try:
        assert (await again.get_endpoints("e"))[0].service_settings.num_allocations == 1
    finally:
        await again.close()


async def test_an_update_beyond_the_memory_limit_is_es_429_and_changes_nothing(
    tiny_repository: Path, tiny_package: ModelPackage, tmp_path: Path
) -> None:
    footprint = footprint_as_served(tiny_package)
    limit = footprint.deployment_bytes(2)  # room for two allocations of the model, not three
    core = make_core(tiny_repository, tmp_path, **LIMITS, processors=4, memory_limit=limit)
    await core.start()
    try:
        await core.put_endpoint("e", "sparse_embedding", PUT_BODY)
        with pytest.raises(ElserError) as exc:
            await core.update_endpoint("e", None, {"service_settings": {"num_allocations": 3}})
        assert (exc.value.code, exc.value.http_status) == (Code.RESOURCE_EXHAUSTED, 429)
        assert exc.value.reason == (
            "Could not update deployment because there are not enough resources to provide all requested allocations"
        )
        deployment = core.deployment("e")
        assert deployment is not None
        assert (deployment.target_allocations, deployment.allocation_count) == (1, 1)
        assert (await core.get_endpoints("e"))[0].service_settings.num_allocations == 1
        updated = await core.update_endpoint("e", None, {"service_settings": {"num_allocations": 2}})
        assert updated.service_settings.num_allocations == 2 and deployment.allocation_count == 2
        # A second deployment of the same model finds no room for even one allocation.
        with pytest.raises(ElserError) as exc:
            await core.put_endpoint("f", "sparse_embedding", PUT_BODY)
        assert exc.value.reason == (
            "Could not start deployment because no ML nodes with sufficient capacity were found"
        )
        assert core.deployment("f") is None
    finally:
        await core.close()


async def test_no_state_outlives_its_inference_id(core: InferenceCore) -> None:
    """DELETE and _update of ids that do not exist, and PUT/watch/infer/DELETE cycles, with long ids: nothing is
    kept per id (locks, latest events, watchers, scaler state), so the traced memory stays where it was."""

    async def cycle(inference_id: str) -> None:
        await core.put_endpoint(inference_id, "sparse_embedding", PUT_BODY)
        stream = core.watch_deployment(inference_id)
        await anext(stream)
        assert len(await core.infer(inference_id, None, ["a text"])) == 1
        await core.delete_endpoint(inference_id)
        async with asyncio.timeout(30):
            assert [event async for event in stream][-1].phase.name == "STOPPED"

    await cycle("warm-up")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(100):
            missing = f"missing-{i}-" + "x" * (64 << 10)
            with pytest.raises(ElserError):
                await core.delete_endpoint(missing)
            with pytest.raises(ElserError):
                await core.update_endpoint(missing, None, {"service_settings": {"num_allocations": 2}})
        for i in range(20):
            await cycle(f"cycle-{i}-" + "y" * (16 << 10))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert core.locked_ids == 0
    # 200 lookups of 64 KiB ids and 20 cycles of 16 KiB ids: 13 MiB if anything per id were kept.
    assert grown < 1 << 20, f"{grown} bytes kept"
