"""elser_client against a real server: sync and asyncio clients, decoded errors, the retry config."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from elser_client import (
    SERVICE_CONFIG_JSON,
    AlreadyExists,
    AsyncElserClient,
    DeadlineExceeded,
    ElserClient,
    InvalidArgument,
    NotFound,
    channel_options,
    endpoint_config,
    error_from_status,
    token_weights,
)


def test_retry_service_config_is_published() -> None:
    (method_config,) = json.loads(SERVICE_CONFIG_JSON)["methodConfig"]
    policy = method_config["retryPolicy"]
    assert policy["retryableStatusCodes"] == ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]
    assert policy["backoffMultiplier"] > 1
    assert {"service": "elser.v1.InferenceService", "method": "Infer"} in method_config["name"]
    assert ("grpc.service_config", SERVICE_CONFIG_JSON) in channel_options()


async def test_async_client(target: str) -> None:
    async with AsyncElserClient(target) as client:
        endpoint = await client.put_endpoint("async-elser", timeout_s=60)
        assert endpoint.inference_id == "async-elser"
        assert "async-elser" in [e.inference_id for e in await client.list_endpoints()]
        (embedding,) = await client.infer("async-elser", "hello world", return_tokens=True, top_k=5)
        weights = token_weights(embedding)
        assert 0 < len(weights) <= 5 and list(weights.values()) == sorted(weights.values(), reverse=True)

        responses = [r async for r in client.infer_stream("async-elser", [["a", "b"], [], "c"])]
        assert [r.correlation_id for r in responses] == ["0", "1", "2"]
        bad = error_from_status(grpc.StatusCode.INVALID_ARGUMENT, responses[1].error)
        assert isinstance(bad, InvalidArgument) and "input" in bad.message

        with pytest.raises(AlreadyExists) as exists:
            await client.put_endpoint("async-elser")
        assert exists.value.resource is not None and exists.value.resource.name == "async-elser"
        assert exists.value.es_type == "resource_already_exists_exception"

        events = client.watch_deployment("async-elser")
        first = await anext(events)
        assert first.deployment_id == "async-elser"
        await events.aclose()
        assert (await client.delete_endpoint("async-elser")).acknowledged


async def test_sync_client_and_decoded_errors(target: str) -> None:
    # The server shares this event loop: the blocking client runs in a thread.
    await asyncio.to_thread(sync_client_checks, target)


def sync_client_checks(target: str) -> None:
    with ElserClient(target) as client:
        with pytest.raises(NotFound) as missing:
            client.get_endpoint("nope")
        assert missing.value.message == "Inference endpoint not found [nope]"
        assert missing.value.error_reason and missing.value.http_status == 404

        with pytest.raises(InvalidArgument) as invalid:
            client.put_endpoint("bad", endpoint_config(num_threads=None))
        assert invalid.value.es_type == "validation_exception"
        assert invalid.value.field_violations

        client.put_endpoint("sync-elser", timeout_s=60)
        embeddings = client.infer("sync-elser", ["one", "two"])
        assert len(embeddings) == 2 and not embeddings[0].tokens
        assert [r.correlation_id for r in client.infer_stream("sync-elser", ["x", "y"])] == ["0", "1"]


async def test_default_deadline_applies(target: str) -> None:
    async with AsyncElserClient(target, timeout_s=1e-3) as client:
        with pytest.raises(DeadlineExceeded):
            await client.infer(".elser-2-elasticsearch", ["long text " * 200] * 64)
