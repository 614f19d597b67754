"""ES's path grammar for `_inference` (the first segment after `_inference` is an id with one segment, a task
type with two) plus the root and the `_elser` extension routes, resolved without aiohttp's router so every
miss gets ES's error."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from elser_server.transport.rest.errors import RestError, rest_error

_METHOD_ORDER = ("GET", "POST", "PUT", "DELETE", "HEAD")  # ES prints allowed methods in enum order


class Action(enum.Enum):
    ROOT = "root"
    GET = "get"
    PUT = "put"
    INFER = "infer"
    DELETE = "delete"
    UPDATE = "update"
    STREAM = "stream"
    CHUNKED = "chunked"
    STATS = "stats"


# Query parameters each action consumes (besides pretty/human/error_trace/filter_path).
PARAMS: dict[Action, frozenset[str]] = {
    Action.ROOT: frozenset(),
    Action.GET: frozenset(),
    Action.PUT: frozenset({"timeout"}),
    Action.INFER: frozenset({"timeout"}),
    Action.DELETE: frozenset({"dry_run", "force"}),
    Action.UPDATE: frozenset({"master_timeout", "timeout"}),
    Action.STREAM: frozenset({"timeout"}),
    Action.CHUNKED: frozenset({"timeout"}),
    Action.STATS: frozenset(),
}


@dataclass(frozen=True)
class Route:
    action: Action
    inference_id: str | None = None
    task_type: str | None = None

    @property
    def path_params(self) -> tuple[str, ...]:
        names = ("inference_id",) if self.inference_id is not None else ()
        return (*names, "task_type") if self.task_type is not None else names


def split_path(raw_path: str) -> list[str]:
    """Percent-decode per segment, so an encoded `/` stays inside an id; empty segments are dropped as ES
    does (`/_inference/` is `/_inference`)."""
    return [unquote(segment) for segment in raw_path.split("/") if segment]


def resolve(method: str, segments: Sequence[str], uri: str) -> Route:
    method = "GET" if method == "HEAD" else method  # HEAD is GET without a body
    routes = _candidates(segments)
    if not routes:
        raise no_handler(uri, method)
    if method in routes:
        return routes[method]
    allowed = [m for m in _METHOD_ORDER if m in routes]
    raise rest_error(
        f"Incorrect HTTP method for uri [{uri}] and method [{method}], allowed: [{', '.join(allowed)}]",
        "status_exception",
        405,
    )


def no_handler(uri: str, method: str) -> RestError:
    return rest_error(f"no handler found for uri [{uri}] and method [{method}]", "status_exception", 400)


def allowed_methods(segments: Sequence[str]) -> list[str]:
    routes = _candidates(segments)
    return [m for m in _METHOD_ORDER if m in routes]


def _candidates(segments: Sequence[str]) -> dict[str, Route]:
    if not segments:
        return {"GET": Route(Action.ROOT)}
    head, rest = segments[0], list(segments[1:])
    if head == "_inference":
        return _inference(rest)
    if head == "_elser":
        return _extension(rest)
    return {}


def _crud(inference_id: str, task_type: str | None) -> dict[str, Route]:
    return {
        "GET": Route(Action.GET, inference_id, task_type),
        "POST": Route(Action.INFER, inference_id, task_type),
        "PUT": Route(Action.PUT, inference_id, task_type),
        "DELETE": Route(Action.DELETE, inference_id, task_type),
    }


def _inference(rest: list[str]) -> dict[str, Route]:
    match rest:
        case []:
            return {"GET": Route(Action.GET)}
        case [inference_id]:
            return _crud(inference_id, None)
        case [first, second]:
            # Literal suffixes win over the {task_type}/{inference_id} pattern for their own method only.
            routes = _crud(second, first)
            if second == "_update":
                routes["PUT"] = Route(Action.UPDATE, first)
            elif second == "_stream":
                routes["POST"] = Route(Action.STREAM, first)
            return routes
        case [task_type, inference_id, "_update"]:
            return {"PUT": Route(Action.UPDATE, inference_id, task_type)}
        case [task_type, inference_id, "_stream"]:
            return {"POST": Route(Action.STREAM, inference_id, task_type)}
    return {}


def _extension(rest: list[str]) -> dict[str, Route]:
    match rest:
        case ["chunked", inference_id]:
            return {"POST": Route(Action.CHUNKED, inference_id)}
        case ["chunked", task_type, inference_id]:
            return {"POST": Route(Action.CHUNKED, inference_id, task_type)}
        case ["deployments", inference_id, "_stats"]:
            return {"GET": Route(Action.STATS, inference_id)}
    return {}
