"""The one place where failures become ES JSON: domain `ElserError`s (ES type/reason/status from the core),
the shim's own request errors, aiohttp's HTTP exceptions and unexpected exceptions."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from aiohttp import web
from elser_server.core.errors import Code, ElserError, internal
from multidict import CIMultiDict

log = logging.getLogger(__name__)

CLIENT_CLOSED = 499  # nginx's convention for "the client went away before the answer"


@dataclass
class RestError(ElserError):
    """A failure found by the shim itself (HTTP framing, query string, JSON syntax). `caused_by` is the
    wrapped exception ES prints under `error.caused_by` as (type, reason); `close_connection` ends the
    connection after the answer (what is left of the request on it cannot be read)."""

    caused_by: tuple[str, str] | None = None
    close_connection: bool = False


def rest_error(
    reason: str,
    es_type: str = "illegal_argument_exception",
    status: int = 400,
    *,
    caused_by: tuple[str, str] | None = None,
) -> RestError:
    return RestError(Code.INVALID_ARGUMENT, reason, es_type, status, "BAD_REST_REQUEST", caused_by=caused_by)


def body_too_large(limit: int) -> RestError:
    # ES answers 413 with an empty body; an enveloped body tells the client the limit as well.
    return rest_error(f"Request body is too large: the limit is [{limit}] bytes", "status_exception", 413)


def body_timeout(seconds: float) -> RestError:
    error = rest_error(
        f"Timed out reading the request body: nothing arrived for [{seconds:g}s]", "status_exception", 408
    )
    error.close_connection = True
    return error


def client_closed() -> RestError:
    """The client left before its request was read (ES counts such requests as cancelled)."""
    return RestError(
        Code.CANCELLED,
        "The client closed the connection before the request body was read",
        "status_exception",
        CLIENT_CLOSED,
        "CLIENT_CLOSED",
        close_connection=True,
    )


def closes_connection(error: ElserError) -> bool:
    """Answers after which the connection is closed: the request was not wholly read, or its client did not
    authenticate (so an unauthenticated client holds no idle connection)."""
    return error.code is Code.UNAUTHENTICATED or (isinstance(error, RestError) and error.close_connection)


def from_exception(exc: BaseException) -> ElserError:
    """Whatever escaped a handler, as an ES error; internals are logged, never sent."""
    if isinstance(exc, ElserError):
        return exc
    if isinstance(exc, web.HTTPException):
        return rest_error(exc.reason, "status_exception", exc.status)
    log.exception("unexpected error in the REST shim", exc_info=exc)
    return internal("An internal error occurred while handling the request")


# The schemes this service accepts, in ES's `WWW-Authenticate` spelling (ES lists Basic first; we have no users).
AUTHENTICATE_CHALLENGES = ('Bearer realm="security"', "ApiKey")


def error_body(error: ElserError) -> dict[str, object]:
    """`{"error":{"root_cause":[{type,reason[,header]}],type,reason[,header][,caused_by]},"status":N}` —
    root_cause holds the outer exception because the wrapped causes are never ES exceptions themselves;
    `header` is ES's copy of the response headers a security exception carries."""
    cause: dict[str, object] = {"type": error.es_type, "reason": error.reason}
    if error.code is Code.UNAUTHENTICATED:
        cause["header"] = {"WWW-Authenticate": list(AUTHENTICATE_CHALLENGES)}
    detail: dict[str, object] = {"root_cause": [dict(cause)], **cause}
    if isinstance(error, RestError) and error.caused_by is not None:
        detail["caused_by"] = {"type": error.caused_by[0], "reason": error.caused_by[1]}
    return {"error": detail, "status": error.http_status}


def error_headers(error: ElserError) -> CIMultiDict[str]:
    """ES sends no Retry-After; we add it for overload/unavailable so generic HTTP clients back off too.
    Authentication failures send one `WWW-Authenticate` per accepted scheme, as ES does."""
    headers: CIMultiDict[str] = CIMultiDict()
    if error.code is Code.UNAUTHENTICATED:
        for challenge in AUTHENTICATE_CHALLENGES:
            headers.add("WWW-Authenticate", challenge)
    elif error.retry_after_s is not None and error.http_status in (429, 503):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    return headers
