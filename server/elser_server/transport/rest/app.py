"""The aiohttp application of the ES-compatible shim: one catch-all route dispatched by ES's path grammar,
JSON ↔ domain translation, and a middleware that turns every failure into ES's error envelope."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from elser_server.core.endpoint_rules import check_id_format, check_infer_task_type, parse_task_type
from elser_server.core.errors import ElserError, invalid
from elser_server.core.input_type import input_type_priority, input_type_problem
from elser_server.core.service import InferenceCore
from elser_server.core.types import ChunkedInputDone, DeploymentReport, InferOptions, TaskType
from elser_server.transport.rest import body, media, params, routes
from elser_server.transport.rest.body import RAW_BODY
from elser_server.transport.rest.errors import (
    body_timeout,
    body_too_large,
    client_closed,
    closes_connection,
    error_body,
    error_headers,
    from_exception,
    rest_error,
)
from elser_server.transport.rest.filter_path import FilterPath
from elser_server.transport.rest.jsontext import dumps, encode, sparse_embedding_text, sparse_embedding_tree
from elser_server.transport.rest.middlewares import Middleware
from elser_server.transport.rest.routes import Action, Route
from multidict import CIMultiDict

ES_VERSION = "9.1.0"  # the ES release whose REST behaviour the shim follows (root info, Warning headers)
_WARNING_AGENT = f"Elasticsearch-{ES_VERSION}"

_CONTENT_TYPE = web.RequestKey("content_type", str)
_PRETTY = web.RequestKey("pretty", bool)
_FILTER = web.RequestKey("filter_path", FilterPath)

_Handler = Callable[[web.Request, Route, bytes], Awaitable[web.StreamResponse]]


def build_app(
    core: InferenceCore,
    *,
    max_body_bytes: int,
    body_timeout_s: float = 30.0,
    node_name: str | None = None,
    cluster_name: str = "elser-inference",
    outer_middlewares: Sequence[Middleware] = (),
    inner_middlewares: Sequence[Middleware] = (),
) -> web.Application:
    """`outer_middlewares` see the final response (errors already mapped); what `inner_middlewares` raise is
    mapped to ES errors like a handler's failure."""
    shim = _Shim(core, max_body_bytes, body_timeout_s, node_name or socket.gethostname(), cluster_name)
    # aiohttp's own limit stays above ours so the shim always answers 413 itself.
    app = web.Application(
        middlewares=[*outer_middlewares, _errors, *inner_middlewares], client_max_size=max_body_bytes + 1
    )
    app.router.add_route("*", "/{path:.*}", shim.dispatch)
    app.on_response_prepare.append(_product_header)
    app.on_response_prepare.append(_replica_headers(core))
    return app


REPLICA_HEADER = "X-Elser-Replica"
STORE_STATE_HEADER = "X-Elser-Store-State"


def _replica_headers(core: InferenceCore) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """Which replica answered (behind a load balancer), and, while a shared endpoint store is unreachable, that
    endpoints come from this replica's last known state."""

    async def add(_: web.Request, response: web.StreamResponse) -> None:
        if core.replica_name:
            response.headers[REPLICA_HEADER] = core.replica_name
        if not core.store_available:
            response.headers[STORE_STATE_HEADER] = "unavailable"

    return add


async def _product_header(_: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Elastic-Product"] = (
        "Elasticsearch"  # the official clients refuse responses without it
    )


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except Exception as exc:  # every failure leaves as ES JSON, never as an aiohttp page or a traceback
        error = from_exception(exc)
        headers = error_headers(error)
        if error.http_status == 405:
            headers["Allow"] = ",".join(routes.allowed_methods(routes.split_path(request.rel_url.raw_path)))
        response = _json(
            request, dumps(error_body(error), pretty=request.get(_PRETTY, False)), error.http_status, headers
        )
        if closes_connection(error):
            response.force_close()
        return response


