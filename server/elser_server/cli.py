"""`elser-server`: run the service. Every option is a flag and an ELSER_* environment variable."""

from __future__ import annotations

import asyncio

from pydantic_settings import CliApp

from elser_server.app import serve
from elser_server.observability.logs import configure_logging
from elser_server.settings import Settings


def main() -> None:
    settings = CliApp.run(Settings)
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))
