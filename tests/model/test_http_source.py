"""HttpSource against real loopback HTTP servers: transient failures (5xx, refused, reset, a body cut short of its
Content-Length, a stalled read) are retried with backoff for the whole transfer, resuming with Range or by
refetching; 404/403 fail at once naming the URL and status; the caller sees one contiguous stream, so progress
ends at the file size and the sha256 matches."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import itertools
import re
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elser_server.model.http_source import HttpSource
from elser_server.model.package import ModelFileNotFound, ModelPackage, PackageError
from elser_server.model.repository import install

DATA = bytes(range(256)) * 4096  # 1 MiB, so a cut lands mid-body and beyond the first read
NAME = "m.model.onnx"


class FlakyServer:
    """Serves `files` over loopback HTTP; `plan[name]` lists what the next GETs of `name` do, in order:
    "ok", an HTTP status ("503", "403", ...), "truncate" (full Content-Length, half the body, then close),
    "reset" (half the body, then a TCP reset), "stall" (half the body, then silence until the server is closed:
    only the reader's timeout ends it) or "truncate+change" (as truncate, then the file changes on the server).
    Honours `Range: bytes=N-` (and If-Range) when `ranges`."""

    def __init__(self, files: dict[str, bytes], *, ranges: bool = True) -> None:
        self.files = dict(files)
        self.ranges = ranges
        self.etag = '"v1"'
        self.plan: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str | None]] = []  # (name, Range header) per GET
        self.closing = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                steps = server.plan.get(name, [])
                action = steps.pop(0) if steps else "ok"
                if name not in server.files:
                    self.send_error(404)
                    return
                if action.isdigit():
                    self.send_error(int(action))
                    return
                data = server.files[name]
                start = 0
                wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if_range = self.headers.get("If-Range")
                if server.ranges and wanted and (if_range is None or if_range == server.etag):
                    start = int(wanted[1])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", server.etag)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up on it
                    self._send(action, name, body)
                self.close_connection = True

            def _send(self, action: str, name: str, body: bytes) -> None:
                if action == "ok":
                    self.wfile.write(body)
                    return
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                if action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                elif action == "stall":
                    server.closing.wait(60)
                elif action == "truncate+change":
                    server.etag = '"v2"'
                    server.files[name] = bytes(reversed(server.files[name]))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server() -> Iterator[FlakyServer]:
    s = FlakyServer({NAME: DATA})
    yield s
    s.close()


def source(url: str, **kwargs: Any) -> HttpSource:
    return HttpSource(url, **{"backoff_s": 0.01, "attempts": 4, "timeout_s": 5.0, **kwargs})


def download(src: HttpSource, name: str = NAME, chunk: int = 1 << 16) -> tuple[bytes, list[int]]:
    """The body as the installer reads it, with the progress it would report (bytes per read)."""
    progress: list[int] = []
    parts = []
    with src.open(name) as f:
        while part := f.read(chunk):
            parts.append(part)
            progress.append(len(part))
    return b"".join(parts), progress


def test_a_503_is_retried(server: FlakyServer) -> None:
    server.plan[NAME] = ["503"]
    body, progress = download(source(server.url))
    assert body == DATA
    assert sum(progress) == len(DATA)
    assert len(server.requests) == 2


@pytest.mark.parametrize("ranges", [True, False], ids=["range", "refetch"])
@pytest.mark.parametrize("failure", ["truncate", "reset", "stall"])
def test_a_transfer_broken_mid_body_resumes(failure: str, ranges: bool) -> None:
    server = FlakyServer({NAME: DATA}, ranges=ranges)
    server.plan[NAME] = [failure]
    try:
        body, progress = download(source(server.url, timeout_s=0.2))
    finally:
        server.close()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(DATA).hexdigest()
    assert sum(progress) == len(DATA)  # nothing counted twice after the restart
    assert len(server.requests) == 2
    (_, first), (_, second) = server.requests
    assert first is None
    if failure == "truncate":
        assert second == f"bytes={len(DATA) // 2}-"  # asked to resume where the reader was
    else:  # a reset or timeout can lose what the socket had buffered: resumes at or before the cut
        resumed = re.fullmatch(r"bytes=(\d+)-", second or "bytes=0-")
        assert resumed is not None and int(resumed[1]) <= len(DATA) // 2


def test_without_range_support_later_resumes_refetch_whole_files() -> None:
    server = FlakyServer({NAME: DATA}, ranges=False)
    server.plan[NAME] = [
        "truncate",
        "truncate",
        "ok",
    ]  # the refetch is cut too: what it skipped is not re-read
    try:
        body, progress = download(source(server.url))
    finally:
        server.close()
    assert body == DATA
    assert sum(progress) == len(DATA)
    assert [r for _, r in server.requests] == [None, f"bytes={len(DATA) // 2}-", None]


def test_read_without_size_and_large_reads_are_whole(server: FlakyServer) -> None:
    server.plan[NAME] = ["truncate"]
    with source(server.url).open(NAME) as f:
        assert f.read() == DATA
    server.plan[NAME] = ["reset"]
    with source(server.url).open(NAME) as f:
        assert f.read(len(DATA) - 1) == DATA[:-1]  # not a short read at the break
        assert f.read(10) == DATA[-1:]
        assert f.read(10) == b""


def test_404_fails_at_once_as_not_found(server: FlakyServer) -> None:
    with pytest.raises(ModelFileNotFound, match=rf"{re.escape(server.url)}nope\.json not found \(HTTP 404\)"):
        download(source(server.url, backoff_s=5.0), "nope.json")
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", ["403", "400", "416"])
def test_other_4xx_fail_at_once_naming_url_and_status(server: FlakyServer, status: str) -> None:
    server.plan[NAME] = [status]
    with pytest.raises(PackageError, match=rf"{re.escape(server.url + NAME)}: HTTP {status}\b") as exc:
        download(source(server.url, backoff_s=5.0))
    assert not isinstance(exc.value, ModelFileNotFound)
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", ["503", "429", "500"])
def test_persistent_5xx_gives_up_after_the_attempts(server: FlakyServer, status: str) -> None:
    server.plan[NAME] = [status] * 10
    with pytest.raises(
        PackageError, match=rf"{re.escape(server.url + NAME)}: HTTP {status}.*gave up after 3 attempts"
    ):
        download(source(server.url, attempts=3))
    assert len(server.requests) == 3


def test_a_body_always_cut_at_the_same_place_gives_up() -> None:
    server = FlakyServer({NAME: DATA}, ranges=False)
    server.plan[NAME] = ["truncate"] * 10
    try:
        with pytest.raises(PackageError, match=r"connection closed .*gave up after 3 attempts"):
            download(source(server.url, attempts=3))
    finally:
        server.close()
    assert len(server.requests) == 3


def test_unreachable_repository_gives_up_naming_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/"
    with pytest.raises(PackageError, match=rf"{re.escape(url + NAME)}: .*refused.*gave up after 2 attempts"):
        download(source(url, attempts=2))


def test_a_file_changed_mid_download_fails_clearly(server: FlakyServer) -> None:
    server.plan[NAME] = ["truncate+change"]
    with pytest.raises(PackageError, match="changed on the server"):
        download(source(server.url))


def test_install_over_a_flaky_repository(
    tiny_repository: Path, tiny_package: ModelPackage, tmp_path: Path
) -> None:
    files = {p.name: p.read_bytes() for p in tiny_repository.iterdir() if p.is_file()}
    biggest = max(
        (n for n in files if n.startswith("elser_model_2.") and "metadata" not in n),
        key=lambda n: len(files[n]),
    )
    server = FlakyServer(files)
    server.plan[biggest] = ["truncate", "503", "reset"]
    server.plan["elser_model_2.metadata.json"] = ["502"]
    progress: list[tuple[int, int]] = []
    try:
        target = install(source(server.url), ".elser_model_2", tmp_path, lambda d, t: progress.append((d, t)))
    finally:
        server.close()
    installed = ModelPackage.load(target)  # checksums verified
    assert installed.metadata["files"] == tiny_package.metadata["files"]
    total = sum(int(e["size"]) for e in installed.metadata["files"].values())
    assert progress[-1] == (total, total)
    assert all(a[0] <= b[0] <= total for a, b in itertools.pairwise(progress))
    assert sum(1 for name, _ in server.requests if name == biggest) == 4
