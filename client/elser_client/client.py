"""Sync and asyncio clients over the generated elser.v1 stubs.

Every call has a deadline (the client's default unless `timeout_s=` says otherwise), retries follow the
published service config, and failures raise ElserClientError subclasses with the server's details decoded.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

import grpc
from elser.v1 import (
    endpoint_service_pb2,
    endpoint_service_pb2_grpc,
    inference_service_pb2,
    inference_service_pb2_grpc,
    types_pb2,
)

from elser_client.config import DEFAULT_TIMEOUT_S, channel_options
from elser_client.errors import error_from_rpc

DEFAULT_TARGET = "localhost:50051"

Texts = str | Sequence[str]


def task_type_value(task_type: str | None) -> int:
    """`"sparse_embedding"` → TASK_TYPE_SPARSE_EMBEDDING; None → unspecified."""
    if task_type is None:
        return int(types_pb2.TASK_TYPE_UNSPECIFIED)
    return int(types_pb2.TaskType.Value("TASK_TYPE_" + task_type.upper()))


def endpoint_config(
    *,
    service: str = "elasticsearch",
    model_id: str | None = ".elser_model_2",
    num_threads: int | None = 1,
    num_allocations: int | None = None,
    adaptive_allocations: tuple[int, int] | None = None,
    chunking_settings: types_pb2.ChunkingSettings | None = None,
) -> types_pb2.EndpointConfig:
    """An ES PUT body. `adaptive_allocations=(min, max)` enables adaptive allocations; without it and without
    `num_allocations` one allocation is used."""
    if num_allocations is None and adaptive_allocations is None:
        num_allocations = 1
    settings = types_pb2.ServiceSettings(
        model_id=model_id, num_threads=num_threads, num_allocations=num_allocations
    )
    if adaptive_allocations is not None:
        low, high = adaptive_allocations
        settings.adaptive_allocations.CopyFrom(
            types_pb2.AdaptiveAllocations(
                enabled=True, min_number_of_allocations=low, max_number_of_allocations=high
            )
        )
    config = types_pb2.EndpointConfig(service=service, service_settings=settings)
    if chunking_settings is not None:
        config.chunking_settings.CopyFrom(chunking_settings)
    return config


def infer_request(
    inference_id: str,
    inputs: Texts,
    *,
    return_tokens: bool,
    top_k: int | None,
    min_weight: float | None,
    priority: int,
) -> inference_service_pb2.InferRequest:
    return inference_service_pb2.InferRequest(
        inference_id=inference_id,
        input=[inputs] if isinstance(inputs, str) else list(inputs),
        options=types_pb2.InferenceOptions(
            return_tokens=return_tokens, top_k=top_k, min_weight=min_weight, priority=priority
        ),
    )


def stream_request(
    inference_id: str, index: int, inputs: Texts, return_tokens: bool
) -> inference_service_pb2.InferStreamRequest:
    return inference_service_pb2.InferStreamRequest(
        correlation_id=str(index),
        inference_id=inference_id,
        input=[inputs] if isinstance(inputs, str) else list(inputs),
        options=types_pb2.InferenceOptions(return_tokens=return_tokens, priority=types_pb2.PRIORITY_BULK),
    )


class ElserClient:
    """Blocking client. Use as a context manager or call close()."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        opts = channel_options(overrides=options)
        self._channel = (
            grpc.secure_channel(target, credentials, options=opts)
            if credentials is not None
            else grpc.insecure_channel(target, options=opts)
        )
        self.timeout_s = timeout_s
        self.endpoints = endpoint_service_pb2_grpc.EndpointServiceStub(self._channel)
        self.inference = inference_service_pb2_grpc.InferenceServiceStub(self._channel)

    def __enter__(self) -> ElserClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Any, request: Any, timeout_s: float | None) -> Any:
        try:
            return method(request, timeout=timeout_s if timeout_s is not None else self.timeout_s)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None

    def put_endpoint(
        self,
        inference_id: str,
        config: types_pb2.EndpointConfig | None = None,
        *,
        task_type: str | None = "sparse_embedding",
        timeout_s: float | None = None,
    ) -> types_pb2.Endpoint:
        request = endpoint_service_pb2.PutEndpointRequest(
            inference_id=inference_id,
            task_type=task_type_value(task_type),
            endpoint=config if config is not None else endpoint_config(),
        )
        return self._call(self.endpoints.PutEndpoint, request, timeout_s).endpoint

    def get_endpoint(
        self, inference_id: str, *, task_type: str | None = None, timeout_s: float | None = None
    ) -> types_pb2.Endpoint:
        request = endpoint_service_pb2.GetEndpointRequest(
            inference_id=inference_id, task_type=task_type_value(task_type)
        )
        return self._call(self.endpoints.GetEndpoint, request, timeout_s).endpoint

    def list_endpoints(
        self, *, task_type: str | None = None, timeout_s: float | None = None
    ) -> list[types_pb2.Endpoint]:
        request = endpoint_service_pb2.ListEndpointsRequest(task_type=task_type_value(task_type))
        return list(self._call(self.endpoints.ListEndpoints, request, timeout_s).endpoints)

    def update_endpoint(
        self, inference_id: str, config: types_pb2.EndpointConfig, *, timeout_s: float | None = None
    ) -> types_pb2.Endpoint:
        request = endpoint_service_pb2.UpdateEndpointRequest(inference_id=inference_id, endpoint=config)
        return self._call(self.endpoints.UpdateEndpoint, request, timeout_s).endpoint

    def delete_endpoint(
        self, inference_id: str, *, dry_run: bool = False, force: bool = False, timeout_s: float | None = None
    ) -> endpoint_service_pb2.DeleteEndpointResponse:
        request = endpoint_service_pb2.DeleteEndpointRequest(
            inference_id=inference_id, dry_run=dry_run, force=force
        )
        return self._call(self.endpoints.DeleteEndpoint, request, timeout_s)

    def infer(
        self,
        inference_id: str,
        inputs: Texts,
        *,
        return_tokens: bool = False,
        top_k: int | None = None,
        min_weight: float | None = None,
        priority: int = types_pb2.PRIORITY_UNSPECIFIED,
        timeout_s: float | None = None,
    ) -> list[types_pb2.SparseEmbedding]:
        """One SparseEmbedding per input, in input order."""
        request = infer_request(
            inference_id,
            inputs,
            return_tokens=return_tokens,
            top_k=top_k,
            min_weight=min_weight,
            priority=priority,
        )
        return list(self._call(self.inference.Infer, request, timeout_s).embeddings)

    def infer_stream(
        self,
        inference_id: str,
        batches: Iterable[Texts],
        *,
        return_tokens: bool = False,
        timeout_s: float | None = None,
    ) -> Iterator[inference_service_pb2.InferStreamResponse]:
        """Bulk embedding over one stream: one response per batch, in order, correlation ids "0", "1", ….

        A failed batch has `error` set (decode it with `elser_client.errors.error_from_status`). `timeout_s`
        bounds the whole stream and defaults to none.
        """
        requests = (stream_request(inference_id, i, texts, return_tokens) for i, texts in enumerate(batches))
        try:
            yield from self.inference.InferStream(requests, timeout=timeout_s)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None

    def watch_deployment(
        self, inference_id: str, *, timeout_s: float | None = None
    ) -> Iterator[types_pb2.DeploymentEvent]:
        """The current deployment state, then every change (no deadline unless `timeout_s` is given)."""
        request = endpoint_service_pb2.WatchDeploymentRequest(inference_id=inference_id)
        try:
            for response in self.endpoints.WatchDeployment(request, timeout=timeout_s):
                yield response.event
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None


