"""Server spans as the transports see them: a neutral interface, so no transport imports OpenTelemetry (an
optional extra, see `tracing`). `NO_SPANS` when tracing is off."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

Attributes = Mapping[str, str | int]
SpanEnd = Callable[[Attributes, bool], None]  # (attributes known at the end, whether the call failed)


class ServerSpans(Protocol):
    def server_span(
        self, name: str, carrier: Mapping[str, str], attributes: Attributes
    ) -> AbstractContextManager[SpanEnd]:
        """A span for one incoming call, child of the trace context in `carrier` (headers / metadata)."""

    def shutdown(self) -> None:
        """Flush what is buffered."""


def _ignore(attributes: Attributes, failed: bool) -> None:
    return None


class _NoSpans:
    @contextmanager
    def server_span(self, name: str, carrier: Mapping[str, str], attributes: Attributes) -> Iterator[SpanEnd]:
        yield _ignore

    def shutdown(self) -> None:
        return None


NO_SPANS: ServerSpans = _NoSpans()
