"""Malformed traffic against a real server process: ≥ 10,000 hand-built gRPC messages (elser.v1, health and
reflection) and ≥ 2,000 REST requests (seeded), hostile values included: time values past a Java long or a
double, non-ASCII digits, `filter_path` globs, NaN and infinities in task settings, inference ids of hundreds
of kilobytes. No request may end in INTERNAL/UNKNOWN or HTTP 500, the process must survive, and it must still
serve afterwards."""

from __future__ import annotations

import asyncio
import json
import random
import struct
from collections import Counter
from collections.abc import Callable
from urllib.parse import quote

import aiohttp
import grpc
import pytest
from elser_client import ElserClient
from serverprocess import ServerFactory
from yarl import URL

SEED = 20240608
GRPC_REQUESTS = 10_000
REST_REQUESTS = 2_000
CONCURRENCY = 32
ENDPOINT = "fz"
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE}

UNARY = (
    "/elser.v1.EndpointService/PutEndpoint",
    "/elser.v1.EndpointService/GetEndpoint",
    "/elser.v1.EndpointService/ListEndpoints",
    "/elser.v1.EndpointService/DeleteEndpoint",
    "/elser.v1.EndpointService/UpdateEndpoint",
    "/elser.v1.EndpointService/GetDeploymentStats",
    "/elser.v1.InferenceService/Infer",
)
SERVER_STREAMING = ("/elser.v1.EndpointService/WatchDeployment", "/elser.v1.InferenceService/InferChunked")
BIDI = "/elser.v1.InferenceService/InferStream"
# Not elser.v1 but served on the same port: malformed bytes are the caller's error there too.
OTHERS = (
    ("unary", "/grpc.health.v1.Health/Check"),
    ("stream", "/grpc.health.v1.Health/Watch"),
    ("bidi", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
)
IDS = (
    ENDPOINT,
    ENDPOINT,
    "missing",
    "",
    "_all",
    "*",
    "UPPER",
    "a" * 300,
    ".elser-2-elasticsearch",
    "b" * 300_000,
)


# --- protobuf wire encoding by hand (so anything can be sent: bad UTF-8, wrong wire types, bad enums) ---


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative numbers as protobuf sends them: ten bytes of two's complement
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def key(field: int, wire_type: int) -> bytes:
    return varint((field << 3) | wire_type)


def ld(field: int, payload: bytes) -> bytes:
    return key(field, 2) + varint(len(payload)) + payload


def vi(field: int, n: int) -> bytes:
    return key(field, 0) + varint(n)


class Fuzzer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def huge_int(self) -> int:
        return self.rng.choice([0, 1, -1, 7, 2**31 - 1, -(2**31), 2**32 - 1, 2**63 - 1, 2**64 - 1, -(2**63)])

    def text(self) -> bytes:
        r = self.rng
        kind = r.randrange(8)
        if kind == 0:
            return bytes(r.randrange(256) for _ in range(r.randrange(1, 40)))  # mostly invalid UTF-8
        if kind == 1:
            return r.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"a\x00b"])
        if kind == 2:
            return r.choice(IDS).encode()
        if kind == 3:
            return ("x " * r.randrange(1, 3000)).encode()
        if kind == 4:
            return "".join(chr(r.randrange(0x20, 0x2FFF)) for _ in range(r.randrange(1, 64))).encode(
                "utf-8", "surrogatepass"
            )
        if kind == 5 and r.random() < 0.02:
            return b"y" * ((1 << 20) + 10)  # over the per-input byte limit
        return r.choice([b"what is a dog", b"", b" ", b"\t\n", "ünïcødé 🐶".encode()])

    def random_fields(self, depth: int = 0) -> bytes:
        """Random fields with random numbers and wire types, including groups and nested junk."""
        r = self.rng
        out = bytearray()
        for _ in range(r.randrange(0, 6)):
            field = r.choice([1, 2, 3, 4, 5, 6, 7, 15, 16, 2047, 536870911])
            wire = r.choice([0, 1, 2, 2, 2, 3, 4, 5, 6, 7])
            if wire == 0:
                out += vi(field, self.huge_int() if r.random() < 0.5 else r.randrange(-5, 20))
            elif wire == 1:
                out += key(field, 1) + struct.pack("<d", r.choice([float("nan"), float("inf"), -1.0, 1e308]))
            elif wire == 2:
                inner = self.random_fields(depth + 1) if depth < 3 and r.random() < 0.4 else self.text()
                out += ld(field, inner)
            elif wire == 5:
                out += key(field, 5) + struct.pack(
                    "<f", r.choice([float("nan"), float("-inf"), -0.5, 3.4e38])
                )
            else:
                out += key(field, wire)  # groups are not proto3; 6 and 7 are not wire types at all
        return bytes(out)

    def options(self) -> bytes:
        r = self.rng
        return (
            vi(1, self.huge_int())
            + key(2, 5)
            + struct.pack("<f", r.choice([float("nan"), float("inf"), -1.0, 0.0, 1e-30]))
            + vi(3, r.randrange(0, 3))
            + vi(4, r.randrange(-3, 9))
        )

    def infer_like(self, id_field: int, task_field: int, input_field: int, options_field: int) -> bytes:
        r = self.rng
        out = ld(id_field, self.text()) + vi(task_field, r.randrange(-3, 10))
        for _ in range(r.randrange(0, 5)):
            out += ld(input_field, self.text())
        if r.random() < 0.7:
            out += ld(options_field, self.options())
        return out

    def struct(self, depth: int = 0) -> bytes:
        """A google.protobuf.Struct with hostile numbers (NaN, ±Infinity, huge) and nested values."""
        r = self.rng
        out = bytearray()
        for _ in range(r.randrange(0, 4)):
            kind = r.randrange(5)
            if kind == 0 or depth >= 3:
                number = r.choice([float("nan"), float("inf"), float("-inf"), 1e308, -0.0, 5.0])
                value = key(2, 1) + struct.pack("<d", number)  # Value.number_value
            elif kind == 1:
                value = ld(3, self.text())  # Value.string_value
            elif kind == 2:
                value = ld(5, self.struct(depth + 1))  # Value.struct_value
            elif kind == 3:
                value = ld(6, ld(1, key(2, 1) + struct.pack("<d", float("nan"))))  # ListValue [NaN]
            else:
                value = vi(4, 1)  # Value.bool_value
            out += ld(1, ld(1, self.text()) + ld(2, value))  # Struct.fields map entry
        return bytes(out)

    def chunking(self) -> bytes:
        r = self.rng
        out = (
            vi(1, r.randrange(-2, 9))
            + vi(2, self.huge_int())
            + vi(3, self.huge_int())
            + vi(4, r.randrange(-2, 5))
        )
        for _ in range(r.randrange(0, 3)):
            out += ld(5, self.text())
        return out + (ld(6, self.text()) if r.random() < 0.5 else b"")

    def message(self, method: str) -> bytes:
        r = self.rng
        if r.random() < 0.35:
            body = self.random_fields()
        elif method.endswith(("/Infer", "/InferChunked")):
            body = self.infer_like(1, 2, 3, 5)
            if method.endswith("InferChunked") and r.random() < 0.6:
                body += ld(4, self.chunking())
        elif method == BIDI:
            body = ld(1, self.text()) + self.infer_like(2, 3, 4, 5)
        elif method.endswith(("PutEndpoint", "UpdateEndpoint")):
            settings = vi(2, self.huge_int()) + vi(3, self.huge_int()) + ld(1, self.text())
            config = ld(1, self.text()) + vi(2, r.randrange(-2, 9)) + ld(3, settings) + ld(4, self.chunking())
            if r.random() < 0.5:
                config += ld(5, self.struct())  # task_settings
            body = ld(1, self.text()) + vi(2, r.randrange(-2, 9)) + ld(3, config)
        else:
            body = ld(1, self.text()) + vi(2, r.randrange(-3, 10)) + vi(3, r.randrange(0, 3))
        if body and r.random() < 0.2:
            body = body[: r.randrange(len(body))]  # truncated mid-field
        return body


