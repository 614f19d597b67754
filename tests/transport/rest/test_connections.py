"""The REST listener's connection guard on a real core over loopback: the connection idle longest makes room,
a connection with a request in progress never does, and TLS handshakes that never come are bounded too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from elser_server.core.service import InferenceCore
from elser_server.transport.rest import RestTransport
from support import eventually_async, server_settings
from testpki import make_pki

WAIT_S = 30


async def wait_closed(reader: asyncio.StreamReader) -> None:
    """Returns once the server has closed the connection (reading whatever it sent first); fails after WAIT_S."""
    try:
        while await asyncio.wait_for(reader.read(65536), WAIT_S):
            pass
    except ConnectionError:
        pass


@pytest.fixture
async def guarded(core: InferenceCore, tmp_path: Path) -> AsyncIterator[tuple[RestTransport, int]]:
    settings = server_settings(data_dir=tmp_path, http_max_connections=2, http_idle_timeout_s=WAIT_S)
    transport = RestTransport(core, settings)
    port = await transport.start()
    yield transport, port
    await transport.stop()


async def test_a_new_connection_evicts_the_one_idle_longest(guarded: tuple[RestTransport, int]) -> None:
    transport, port = guarded
    first_reader, first = await asyncio.open_connection("127.0.0.1", port)
    second_reader, second = await asyncio.open_connection("127.0.0.1", port)
    await eventually_async(
        lambda: transport.connections.open_connections == 2, WAIT_S, "two connections open"
    )
    _, third = await asyncio.open_connection("127.0.0.1", port)
    await wait_closed(first_reader)  # the longest idle went
    assert transport.connections.evicted == 1
    third.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await eventually_async(
        lambda: transport.connections.open_connections == 2, WAIT_S, "the newcomer admitted"
    )
    assert not second_reader.at_eof()
    for writer in (first, second, third):
        writer.close()


async def test_a_connection_with_a_request_in_progress_is_never_evicted(
    guarded: tuple[RestTransport, int],
) -> None:
    transport, port = guarded
    # Two requests whose bodies are still arriving: both connections are busy.
    head = b"POST /_inference/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{"
    busy = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    for _, writer in busy:
        writer.write(head)
    await eventually_async(lambda: transport.connections.busy_connections == 2, WAIT_S, "both requests read")
    newcomer_reader, newcomer = await asyncio.open_connection("127.0.0.1", port)
    await wait_closed(newcomer_reader)  # refused: nobody was idle
    assert transport.connections.refused == 1 and transport.connections.evicted == 0
    for reader, writer in busy:
        writer.write(b'"input": "x"}' + b" " * 37)
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
        assert response.startswith(b"HTTP/1.1 404 ")  # x does not exist: the request was served whole
        writer.close()
    newcomer.close()


async def test_a_tls_handshake_that_never_comes_is_closed(core: InferenceCore, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    settings = server_settings(
        data_dir=tmp_path, http_idle_timeout_s=1, tls_cert_file=pki.server_cert, tls_key_file=pki.server_key
    )
    transport = RestTransport(core, settings)
    port = await transport.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)  # no ClientHello, ever
        await wait_closed(reader)
        writer.close()
    finally:
        await transport.stop()
