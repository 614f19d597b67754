"""RestTransport: the shim's HTTP listener, run in the caller's event loop next to gRPC."""

from __future__ import annotations

import ssl
from collections.abc import Sequence

from aiohttp import web
from aiohttp.log import access_logger
from elser_server.core.service import InferenceCore
from elser_server.transport.rest.app import build_app
from elser_server.transport.rest.middlewares import Middleware

DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024  # ES's http.max_content_length default


class RestTransport:
    def __init__(
        self,
        core: InferenceCore,
        host: str = "0.0.0.0",
        port: int = 9200,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        node_name: str | None = None,
        cluster_name: str = "elser-inference",
        shutdown_timeout_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        outer_middlewares: Sequence[Middleware] = (),
        inner_middlewares: Sequence[Middleware] = (),
    ) -> None:
        self._app = build_app(
            core,
            max_body_bytes=max_body_bytes,
            node_name=node_name,
            cluster_name=cluster_name,
            outer_middlewares=outer_middlewares,
            inner_middlewares=inner_middlewares,
        )
        self._ssl_context = ssl_context
        # The telemetry middleware writes the access log (with the request id) when installed.
        self._access_log = not outer_middlewares
        self._host = host
        self._port = port
        self._shutdown_timeout_s = shutdown_timeout_s
        self._runner: web.AppRunner | None = None

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
        site = web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl_context)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        return int(address[1])

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to the shutdown timeout), close connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
