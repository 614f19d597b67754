"""Slow, idle and junk clients against a real server process, on loopback: incomplete requests and handshakes
are closed, a few hundred of them cannot lock REST or health checks out even with a small open-file limit,
a client leaving mid-upload is a client cancel, and junk is logged as one WARNING now and then."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from elser_client import ElserClient
from serverprocess import ServerFactory, ServerProcess
from support import PUT_BODY, eventually

WAIT_S = 30  # bound on every wait below (the timeouts under test are 1 s)
FAST = {
    "ELSER_HTTP_IDLE_TIMEOUT_S": "1",
    "ELSER_HTTP_BODY_TIMEOUT_S": "1",
    "ELSER_GRPC_HANDSHAKE_TIMEOUT_S": "1",
}


def connect(port: int, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    if data:
        sock.sendall(data)
    return sock


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server has closed `sock` (read to the end, without waiting)."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def http_response(sock: socket.socket) -> bytes:
    sock.settimeout(WAIT_S)
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


@contextlib.contextmanager
def sockets(count: int, port: int, data: bytes) -> Iterator[list[socket.socket]]:
    opened = [connect(port, data) for _ in range(count)]
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def rest_get(server: ServerProcess, path: str = "/", headers: str = "") -> bytes:
    with connect(
        server.http_port, f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode()
    ) as sock:
        return http_response(sock)


@pytest.mark.slow
def test_incomplete_requests_and_handshakes_are_closed(start_server: ServerFactory) -> None:
    """Before: 0 of 900 incomplete REST requests and gRPC handshakes were closed in 60 s."""
    server = start_server(**FAST)
    head = b"GET / HTTP/1.1\r\nHost: x\r\n"  # the blank line that ends the head never comes
    body = b"POST /_inference/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    with (
        sockets(20, server.http_port, b"") as silent,
        sockets(20, server.http_port, head) as slow_heads,
        sockets(20, server.http_port, body) as stalled_bodies,
        sockets(20, server.grpc_port, b"") as no_preface,
        sockets(20, server.grpc_port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") as no_settings,
    ):
        for group in (silent, slow_heads, stalled_bodies, no_preface, no_settings):
            for sock in group:
                eventually(lambda sock=sock: closed_by_peer(sock), WAIT_S, "the server closes the connection")
    # A stalled body is answered before the connection goes: 408 in ES's envelope.
    with connect(server.http_port, body) as sock:
        response = http_response(sock)
    assert response.startswith(b"HTTP/1.1 408 ")
    assert b'"reason":"Timed out reading the request body: nothing arrived for [1s]"' in response
    assert b"Connection: close" in response
    # Keep-alive connections between requests are idle too.
    with connect(server.http_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") as sock:
        eventually(lambda: closed_by_peer(sock), WAIT_S, "an idle keep-alive connection is closed")
    assert rest_get(server).startswith(b"HTTP/1.1 200 ")


@pytest.mark.slow
@pytest.mark.parametrize("api_keys", [False, True])
def test_hundreds_of_slow_clients_cannot_lock_out_rest_or_health(
    start_server: ServerFactory, api_keys: bool
) -> None:
    """Before: with a 256-file limit, 300 incomplete connections locked REST and health checks out (keys on
    or off). Now REST evicts the connection idle longest, gRPC refuses connections past its bound and closes
    unfinished handshakes, so both answer within the handshake timeout."""
    keys = {"ELSER_API_KEYS": "secret-key"} if api_keys else {}
    server = start_server(open_files_limit=256, **FAST, **keys)
    auth = "Authorization: ApiKey secret-key\r\n" if api_keys else ""
    with (
        sockets(300, server.http_port, b"GET / HTTP/1.1\r\nHost: x\r\n"),
        sockets(300, server.grpc_port, b""),
    ):
        assert rest_get(server, headers=auth).startswith(b"HTTP/1.1 200 ")
        server.wait_health("", timeout_s=WAIT_S)
        headers = {"Authorization": "ApiKey secret-key"} if api_keys else {}
        rest(server, "PUT", "/_inference/sparse_embedding/still-serving", PUT_BODY, headers)
        embedded = rest(server, "POST", "/_inference/still-serving", {"input": "slow clients"}, headers)
        assert len(embedded["sparse_embedding"]) == 1
    assert server.alive()


def test_unauthenticated_requests_close_their_connection(start_server: ServerFactory) -> None:
    server = start_server(ELSER_API_KEYS="secret-key")
    with connect(server.http_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") as sock:
        response = http_response(sock)  # read to the end: the server closes the connection
    assert response.startswith(b"HTTP/1.1 401 ") and b"Connection: close" in response


def rest(server: ServerProcess, method: str, path: str, body: object, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(
        server.base_url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=WAIT_S) as response:
        return json.loads(response.read())


def metric(server: ServerProcess, pattern: str) -> float:
    found = re.findall(pattern, server.metrics())
    return sum(float(value) for value in found)


def test_a_client_leaving_mid_upload_is_a_client_cancel(start_server: ServerFactory) -> None:
    """Before: logged with a traceback and counted as a 500."""
    server = start_server()
    with ElserClient(server.target) as client:
        client.put_endpoint("upload")
    reading = r'elser_http_requests_in_progress\{method="POST",route="/_inference/\{inference_id\}"\} (\S+)'
    for _ in range(5):
        with connect(
            server.http_port,
            b"POST /_inference/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100000\r\n\r\n{"input": "',
        ):
            eventually(lambda: metric(server, reading) == 1, WAIT_S, "the server reading the body")
    cancelled = (
        r'elser_http_requests_total\{method="POST",route="/_inference/\{inference_id\}",status="499"\} (\S+)'
    )
    eventually(lambda: metric(server, cancelled) == 5, WAIT_S, "five client cancels counted")
    assert 'status="500"' not in server.metrics()
    output = server.output()
    assert "ERROR" not in output and "Traceback" not in output, output[-3000:]


def test_junk_requests_are_one_warning_now_and_then(start_server: ServerFactory) -> None:
    """Before: every malformed request was an ERROR with an aiohttp traceback (752 for 12 k junk requests)."""
    server = start_server()
    junk = [
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ]
    for i in range(200):
        with connect(server.http_port, junk[i % len(junk)]) as sock:
            sock.settimeout(WAIT_S)
            with contextlib.suppress(ConnectionError):
                answer = sock.recv(65536)
                assert re.match(rb"HTTP/1\.[01] 4\d\d ", answer), answer
    assert rest_get(server).startswith(b"HTTP/1.1 200 ")
    output = server.output()
    assert "Traceback" not in output and " ERROR " not in output, output[-3000:]
    warnings = [line for line in output.splitlines() if "WARNING aiohttp.server" in line]
    assert len(warnings) == 1, warnings
    assert "malformed HTTP request from 127.0.0.1: 400" in warnings[0]
