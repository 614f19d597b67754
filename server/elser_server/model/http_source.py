"""Model repository files over HTTP(S), as Elasticsearch's `xpack.ml.model_repository` serves them.

Streams the body (the caller hashes as it copies) and retries transient failures (connection refused or reset,
timeouts, HTTP 5xx/429, a body cut short of its Content-Length) with exponential backoff for the whole transfer,
not only while connecting. A transfer broken mid-body resumes where the reader is: with a `Range` request when the
server honours it, otherwise by fetching the file again and skipping what was already read, so the caller sees one
contiguous stream (its running sha256 and progress count every byte once). Other 4xx fail at once naming the URL
and status; 404 is a not-found error the deployment reports plainly. Never follows a redirect (as ES).
"""

from __future__ import annotations

import http.client
import io
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, BinaryIO, cast

from elser_server.model.package import ModelFileNotFound, PackageError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_SKIP_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # ES refuses redirects from a model repository; so do we


class _Transient(Exception):
    """A failure worth retrying; `reason` says what happened."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason) or type(exc.reason).__name__
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed after {len(exc.partial)} bytes of a chunk"
    return str(exc) or type(exc).__name__


def _http_status(exc: urllib.error.HTTPError) -> str:
    return f"HTTP {exc.code} {exc.reason}".rstrip() if exc.reason else f"HTTP {exc.code}"


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
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._opener = urllib.request.build_opener(_NoRedirect())

    def describe(self) -> str:
        return self.base_url

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        """The file's body as a stream. Connecting happens here (a missing file raises `ModelFileNotFound` before
        anything is yielded); transient failures while reading are retried inside `read`, and a failure that is
        not retried or outlasts the attempts raises `PackageError` naming the URL."""
        url = urllib.parse.urljoin(self.base_url, urllib.parse.quote(name))
        body = _Body(self, url)
        try:
            yield cast(BinaryIO, body)
        finally:
            body.close()


class _Body(io.RawIOBase):
    """One file's body, reconnecting (and resuming at the reader's offset) after transient failures.

    The attempt budget is per file and starts again once bytes have been delivered since the last failure, so a
    long download over a flaky link is not failed by resets far apart, while a server that keeps failing at the
    same point gives up after `attempts` tries."""

    def __init__(self, source: HttpSource, url: str) -> None:
        super().__init__()
        self._source = source
        self._url = url
        self._offset = 0  # bytes delivered to the reader
        self._length: int | None = None  # the whole file's size, when the server said
        # the first response's strong ETag or else its Last-Modified, sent as If-Range on a resume
        self._validator: str | None = None
        self._etag: str | None = None
        self._last_modified: str | None = None
        self._ranges = True  # ask for Range on a resume until the server proves it can't
        self._opened = False  # whether a response was ever positioned (the first one sets the above)
        self._response: http.client.HTTPResponse | None = None
        self._attempt = 1
        self._delay = source.backoff_s
        self._mark = 0  # offset at the last failure: progress past it refreshes the attempt budget
        self._connect()

    # io.RawIOBase -------------------------------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        while True:
            if self._response is None:
                self._connect()
            response = cast(http.client.HTTPResponse, self._response)
            try:
                n = response.readinto(view)
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                self._failed(_describe(exc))
                continue
            if not n and self._length is not None and self._offset < self._length:
                # http.client returns b"" (no IncompleteRead) when the peer closes before Content-Length
                self._drop()
                self._failed(f"connection closed after {self._offset} of {self._length} bytes")
                continue
            self._offset += n
            return n

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes, fewer only at the end of the file (as a buffered file reads); all when negative."""
        if size is None or size < 0:
            parts = []
            while part := self.read(_SKIP_CHUNK):
                parts.append(part)
            return b"".join(parts)
        buf = bytearray(size)
        got = 0
        with memoryview(buf) as view:
            while got < size:
                n = self.readinto(view[got:])
                if not n:
                    break
                got += n
        del buf[got:]
        return bytes(buf)

    def close(self) -> None:
        self._drop()
        super().close()

    # connecting ---------------------------------------------------------------------------------------------------

    def _drop(self) -> None:
        if self._response is not None:
            response, self._response = self._response, None
            with suppress(OSError):
                response.close()

    def _failed(self, reason: str) -> None:
        """Count a transient failure: back off, or raise `PackageError` once the attempts are spent."""
        if self._offset > self._mark:  # got somewhere since the last failure: a fresh budget
            self._mark = self._offset
            self._attempt = 1
            self._delay = self._source.backoff_s
        attempts = self._source.attempts
        if self._attempt >= attempts:
            at = f" at byte {self._offset}" if self._offset else ""
            raise PackageError(
                f"error during downloading {self._url}{at}: {reason} "
                f"(gave up after {attempts} attempt{'s' if attempts != 1 else ''})"
            )
        log.warning(
            "download of %s failed%s (%s), retrying in %.1fs (attempt %d of %d)",
            self._url,
            f" at byte {self._offset}" if self._offset else "",
            reason,
            self._delay,
            self._attempt + 1,
            attempts,
        )
        time.sleep(self._delay)
        self._delay *= 2
        self._attempt += 1

    def _connect(self) -> None:
        while True:
            try:
                self._response = self._open_at_offset()
                return
            except _Transient as exc:
                self._failed(exc.reason)

    def _open_at_offset(self) -> http.client.HTTPResponse:
        """A response positioned at `self._offset`; raises `_Transient` for what is worth another try."""
        request = urllib.request.Request(self._url)
        ranged = self._offset > 0 and self._ranges
        if ranged:
            request.add_header("Range", f"bytes={self._offset}-")
            if self._validator is not None:
                request.add_header("If-Range", self._validator)
        try:
            response = cast(
                http.client.HTTPResponse, self._source._opener.open(request, timeout=self._source.timeout_s)
            )
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                raise ModelFileNotFound(f"{self._url} not found (HTTP 404)") from None
            if exc.code in RETRYABLE_STATUS:
                raise _Transient(_http_status(exc)) from None
            raise PackageError(f"error during downloading {self._url}: {_http_status(exc)}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _Transient(_describe(exc)) from None
        try:
            self._position(response, ranged)
        except BaseException:
            response.close()
            raise
        return response

    def _position(self, response: http.client.HTTPResponse, ranged: bool) -> None:
        etag = response.headers.get("ETag")
        last_modified = response.headers.get("Last-Modified")
        if response.status == 206 and ranged:
            match = _CONTENT_RANGE.fullmatch((response.headers.get("Content-Range") or "").strip())
            if match is None or int(match[1]) != self._offset:
                self._ranges = False  # a range we did not ask for: fetch whole files from now on
                raise _Transient(f"unusable Content-Range {response.headers.get('Content-Range')!r}")
            total = None if match[3] == "*" else int(match[3])
            self._check_unchanged(etag, last_modified, total)
            if self._length is None:
                self._length = total
            return
        if response.status != 200:
            raise PackageError(f"error during downloading {self._url}: unexpected HTTP {response.status}")
        length = response.length  # Content-Length, None when chunked
        if not self._opened:
            self._opened = True
            self._length = length
            self._etag = etag
            self._last_modified = last_modified
            if etag and not etag.startswith("W/"):
                self._validator = etag
            elif last_modified:
                self._validator = last_modified
            return
        self._check_unchanged(etag, last_modified, length)
        if ranged:
            self._ranges = False  # the whole file came back: the server ignores Range
        skip = self._offset
        while skip:  # the whole file again: skip what the reader already has
            try:
                n = len(response.read(min(skip, _SKIP_CHUNK)))
            except (OSError, http.client.HTTPException) as exc:
                raise _Transient(_describe(exc)) from None
            if not n:
                raise _Transient(f"connection closed after {self._offset - skip} bytes while resuming")
            skip -= n

    def _check_unchanged(self, etag: str | None, last_modified: str | None, length: int | None) -> None:
        changed = (
            (self._etag is not None and etag is not None and etag != self._etag)
            or (
                self._last_modified is not None
                and last_modified is not None
                and last_modified != self._last_modified
            )
            or (self._length is not None and length is not None and length != self._length)
        )
        if changed:
            raise PackageError(
                f"error during downloading {self._url}: the file changed on the server mid-download"
            )
