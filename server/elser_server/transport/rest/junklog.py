"""aiohttp logs every request it cannot parse (bad framing, oversized lines, binary junk) at ERROR with a
traceback: a scanner's few thousand requests would bury real errors. This filter turns them into one WARNING
line per interval that counts the rest; nothing else aiohttp logs is touched."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError

AIOHTTP_SERVER_LOGGER = "aiohttp.server"
_DETAIL_CHARS = 200


class MalformedRequestLog(logging.Filter):
    def __init__(self, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._clock = clock
        self._next_report = float("-inf")
        self.suppressed = 0  # malformed requests not reported since the last line

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        now = self._clock()
        if now < self._next_report:
            self.suppressed += 1
            return False
        self._next_report = now + self._interval_s
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "an unknown peer"
        detail = " ".join(str(error).split())[:_DETAIL_CHARS]
        more = f" ({self.suppressed} more since the last report)" if self.suppressed else ""
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.msg, record.args = "malformed HTTP request from %s: %s%s", (peer, detail, more)
        record.exc_info, record.exc_text = None, None
        self.suppressed = 0
        return True