def _json(
    request: web.Request, text: str, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    out = CIMultiDict(headers or {})
    out["Content-Type"] = request.get(_CONTENT_TYPE, media.JSON)
    return web.Response(body=encode(text), status=status, headers=out)


def _warning(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 {_WARNING_AGENT} "{escaped}"'


class _Shim:
    def __init__(
        self,
        core: InferenceCore,
        max_body_bytes: int,
        body_timeout_s: float,
        node_name: str,
        cluster_name: str,
    ) -> None:
        self._core = core
        self._max_body_bytes = max_body_bytes
        self._body_timeout_s = body_timeout_s
        self._root = {
            "name": node_name,
            "cluster_name": cluster_name,
            "cluster_uuid": "_na_",
            "version": {
                "number": ES_VERSION,
                "build_flavor": "default",
                "build_snapshot": False,
                "minimum_wire_compatibility_version": "8.19.0",
                "minimum_index_compatibility_version": "8.0.0",
            },
            "tagline": "You Know, for Search",
        }
        self._actions: dict[Action, _Handler] = {
            Action.ROOT: self._info,
            Action.GET: self._get,
            Action.PUT: self._put,
            Action.INFER: self._infer,
            Action.DELETE: self._delete,
            Action.UPDATE: self._update,
            Action.STREAM: self._stream,
            Action.CHUNKED: self._chunked,
            Action.STATS: self._stats,
        }

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        request[_PRETTY] = params.parse_bool("pretty", query["pretty"]) if "pretty" in query else False
        for flag in ("human", "error_trace"):  # accepted; nothing here prints times/sizes or stack traces
            if flag in query:
                params.parse_bool(flag, query[flag])
        # Parsed before the action runs: a refused filter must not follow a PUT that already happened.
        selected = FilterPath.parse(",".join(query.getall("filter_path", [])))
        if selected is not None:
            request[_FILTER] = selected
        content_type = request.headers.get("Content-Type")
        request[_CONTENT_TYPE] = media.negotiate(
            content_type, request.headers.get("Accept"), request.body_exists
        )
        segments = routes.split_path(request.rel_url.raw_path)
        if request.method == "OPTIONS":
            allowed = routes.allowed_methods(segments)
            if not allowed:
                raise routes.no_handler(request.raw_path, "OPTIONS")
            return web.Response(headers={"Allow": ",".join(allowed)})
        route = routes.resolve(request.method, segments, request.raw_path)
        raw = await self._read_body(request) if request.body_exists else b""
        if raw:
            media.check_body_type(content_type)
        params.check_params(request.path, query.keys(), routes.PARAMS[route.action], route.path_params)
        if raw and route.action in (Action.ROOT, Action.GET, Action.DELETE, Action.STATS):
            raise rest_error(f"request [{request.method} {request.path}] does not support having a body")
        return await self._actions[route.action](request, route, raw)

    async def _read_body(self, request: web.Request) -> bytes:
        """The whole body, within the size limit; a body that stops arriving for the body timeout is 408, a
        client that leaves mid-upload a cancelled request (499), bad chunked framing 400."""
        if request.content_length is not None and request.content_length > self._max_body_bytes:
            raise body_too_large(self._max_body_bytes)
        raw = bytearray()
        try:
            while True:
                async with asyncio.timeout(self._body_timeout_s):
                    piece = await request.content.readany()
                if not piece:
                    break
                raw += piece
                if len(raw) > self._max_body_bytes:
                    raise body_too_large(self._max_body_bytes)
        except TimeoutError:
            raise body_timeout(self._body_timeout_s) from None
        except ConnectionError:
            raise client_closed() from None
        except HttpProcessingError as exc:
            raise rest_error(exc.message or "malformed request body", "status_exception", exc.code) from None
        request[RAW_BODY] = body = bytes(raw)
        return body

    def _ok(
        self, request: web.Request, tree: object, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        """A 2xx body with `filter_path` and `pretty` applied (errors are never filtered: clients need them)."""
        selected = request.get(_FILTER)
        if selected is not None and isinstance(tree, dict):
            tree = selected.apply(tree)
        return _json(request, dumps(tree, pretty=request[_PRETTY]), headers=headers)

    def _plain(self, request: web.Request) -> bool:
        return not request[_PRETTY] and "filter_path" not in request.query

    # --- routes ------------------------------------------------------------------------------------------------

    async def _info(self, request: web.Request, route: Route, raw: bytes) -> web.StreamResponse:
        return self._ok(request, self._root)

    async def _get(self, request: web.Request, route: Route, raw: bytes) -> web.StreamResponse:
        endpoints = await self._core.get_endpoints(route.inference_id, route.task_type)
        return self._ok(request, {"endpoints": [e.to_dict() for e in endpoints]})

    async def _put(self, request: web.Request, route: Route, raw: bytes) -> web.StreamResponse:
        assert route.inference_id is not None
        timeout_s = _timeout(request)
        result = await self._core.put_endpoint(
            route.inference_id, route.task_type, _required_map(raw), timeout_s=timeout_s
        )
        response = self._ok(request, result.endpoint.to_dict())
        for warning in result.warnings:
            response.headers.add("Warning", _warning(warning))
        return response

    async def _update(self, request: web.Request, route: Route, raw: bytes) -> web.StreamResponse:
        """ES 9.1's order: URL task type, body present, `master_timeout`, the id pattern, then the body."""
        assert route.inference_id is not None
        parse_task_type(route.task_type)
        if not raw:
            raise rest_error("request body is required", "parse_exception")
        # Time values are checked, though an update never waits: `master_timeout` (ES 9.1), `timeout` (9.5).
        if "master_timeout" in request.query:
            params.parse_time_value(request.query["master_timeout"], "master_timeout")
        _timeout(request)
        check_id_format(route.inference_id)
        endpoint = await self._core.update_endpoint(route.inference_id, route.task_type, body.parse_map(raw))
        return self._ok(request, endpoint.to_dict())

    async def _delete(self, request: web.Request, route: Route, raw: bytes) -> web.StreamResponse:
        assert route.inference_id is not None
        query = request.query
        result = await self._core.delete_endpoint(
            route.inference_id,
            route.task_type,
            dry_run=params.parse_bool("dry_run", query["dry_run"]) if "dry_run" in query else False,
            force=params.parse_bool("force", query["force"]) if "force" in query else False,
        )
        out: dict[str, object] = {
            "acknowledged": result.acknowledged,
            "pipelines": list(result.pipelines),
            "indexes": list(result.indexes),
        }
        if result.error_message is not None:
            out["error_message"] = result.error_message
        return self._ok(request, out)

    async def _infer(self, request: web.Request, route: Route, raw: bytes) -> web.StreamResponse:
        assert route.inference_id is not None
        # ES parses the URL task type before reading the body, so "Unknown task_type" wins over body errors.
        requested = parse_task_type(route.task_type)
        parsed = _inference_body(raw)
        _validate_inference(parsed, requested)
        deadline = _deadline(request, parsed.timeout)
        results = await self._core.infer(
            route.inference_id,
            route.task_type,
            parsed.input or [],
            InferOptions(priority=input_type_priority(parsed.input_type)),
            deadline=deadline,
        )
        if self._plain(request):
            return _json(request, sparse_embedding_text(results))
        return self._ok(request, sparse_embedding_tree(results))

    async def _stream(self, request: web.Request, route: Route, raw: bytes) -> web.StreamResponse:
        """ES 9.1's RestStreamInferenceAction: the URL and body are read as for inference (their errors are
        plain JSON); what the transport action refuses arrives as one server-sent `error` event, and the
        ELSER (elasticsearch) service streams no task type."""
        assert route.inference_id is not None
        requested = parse_task_type(route.task_type)
        parsed = _inference_body(raw)
        try:
            _validate_inference(parsed, requested)
            endpoint = (await self._core.get_endpoints(route.inference_id))[0]
            check_infer_task_type(endpoint, requested)
            error: ElserError = rest_error(
                f"Streaming is not allowed for service [{endpoint.service}].", "status_exception", 405
            )
        except ElserError as exc:
            error = exc
        # ES's ServerSentEventsRestActionListener starts every event it writes with a UTF-8 byte order mark.
        event = f"\ufeffevent: error\ndata: {dumps(error_body(error))}\n\n"
        return web.Response(body=encode(event), status=error.http_status, content_type="text/event-stream")

    async def _chunked(self, request: web.Request, route: Route, raw: bytes) -> web.StreamResponse:
        """Extension: ES's chunked inference (what semantic_text runs) — each input chunked with the endpoint's
        chunking settings (or `chunking_settings` from the body) and every chunk embedded. Each chunk has ES's
        UTF-16 `start_offset`/`end_offset`, then `start_code_point`/`end_code_point`."""
        assert route.inference_id is not None
        fields = _required_map(raw)
        unknown = sorted(set(fields) - {"input", "chunking_settings", "timeout"})
        if unknown:
            raise rest_error(f"unknown field [{unknown[0]}]", "x_content_parse_exception")
        texts = fields.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise invalid(
                "Validation Failed: 1: Field [input] must be a string or an array of strings;",
                es_type="action_request_validation_exception",
                field="input",
            )
        body_timeout = fields.get("timeout")
        if body_timeout is not None and not isinstance(body_timeout, str):
            raise rest_error(
                "[timeout] must be a time value string such as [30s]", "x_content_parse_exception"
            )
        outputs: list[dict[str, object]] = [{"chunks": []} for _ in texts]
        async for item in self._core.infer_chunked(
            route.inference_id,
            route.task_type,
            texts,
            chunking_settings=fields.get("chunking_settings"),
            deadline=_deadline(request, body_timeout),
        ):
            if isinstance(item, ChunkedInputDone):
                if item.error is not None:
                    outputs[item.input_index] = error_body(item.error)
                continue
            row = sparse_embedding_tree([item.embedding])["sparse_embedding"]
            assert isinstance(row, list)
            c = item.chunk
            # ES's keys first (UTF-16 offsets, as Java indexes a String); code points (Python str indices, as
            # gRPC gives them) are an extension after them.
            chunk = {
                "start_offset": c.start_utf16,
                "end_offset": c.end_utf16,
                **row[0],
                "start_code_point": c.start,
                "end_code_point": c.end,
            }
            chunks = outputs[item.input_index]["chunks"]
            assert isinstance(chunks, list)
            chunks.append(chunk)
        return self._ok(request, {"chunked_sparse_embedding": outputs})

    async def _stats(self, request: web.Request, route: Route, raw: bytes) -> web.StreamResponse:
        """Extension: the deployment part of ES's `_ml/trained_models/<id>/_stats`."""
        assert route.inference_id is not None
        return self._ok(
            request, {"deployment_stats": _stats_tree(self._core.deployment_stats(route.inference_id))}
        )


def _required_map(raw: bytes) -> dict[str, object]:
    if not raw:
        raise rest_error("request body is required", "parse_exception")
    return body.parse_map(raw)


def _inference_body(raw: bytes) -> body.InferenceRequest:
    if not raw:
        raise rest_error("request body or source parameter is required", "parse_exception")
    return body.parse_inference_request(raw)


def _validate_inference(parsed: body.InferenceRequest, task_type: TaskType) -> None:
    """InferenceAction.Request.validate for the body fields (an empty `input` is the core's rule)."""
    problems: list[str] = []
    if parsed.input is None:
        problems.append("Field [input] cannot be null")
    else:
        if (problem := input_type_problem(task_type, parsed.input_type)) is not None:
            problems.append(problem)
        if task_type not in (TaskType.RERANK, TaskType.ANY):
            if parsed.return_documents is not None:
                problems.append(
                    f"Field [return_documents] cannot be specified for task type [{task_type.value}]"
                )
            if parsed.top_n is not None:
                problems.append(f"Field [top_n] cannot be specified for task type [{task_type.value}]")
    if problems:
        raise invalid(
            "Validation Failed: " + "".join(f"{n}: {p};" for n, p in enumerate(problems, start=1)),
            es_type="action_request_validation_exception",
        )


def _timeout(request: web.Request) -> float | None:
    raw = request.query.get("timeout")
    return params.parse_time_value(raw, "timeout") if raw is not None else None


def _deadline(request: web.Request, body_timeout: str | None) -> float | None:
    """`?timeout=` wins over the body's `timeout`; None leaves the core's default (ES: 30s)."""
    timeout_s = _timeout(request)
    if timeout_s is None and "timeout" not in request.query and body_timeout is not None:
        timeout_s = params.parse_time_value(body_timeout, "timeout")
    return time.monotonic() + timeout_s if timeout_s is not None else None


def _stats_tree(report: DeploymentReport) -> dict[str, object]:
    event, stats = report.snapshot, report.stats
    out: dict[str, object] = {
        "deployment_id": event.deployment_id,
        "model_id": event.model_id,
        "state": event.phase.value,
        "number_of_allocations": event.current_allocations,
        "target_allocations": event.target_allocations,
        "threads_per_allocation": report.threads_per_allocation,
        "queue_capacity": report.queue_capacity,
        "queued": report.queued,
        "inference_count": stats.inference_count,
        "error_count": stats.error_count,
        "rejected_execution_count": stats.rejected_execution_count,
        "timeout_count": stats.timeout_count,
        "peak_throughput_per_minute": stats.peak_throughput_per_minute,
    }
    if report.replica:
        out["replica"] = report.replica
    if event.reason:
        out["reason"] = event.reason
    if (layout := report.layout) is not None:
        out["runtime"] = {"backend": layout.backend, "precision": layout.precision, "reason": layout.reason}
    if (average := stats.average_inference_time_ms) is not None:
        out["average_inference_time_ms"] = average
    if (p99 := stats.p99_inference_time_ms) is not None:
        out["p99_inference_time_ms"] = p99
    if (queue_average := stats.average_queue_time_ms) is not None:
        out["average_queue_time_ms"] = queue_average
    return out
