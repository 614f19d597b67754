"""RestTransport: the shim's HTTP listener, run in the caller's event loop next to gRPC."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiohttp import web
from aiohttp.log import access_logger
from elser_server.core.service import InferenceCore
from elser_server.security import server_ssl_context
from elser_server.settings import Settings
from elser_server.transport.rest.app import build_app
from elser_server.transport.rest.connections import ConnectionGuard
from elser_server.transport.rest.junklog import AIOHTTP_SERVER_LOGGER, MalformedRequestLog
from elser_server.transport.rest.middlewares import Middleware


class RestTransport:
    def __init__(
        self,
        core: InferenceCore,
        settings: Settings,
        *,
        node_name: str | None = None,
        outer_middlewares: Sequence[Middleware] = (),
        inner_middlewares: Sequence[Middleware] = (),
    ) -> None:
        """`outer_middlewares` see the final response (errors already mapped); what `inner_middlewares` raise is
        mapped to ES errors like a handler's failure."""
        self.connections = ConnectionGuard(
            settings.effective_http_max_connections, settings.http_idle_timeout_s
        )
        self._app = build_app(
            core,
            max_body_bytes=settings.max_request_bytes,
            body_timeout_s=settings.http_body_timeout_s,
            node_name=node_name,
            # The guard is outermost: a connection is busy for the whole of a request, the response's write too.
            outer_middlewares=[self.connections.middleware, *outer_middlewares],
            inner_middlewares=inner_middlewares,
        )
        self._ssl_context = None
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            # The gRPC listener's certificate, key and client CA.
            self._ssl_context = server_ssl_context(
                settings.tls_cert_file,
                settings.tls_key_file,
                settings.tls_client_ca_file,
                settings.tls_require_client_cert,
            )
        # The telemetry middleware writes the access log (with the request id) when installed.
        self._access_log = not outer_middlewares
        self._host = settings.host
        self._port = settings.http_port
        self._shutdown_timeout_s = settings.shutdown_grace_s
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._junk_log = MalformedRequestLog()

    async def start(self) -> int:
        """Bind and serve; returns the bound port (an ephemeral one when port is 0)."""
        # The app owns SIGTERM/SIGINT (it drains gRPC and HTTP together), so aiohttp must not install handlers.
        runner = web.AppRunner(
            self._app,
            handle_signals=False,
            shutdown_timeout=self._shutdown_timeout_s,
            access_log=access_logger if self._access_log else None,
        )
        await runner.setup()
        assert runner.server is not None
        # Our own listener instead of a TCPSite: every connection passes through the guard.
        self._listener = await asyncio.get_running_loop().create_server(
            self.connections.wrap(runner.server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            # A TLS handshake comes before the guard sees the connection: it gets the idle timeout too.
            ssl_handshake_timeout=self.connections.idle_timeout_s if self._ssl_context is not None else None,
            backlog=128,
            reuse_address=True,
        )
        self._runner = runner
        logging.getLogger(AIOHTTP_SERVER_LOGGER).addFilter(self._junk_log)
        return int(self._listener.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to the shutdown timeout), close connections."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        logging.getLogger(AIOHTTP_SERVER_LOGGER).removeFilter(self._junk_log)