async def grpc_fuzz(target: str, rng: random.Random) -> Counter[str]:
    fuzz = Fuzzer(rng)
    codes: Counter[str] = Counter()
    bad: list[str] = []
    ident: Callable[[bytes], bytes] = bytes
    with grpc.insecure_channel(target) as sync_channel:
        async with grpc.aio.insecure_channel(target) as channel:
            gate = asyncio.Semaphore(CONCURRENCY)

            def bidi(method: str, messages: list[bytes]) -> None:
                # The sync API: grpc.aio's client reports INTERNAL "Internal error from Core" instead of the
                # server's status when the server ends a stream the client is still writing (grpc/grpc#36066).
                for _ in sync_channel.stream_stream(method, ident, ident)(iter(messages), timeout=30):
                    pass

            async def one(i: int) -> None:
                kind, method = rng.choice(
                    (
                        *(("unary", m) for m in (*UNARY, *UNARY)),
                        *(("stream", m) for m in SERVER_STREAMING),
                        ("bidi", BIDI),
                        *OTHERS,
                    )
                )
                messages = [fuzz.message(method) for _ in range(rng.randrange(1, 4) if kind == "bidi" else 1)]
                async with gate:
                    try:
                        if kind == "unary":
                            await channel.unary_unary(method, ident, ident)(messages[0], timeout=30)
                        elif kind == "stream":
                            # A watch of a live deployment never ends by itself: read a little, then time out.
                            call = channel.unary_stream(method, ident, ident)(messages[0], timeout=2)
                            async for _ in call:
                                pass
                        else:
                            await asyncio.to_thread(bidi, method, messages)
                        codes["OK"] += 1
                    except (
                        grpc.RpcError
                    ) as error:  # grpc.aio's AioRpcError or the sync API's error: both Calls
                        code, details = error.code(), error.details()
                        codes[code.name] += 1
                        if code in FORBIDDEN and len(bad) < 5:
                            bad.append(f"{method} {messages!r:.300} → {code.name}: {details}")

            await asyncio.gather(*(one(i) for i in range(GRPC_REQUESTS)))
    assert not bad, "\n".join(bad)
    return codes


