"""RestTransport: the shim's HTTP listener, run in the caller's event loop next to gRPC."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from aiohttp.log import access_logger
from elser_server.core.service import InferenceCore
from elser_server.security import server_ssl_context
from elser_server.settings import Settings
from elser_server.transport.rest.app import build_app
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
        self._app = build_app(
            core,
            max_body_bytes=settings.max_request_bytes,
            node_name=node_name,
            outer_middlewares=outer_middlewares,
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