class AsyncElserClient:
    """asyncio client (grpc.aio). Use `async with` or await close()."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        opts = channel_options(overrides=options)
        self._channel = (
            grpc.aio.secure_channel(target, credentials, options=opts)
            if credentials is not None
            else grpc.aio.insecure_channel(target, options=opts)
        )
        self.timeout_s = timeout_s
        self.endpoints = endpoint_service_pb2_grpc.EndpointServiceStub(self._channel)
        self.inference = inference_service_pb2_grpc.InferenceServiceStub(self._channel)

    async def __aenter__(self) -> AsyncElserClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: Any, request: Any, timeout_s: float | None) -> Any:
        try:
            return await method(request, timeout=timeout_s if timeout_s is not None else self.timeout_s)
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error) from None

    async def put_endpoint(
        self,
        inference_id: str,
        config: types_pb2.EndpointConfig | None = None,
        *,
        task_type: str | None = "sparse_embedding",
        timeout_s: float | None = None,
    ) -> types_pb2.Endpoint:
        request = endpoint_service_pb2.PutEndpointRequest(
            inference_id=inference_id,
            task_type=task_type_value(task_type),
            endpoint=config if config is not None else endpoint_config(),
        )
        return (await self._call(self.endpoints.PutEndpoint, request, timeout_s)).endpoint

    async def get_endpoint(
        self, inference_id: str, *, task_type: str | None = None, timeout_s: float | None = None
    ) -> types_pb2.Endpoint:
        request = endpoint_service_pb2.GetEndpointRequest(
            inference_id=inference_id, task_type=task_type_value(task_type)
        )
        return (await self._call(self.endpoints.GetEndpoint, request, timeout_s)).endpoint

    async def list_endpoints(
        self, *, task_type: str | None = None, timeout_s: float | None = None
    ) -> list[types_pb2.Endpoint]:
        request = endpoint_service_pb2.ListEndpointsRequest(task_type=task_type_value(task_type))
        return list((await self._call(self.endpoints.ListEndpoints, request, timeout_s)).endpoints)

    async def update_endpoint(
        self, inference_id: str, config: types_pb2.EndpointConfig, *, timeout_s: float | None = None
    ) -> types_pb2.Endpoint:
        request = endpoint_service_pb2.UpdateEndpointRequest(inference_id=inference_id, endpoint=config)
        return (await self._call(self.endpoints.UpdateEndpoint, request, timeout_s)).endpoint

    async def delete_endpoint(
        self, inference_id: str, *, dry_run: bool = False, force: bool = False, timeout_s: float | None = None
    ) -> endpoint_service_pb2.DeleteEndpointResponse:
        request = endpoint_service_pb2.DeleteEndpointRequest(
            inference_id=inference_id, dry_run=dry_run, force=force
        )
        return await self._call(self.endpoints.DeleteEndpoint, request, timeout_s)

    async def infer(
        self,
        inference_id: str,
        inputs: Texts,
        *,
        return_tokens: bool = False,
        top_k: int | None = None,
        min_weight: float | None = None,
        priority: int = types_pb2.PRIORITY_UNSPECIFIED,
        timeout_s: float | None = None,
    ) -> list[types_pb2.SparseEmbedding]:
        """One SparseEmbedding per input, in input order."""
        request = infer_request(
            inference_id,
            inputs,
            return_tokens=return_tokens,
            top_k=top_k,
            min_weight=min_weight,
            priority=priority,
        )
        return list((await self._call(self.inference.Infer, request, timeout_s)).embeddings)

    async def infer_stream(
        self,
        inference_id: str,
        batches: Iterable[Texts] | AsyncIterable[Texts],
        *,
        return_tokens: bool = False,
        timeout_s: float | None = None,
    ) -> AsyncIterator[inference_service_pb2.InferStreamResponse]:
        """As ElserClient.infer_stream; `batches` may also be an async iterable."""

        async def requests() -> AsyncIterator[inference_service_pb2.InferStreamRequest]:
            counter = itertools.count()
            if isinstance(batches, AsyncIterable):
                async for texts in batches:
                    yield stream_request(inference_id, next(counter), texts, return_tokens)
            else:
                for texts in batches:
                    yield stream_request(inference_id, next(counter), texts, return_tokens)

        try:
            async for response in self.inference.InferStream(requests(), timeout=timeout_s):
                yield response
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error) from None

    async def watch_deployment(
        self, inference_id: str, *, timeout_s: float | None = None
    ) -> AsyncIterator[types_pb2.DeploymentEvent]:
        request = endpoint_service_pb2.WatchDeploymentRequest(inference_id=inference_id)
        try:
            async for response in self.endpoints.WatchDeployment(request, timeout=timeout_s):
                yield response.event
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error) from None
