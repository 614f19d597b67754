"""The request id of the call being served, carried in a contextvar so every log record of the call (transport
and core alike) names it. Tasks the call creates copy the context, so background work it starts does too."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from contextvars import ContextVar

REQUEST_ID_HEADER = "x-request-id"
OPAQUE_ID_HEADER = "x-opaque-id"  # Elasticsearch's name for the same thing
MAX_REQUEST_ID_LENGTH = 128

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def _acceptable(value: str) -> bool:
    # Printable ASCII only and bounded: the id goes into logs and response headers verbatim.
    return 0 < len(value) <= MAX_REQUEST_ID_LENGTH and value.isascii() and value.isprintable()


def choose_request_id(pairs: Iterable[tuple[str, str]]) -> str:
    """`x-request-id`, else `x-opaque-id`, from lower-cased (name, value) pairs; a new id when neither is usable."""
    found = {name: value for name, value in pairs if name in (REQUEST_ID_HEADER, OPAQUE_ID_HEADER)}
    for name in (REQUEST_ID_HEADER, OPAQUE_ID_HEADER):
        value = found.get(name)
        if value is not None and _acceptable(value):
            return value
    return uuid.uuid4().hex
