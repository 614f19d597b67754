"""`elser-server`: run the service. Every option is a flag and an ELSER_* environment variable."""

from __future__ import annotations

import asyncio
import logging

from pydantic_settings import CliApp

from elser_server.app import serve
from elser_server.settings import Settings


def main() -> None:
    settings = CliApp.run(Settings)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(settings))
