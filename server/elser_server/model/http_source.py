"""Model repository files over HTTP(S), as Elasticsearch's `xpack.ml.model_repository` serves them.

Streams the body (the caller hashes as it copies), retries transient failures (connection errors, 5xx, 429)
with exponential backoff before the first byte, never follows a redirect (as ES) and maps 404 to a
not-found error the deployment reports plainly.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO, cast

from elser_server.model.package import ModelFileNotFound, PackageError

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # ES refuses redirects from a model repository; so do we


class HttpSource:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        attempts: int = 4,
        backoff_s: float = 0.5,
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {base_url}")
        if parsed.username or parsed.password:
            raise ValueError("credentials in the model repository URL are not allowed")
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._opener = urllib.request.build_opener(_NoRedirect())

    def describe(self) -> str:
        return self.base_url

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        url = urllib.parse.urljoin(self.base_url, urllib.parse.quote(name))
        response = self._connect(url)
        try:
            yield cast(BinaryIO, response)
        finally:
            response.close()

    def _connect(self, url: str) -> http.client.HTTPResponse:
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._opener.open(url, timeout=self.timeout_s)
                return cast(http.client.HTTPResponse, response)
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code == 404:
                    raise ModelFileNotFound(f"{url} not found") from None
                if exc.code not in RETRYABLE_STATUS or attempt == self.attempts:
                    raise PackageError(f"error during downloading {url}: HTTP {exc.code}") from None
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                if attempt == self.attempts:
                    raise PackageError(f"error during downloading {url}: {exc}") from None
                reason = str(exc)
            log.warning("download of %s failed (%s), retrying in %.1fs", url, reason, delay)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")