# --- REST -----------------------------------------------------------------------------------------------

HOSTILE_TIMES = (  # URL-encoded where it matters; short enough for a request line
    "1" + "0" * 400 + "s",
    "9223372036854775808nanos",
    "9223372036854775807d",
    "1e400s",
    "%C2%B2s",
    "%D9%A3m",
    "0x1p3s",
)
HOSTILE_FILTERS = ("**." + "*" * 30 + "Z", "*" * 500, ",".join(["**.*a*"] * 40), "-**.*,**")


def rest_request(rng: random.Random) -> tuple[str, str, bytes, dict[str, str]]:
    def segment() -> str:
        kind = rng.randrange(6)
        if kind == 0:
            return quote(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8))), safe="")
        if kind == 1:
            return rng.choice(["%", "%zz", "%FF%FE", "%00", "..", "."])
        if kind == 2:
            return rng.choice(["sparse_embedding", "text_embedding", "bogus", "_update", "_stream", "_all"])
        return rng.choice([ENDPOINT, "missing", "UPPER", "x" * 600])

    head = rng.choice(["_inference", "_inference", "_elser/chunked", "_elser/deployments", "", "_cat"])
    parts = [head, *(segment() for _ in range(rng.randrange(0, 4)))]
    if head == "_elser/deployments" and rng.random() < 0.5:
        parts.append("_stats")
    params = [
        (
            rng.choice(["timeout", "pretty", "filter_path", "error_trace", "dry_run", "force", "human", "x"]),
            rng.choice(
                [
                    "",
                    "true",
                    "maybe",
                    "-1s",
                    "99999999999999d",
                    "1.5",
                    "%FF",
                    "a,b,*.c",
                    "30s",
                    *HOSTILE_TIMES,
                    *HOSTILE_FILTERS,
                ]
            ),
        )
        for _ in range(rng.randrange(0, 3))
    ]
    query = "&".join(f"{k}={v}" for k, v in params)
    path = "/" + "/".join(p for p in parts if p) + (f"?{query}" if query else "")

    kind = rng.randrange(10)
    values: list[object] = [None, True, -1, 2**70, 1e308, "", "x", [], {}, ["a", None], {"a": 1}]
    if kind == 0:
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    elif kind == 1:
        body = rng.choice(
            [b"{", b'{"input":', b"[1,2", b'{"input": "\\ud800"}', b"\xef\xbb\xbf{}", b"nul\x00l"]
        )
    elif kind == 2:
        depth = rng.choice([10, 1000, 5000])
        body = b'{"input":' + b"[" * depth + b"]" * depth + b"}"
    elif kind == 3:
        body = json.dumps({"input": rng.choice(values), "task_settings": rng.choice(values)}).encode()
    elif kind == 4:
        body = json.dumps(
            {
                "service": rng.choice(["elser", "elasticsearch", 5, None, "openai"]),
                "service_settings": {
                    "num_allocations": rng.choice(values),
                    "num_threads": rng.choice([*values, 3, 64]),
                    "model_id": rng.choice([".elser_model_2", ".nope", 1]),
                    "adaptive_allocations": rng.choice(values),
                },
                "chunking_settings": {
                    "strategy": rng.choice(["word", "x", 1]),
                    "max_chunk_size": rng.choice(values),
                },
            }
        ).encode()
    elif kind == 5:
        body = b'{"input": ["' + b"w " * rng.randrange(1, 5000) + b'"], "input": 1e999999}'
    elif kind == 6:
        body = json.dumps({"input": ["what is a dog"]}).encode()
    elif kind == 7:
        hostile: dict[str, object] = {"input": "x"}
        hostile[rng.choice(["timeout", "top_n"])] = rng.choice(
            [*HOSTILE_TIMES, "1" + "0" * 5000 + "ms", "²s", "²", "٣", "1" + "0" * 5000, "NaN"]
        )
        body = json.dumps(hostile, ensure_ascii=False).encode()
    else:
        body = b""
    headers = {
        "Content-Type": rng.choice(
            [
                "application/json",
                "text/plain",
                "application/x-ndjson",
                "application/cbor",
                "application/vnd.elasticsearch+json; compatible-with=7",
                "garbage///",
            ]
        )
    }
    method = rng.choice(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"])
    return method, path, body, headers


async def rest_fuzz(base_url: str, rng: random.Random) -> Counter[int]:
    statuses: Counter[int] = Counter()
    bad: list[str] = []
    requests = [rest_request(rng) for _ in range(REST_REQUESTS)]
    gate = asyncio.Semaphore(16)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
            async with (
                gate,
                session.request(
                    method, URL(base_url + path, encoded=True), data=body, headers=headers
                ) as response,
            ):
                await response.read()
                statuses[response.status] += 1
                if response.status == 500 and len(bad) < 5:
                    bad.append(f"{method} {path} {body[:200]!r} → 500 {(await response.text())[:300]}")

        await asyncio.gather(*(one(*r) for r in requests))
    assert not bad, "\n".join(bad)
    return statuses


@pytest.mark.slow
async def test_malformed_grpc_and_rest_never_internal(start_server: ServerFactory) -> None:
    server = start_server(ELSER_MAX_REQUEST_BYTES=str(2 << 20), ELSER_MAX_INPUTS_PER_REQUEST="8")
    with ElserClient(server.target) as client:
        client.put_endpoint(ENDPOINT)
    rng = random.Random(SEED)

    codes = await grpc_fuzz(server.target, rng)
    assert sum(codes.values()) == GRPC_REQUESTS
    assert codes["INVALID_ARGUMENT"] > 0 and codes["OK"] > 0  # both the rejects and the deep paths ran
    statuses = await rest_fuzz(server.base_url, rng)
    assert sum(statuses.values()) == REST_REQUESTS

    print(f"gRPC codes: {dict(codes)}; REST statuses: {dict(statuses)}")
    assert server.alive()
    with ElserClient(server.target) as client:  # the fuzz may have deleted ENDPOINT: use a fresh one
        client.put_endpoint("after-fuzz")
        assert len(client.infer("after-fuzz", ["still serving"])) == 1
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.base_url}/_inference/sparse_embedding/after-fuzz", json={"input": "still serving"}
        ) as response,
    ):
        assert response.status == 200
