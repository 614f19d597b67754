"""aiohttp middlewares of the shim: telemetry (request id, RED metrics, access log) outside the error
middleware, so it sees the final status; authentication and body logging inside it, so their failures become
ES errors in the one place that maps them."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import typedefs, web
from elser_server.core.errors import ElserError
from elser_server.observability.context import (
    OPAQUE_ID_HEADER,
    REQUEST_ID_HEADER,
    choose_request_id,
    request_id,
)
from elser_server.observability.metrics import Metrics
from elser_server.observability.spans import NO_SPANS, ServerSpans
from elser_server.security import ApiKeys
from elser_server.transport.rest import routes
from elser_server.transport.rest.body import RAW_BODY
from elser_server.transport.rest.errors import CLIENT_CLOSED
from elser_server.transport.rest.routes import Action, Route

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = typedefs.Middleware

UNMATCHED_ROUTE = "unmatched"

_SUFFIX = {Action.UPDATE: "/_update", Action.STREAM: "/_stream"}


def route_template(method: str, raw_path: str) -> str:
    """The ES route a request matched, with its path parameters as `{names}` (a bounded label set)."""
    try:
        route = routes.resolve(method, routes.split_path(raw_path), raw_path)
    except ElserError:
        return UNMATCHED_ROUTE
    return _template(route)


def _template(route: Route) -> str:
    task = "/{task_type}" if route.task_type is not None else ""
    ident = "/{inference_id}" if route.inference_id is not None else ""
    if route.action is Action.ROOT:
        return "/"
    if route.action is Action.CHUNKED:
        return f"/_elser/chunked{task}{ident}"
    if route.action is Action.STATS:
        return "/_elser/deployments/{inference_id}/_stats"
    return f"/_inference{task}{ident}{_SUFFIX.get(route.action, '')}"


def telemetry(metrics: Metrics | None, spans: ServerSpans = NO_SPANS) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        headers = request.headers
        rid = choose_request_id(
            (name, value)
            for name in (REQUEST_ID_HEADER, OPAQUE_ID_HEADER)
            if (value := headers.get(name)) is not None
        )
        request_id.set(rid)  # set anew for every request: the rest of its handling logs under it
        route = route_template(request.method, request.rel_url.raw_path)
        span_attributes = {
            "http.request.method": request.method,
            "http.route": route,
            "url.path": request.path,
        }
        started, status = time.perf_counter(), CLIENT_CLOSED
        if metrics is not None:
            metrics.http_started(request.method, route)
        with spans.server_span(f"{request.method} {route}", headers, span_attributes) as end_span:
            try:
                response = await handler(request)
                status = response.status
                if not response.prepared:
                    response.headers["X-Request-Id"] = rid
                    if OPAQUE_ID_HEADER in headers:  # ES echoes X-Opaque-Id
                        response.headers["X-Opaque-Id"] = headers[OPAQUE_ID_HEADER]
                return response
            finally:
                seconds = time.perf_counter() - started
                end_span({"http.response.status_code": status}, status >= 500)
                if metrics is not None:
                    metrics.observe_http(request.method, route, status, seconds)
                duration_ms = round(seconds * 1000, 3)
                log.info(
                    "%s %s %d %.1fms",
                    request.method,
                    request.rel_url.raw_path,
                    status,
                    duration_ms,
                    extra={
                        "http_method": request.method,
                        "route": route,
                        "status": status,
                        "duration_ms": duration_ms,
                    },
                )

    return middleware


def authentication(keys: ApiKeys, metrics: Metrics | None) -> Middleware:
    """Every route needs a key (as in ES with security on: `GET /` too)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            keys.check(request.headers.get("Authorization"), f"REST request [{request.raw_path}]")
        except ElserError:
            if metrics is not None:
                metrics.auth_rejected()
            raise
        return await handler(request)

    return middleware


@web.middleware
async def log_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """DEBUG-log request bodies (input texts included): for debugging only. Logged once the handler has read
    them (with its limits on size and time)."""
    try:
        return await handler(request)
    finally:
        body = request.get(RAW_BODY)
        if body is not None and log.isEnabledFor(logging.DEBUG):
            text = body.decode("utf-8", "replace")
            log.debug("%s %s body: %s", request.method, request.rel_url.raw_path, text)
