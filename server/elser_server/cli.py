"""`elser-server`: run the service. Every option is a flag and an ELSER_* environment variable."""

from __future__ import annotations

import asyncio
import sys

from pydantic import ValidationError
from pydantic_settings import CliApp

from elser_server.app import serve
from elser_server.core.errors import ElserError
from elser_server.observability.logs import configure_logging
from elser_server.settings import Settings
from elser_server.stores import StoreConfigError


def main() -> None:
    try:
        settings = CliApp.run(Settings)
    except ValidationError as exc:  # a bad ELSER_* value or flag: say which, without a traceback
        sys.exit(f"elser-server: invalid settings: {exc}")
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except (ElserError, StoreConfigError) as exc:  # start-up: an unreachable store, a newer schema, …
        sys.exit(f"elser-server: {exc}")
