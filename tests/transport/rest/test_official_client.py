"""The official elasticsearch-py 9.x client against the shim: every inference API call it offers, its
compatibility headers, product check, warnings and typed exceptions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch, BadRequestError, ElasticsearchWarning, NotFoundError
from elser_server.core.defaults import DEFAULT_ELSER_MODEL_ID
from support import ELSER_PUT_BODY, PUT_BODY

DEFAULT_CHUNKING = {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
ADAPTIVE_SEED = {
    "service": "elser",
    "service_settings": {
        "adaptive_allocations": {
            "enabled": True,
            "min_number_of_allocations": 3,
            "max_number_of_allocations": 10,
        },
        "num_threads": 1,
    },
}


def ordered(body: Any) -> str:
    """JSON text keeps key order at every level, which dict equality ignores."""
    return json.dumps(body)


@pytest.fixture
async def es(base_url: str) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(base_url, request_timeout=60)
    yield client
    await client.close()


async def test_seed_example_without_adaptive_allocations(es: AsyncElasticsearch) -> None:
    with pytest.warns(ElasticsearchWarning, match="without a model_id field is deprecated"):
        created = await es.inference.put(
            task_type="sparse_embedding", inference_id="my-elser-model", inference_config=ELSER_PUT_BODY
        )
    # The seed's response as ES 8.16+ prints it: elasticsearch service, model_id, default chunking, no task_settings.
    assert ordered(created.body) == ordered(
        {
            "inference_id": "my-elser-model",
            "task_type": "sparse_embedding",
            "service": "elasticsearch",
            "service_settings": {
                "num_allocations": 1,
                "num_threads": 1,
                "model_id": DEFAULT_ELSER_MODEL_ID,
            },
            "chunking_settings": DEFAULT_CHUNKING,
        }
    )
    assert created.meta.headers["X-Elastic-Product"] == "Elasticsearch"
    assert created.meta.headers["Content-Type"] == "application/vnd.elasticsearch+json;compatible-with=9"


async def test_seed_example_with_adaptive_allocations(es: AsyncElasticsearch) -> None:
    with pytest.warns(ElasticsearchWarning):
        created = await es.inference.put(
            task_type="sparse_embedding", inference_id="my-elser-model", inference_config=ADAPTIVE_SEED
        )
    # As ES prints it: adaptive_allocations after model_id, no num_allocations, no task_settings.
    expected: dict[str, Any] = {
        "inference_id": "my-elser-model",
        "task_type": "sparse_embedding",
        "service": "elasticsearch",
        "service_settings": {
            "num_threads": 1,
            "model_id": DEFAULT_ELSER_MODEL_ID,
            "adaptive_allocations": {
                "enabled": True,
                "min_number_of_allocations": 3,
                "max_number_of_allocations": 10,
            },
        },
        "chunking_settings": DEFAULT_CHUNKING,
    }
    assert ordered(created.body) == ordered(expected)
    got = await es.inference.get(inference_id="my-elser-model")
    # GET adds the deployment's live allocation count first (es-compat §1.3); how many of the adaptive minimum
    # of 3 are running yet depends on the machine's processors.
    live = got.body["endpoints"][0]["service_settings"].get("num_allocations")
    assert isinstance(live, int) and 1 <= live <= 3
    listed = {**expected, "service_settings": {"num_allocations": live, **expected["service_settings"]}}
    assert ordered(got.body) == ordered({"endpoints": [listed]})


async def test_crud_and_inference(es: AsyncElasticsearch) -> None:
    created = await es.inference.put(
        inference_id="es-elser", task_type="sparse_embedding", inference_config=PUT_BODY
    )
    assert created.body["service_settings"] == PUT_BODY["service_settings"]
    # Task type only in the body, URL without it.
    await es.inference.put(
        inference_id="no-task-type", inference_config={**PUT_BODY, "task_type": "sparse_embedding"}
    )

    everything = await es.inference.get()
    ids = [e["inference_id"] for e in everything.body["endpoints"]]
    assert ids == sorted(ids) and {"es-elser", "no-task-type", ".elser-2-elasticsearch"} <= set(ids)
    by_type = await es.inference.get(task_type="sparse_embedding")
    assert {e["task_type"] for e in by_type.body["endpoints"]} == {"sparse_embedding"}
    assert (await es.inference.get(task_type="text_embedding")).body == {"endpoints": []}
    one = await es.inference.get(inference_id="es-elser")
    assert [e["inference_id"] for e in one.body["endpoints"]] == ["es-elser"]
    typed = await es.inference.get(task_type="sparse_embedding", inference_id="es-elser")
    assert typed.body == one.body

    result = await es.inference.inference(inference_id="es-elser", input=["first text", "second text"])
    rows = result.body["sparse_embedding"]
    assert len(rows) == 2 and all(set(r) == {"is_truncated", "embedding"} for r in rows)
    for row in rows:
        weights = list(row["embedding"].values())
        assert weights == sorted(weights, reverse=True) and all(w > 0 for w in weights)
        assert not any("." in token for token in row["embedding"])
    single = await es.inference.sparse_embedding(inference_id="es-elser", input="first text", timeout="10s")
    assert single.body["sparse_embedding"][0] == rows[0]
    typed_infer = await es.inference.inference(
        inference_id="es-elser", task_type="sparse_embedding", input="first text", task_settings={}
    )
    assert typed_infer.body == single.body

    updated = await es.inference.update(
        inference_id="es-elser", inference_config={"service_settings": {"num_allocations": 2}}
    )
    assert updated.body["service_settings"]["num_allocations"] == 2

    dry = await es.inference.delete(inference_id="es-elser", dry_run=True)
    assert dry.body == {"acknowledged": False, "pipelines": [], "indexes": [], "error_message": ""}
    deleted = await es.inference.delete(inference_id="es-elser", task_type="sparse_embedding", force=True)
    assert deleted.body == {"acknowledged": True, "pipelines": [], "indexes": []}
    assert (await es.inference.delete(inference_id="no-task-type")).body["acknowledged"] is True


async def test_errors_are_typed_with_es_reasons(es: AsyncElasticsearch) -> None:
    with pytest.raises(NotFoundError) as missing:
        await es.inference.get(inference_id="inference_to_get")
    assert missing.value.message == "resource_not_found_exception"
    assert missing.value.body["error"]["reason"] == "Inference endpoint not found [inference_to_get]"
    assert "Inference endpoint not found [inference_to_get]" in str(missing.value)

    with pytest.raises(BadRequestError) as bad_type:
        await es.inference.put(
            inference_id="elser_model",
            inference_config={"task_type": "bad", **ELSER_PUT_BODY, "task_settings": {}},
        )
    assert bad_type.value.body["error"]["reason"] == "Unknown task_type [bad]"

    await es.inference.put(inference_id="e", task_type="sparse_embedding", inference_config=PUT_BODY)
    with pytest.raises(BadRequestError) as exists:
        await es.inference.put(inference_id="e", task_type="sparse_embedding", inference_config=PUT_BODY)
    assert exists.value.message == "resource_already_exists_exception"
    with pytest.raises(BadRequestError) as empty:
        await es.inference.inference(inference_id="e", input=[])
    assert (
        empty.value.body["error"]["reason"] == "Validation Failed: 1: Field [input] cannot be an empty array;"
    )
    with pytest.raises(BadRequestError) as mismatch:
        await es.inference.get(task_type="text_embedding", inference_id="e")
    assert mismatch.value.body["error"]["reason"] == (
        "Requested task type [text_embedding] does not match the inference endpoint's task type [sparse_embedding]"
    )
    with pytest.raises(NotFoundError):
        await es.inference.delete(inference_id="nope")
    with pytest.raises(BadRequestError) as bad_timeout:
        await es.inference.inference(inference_id="e", input="x", timeout="10")
    assert bad_timeout.value.message == "illegal_argument_exception"


async def test_info_and_ping(es: AsyncElasticsearch) -> None:
    info = await es.info()
    assert info.body["tagline"] == "You Know, for Search"
    assert info.body["version"]["number"].startswith("9.")
    assert await es.ping()
