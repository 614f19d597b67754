"""Bounds on the REST listener's connections, so slow or idle clients cannot hold the process's file
descriptors (and with them every listener, health checks included):

- a connection waiting for a request head (just opened, between keep-alive requests, or sending its headers
  slowly) is closed after `idle_timeout_s`;
- at most `max_connections` are open: a new one closes the connection that has waited for a request head the
  longest, or is itself closed when every connection has a request in progress.

A connection is busy from the moment its request head has arrived until its response is written (the
`middleware` marks it, and writes the response itself so that the write counts), so a request being served is
never cut. Clients that never authenticate hold no more
than this: an API-key failure also closes its connection (see `app`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConnectionGuard:
    def __init__(self, max_connections: int, idle_timeout_s: float) -> None:
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self._open: dict[asyncio.BaseTransport, _Connection] = {}
        # Connections waiting for a request head, the longest-waiting first.
        self._idle: OrderedDict[asyncio.BaseTransport, _Connection] = OrderedDict()
        self.closed_idle = 0  # connections closed for waiting too long for a request head
        self.evicted = 0  # connections closed to make room for a new one
        self.refused = 0  # new connections closed because every other one was busy

    @property
    def open_connections(self) -> int:
        return len(self._open)

    @property
    def busy_connections(self) -> int:
        """Connections with a request in progress."""
        return len(self._open) - len(self._idle)

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `loop.create_server` that tracks what `factory` builds."""
        return lambda: _Connection(self, factory())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        connection = self._open.get(request.transport) if request.transport is not None else None
        if connection is None:
            return await handler(request)
        self._busy(connection)
        try:
            response = await handler(request)
            if not response.prepared:
                with contextlib.suppress(ConnectionError):  # the client left; aiohttp then closes quietly
                    await response.prepare(request)
                    await response.write_eof()
            return response
        finally:
            if connection.transport is not None:
                self._waiting(connection)

    # --- connection events (from _Connection) ---------------------------------------------------------------

    def admit(self, connection: _Connection) -> bool:
        """Whether `connection` may stay, making room for it when needed."""
        if len(self._open) >= self.max_connections:
            if not self._idle:
                self.refused += 1
                return False
            transport, oldest = self._idle.popitem(last=False)
            del self._open[transport]
            self.evicted += 1
            oldest.close()
        assert connection.transport is not None
        self._open[connection.transport] = connection
        self._waiting(connection)
        return True

    def release(self, connection: _Connection, transport: asyncio.BaseTransport) -> None:
        connection.cancel_timer()
        self._open.pop(transport, None)
        self._idle.pop(transport, None)

    def _waiting(self, connection: _Connection) -> None:
        assert connection.transport is not None
        self._idle[connection.transport] = connection
        self._idle.move_to_end(connection.transport)
        connection.arm_timer(self.idle_timeout_s, self._timed_out)

    def _busy(self, connection: _Connection) -> None:
        connection.cancel_timer()
        if connection.transport is not None:
            self._idle.pop(connection.transport, None)

    def _timed_out(self, connection: _Connection) -> None:
        self.closed_idle += 1
        connection.close()


class _Connection(asyncio.Protocol):
    """Passes every event to aiohttp's protocol, telling the guard when the connection opens and closes."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self.transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if not self._guard.admit(self):
            self.transport = None
            _abort(transport)
            return
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        transport, self.transport = self.transport, None
        if transport is None:
            return  # refused: aiohttp never saw it
        self._guard.release(self, transport)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def arm_timer(self, delay_s: float, callback: Callable[[_Connection], Any]) -> None:
        self.cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(delay_s, callback, self)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        if self.transport is not None:
            _abort(self.transport)


def _abort(transport: asyncio.BaseTransport) -> None:
    """Close at once: nothing is owed to a connection closed here, and a graceful TLS close could wait on it."""
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    else:
        transport.close()
