"""HTTP-level behaviour of the shim: headers, media types, body handling, ES error shapes for framing
problems, output formatting (pretty, filter_path, float32 weights), streaming and extension routes."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import numpy as np
import pytest
from elser_server.core import chunking
from elser_server.core.errors import queue_full
from elser_server.core.service import InferenceCore
from elser_server.runtime.backends import openvino_installed
from support import ELSER_PUT_BODY, PUT_BODY

VND9 = "application/vnd.elasticsearch+json; compatible-with=9"


def envelope(
    es_type: str, reason: str, status: int, caused_by: dict[str, str] | None = None
) -> dict[str, Any]:
    cause = {"type": es_type, "reason": reason}
    error: dict[str, Any] = {"root_cause": [cause], **cause}
    if caused_by is not None:
        error["caused_by"] = caused_by
    return {"error": error, "status": status}


async def call(
    http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
) -> tuple[int, aiohttp.typedefs.LooseHeaders, Any]:
    async with http.request(method, path, **kwargs) as response:
        text = await response.text()
        assert response.headers["X-Elastic-Product"] == "Elasticsearch"
        return response.status, response.headers, json.loads(text) if text else None


async def test_deprecation_warnings_become_warning_headers(http: aiohttp.ClientSession) -> None:
    async with http.put("/_inference/sparse_embedding/e", json=ELSER_PUT_BODY) as response:
        warnings = response.headers.getall("Warning")
    assert len(warnings) == 2
    assert all(w.startswith('299 Elasticsearch-9.1.0 "') and w.endswith('"') for w in warnings)
    assert any("The [elser] service is deprecated" in w for w in warnings)


async def test_root_head_and_options(http: aiohttp.ClientSession) -> None:
    status, _, info = await call(http, "GET", "/")
    assert status == 200 and info["tagline"] == "You Know, for Search" and info["name"] == "test-node"
    async with http.head("/") as head:
        assert head.status == 200 and head.headers["X-Elastic-Product"] == "Elasticsearch"
        assert await head.read() == b""
    async with http.options("/_inference/e") as options:
        assert options.status == 200 and options.headers["Allow"] == "GET,POST,PUT,DELETE"


async def test_unknown_routes_and_methods(http: aiohttp.ClientSession) -> None:
    status, headers, body = await call(http, "PATCH", "/_inference/e")
    assert status == 405 and headers["Allow"] == "GET,POST,PUT,DELETE"
    assert body == envelope(
        "status_exception",
        "Incorrect HTTP method for uri [/_inference/e] and method [PATCH], allowed: [GET, POST, PUT, DELETE]",
        405,
    )
    status, _, body = await call(http, "GET", "/nowhere?x=1")
    assert body == envelope(
        "status_exception", "no handler found for uri [/nowhere?x=1] and method [GET]", 400
    )


async def test_compatible_media_types(http: aiohttp.ClientSession) -> None:
    headers = {"Accept": VND9, "Content-Type": VND9}
    async with http.put(
        "/_inference/sparse_embedding/e", data=json.dumps(PUT_BODY), headers=headers
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/vnd.elasticsearch+json;compatible-with=9"
    mismatch = {"Accept": VND9, "Content-Type": VND9.replace("9", "8")}
    status, _, body = await call(http, "POST", "/_inference/e", data=b'{"input":"x"}', headers=mismatch)
    assert status == 400
    assert body["error"]["type"] == "media_type_header_exception"
    assert body["error"]["reason"] == "Invalid media-type value on headers [Content-Type, Accept]"
    assert body["error"]["caused_by"]["reason"].startswith("A compatible version is required on both")


async def test_content_type_is_required_for_bodies(http: aiohttp.ClientSession) -> None:
    async with http.post(
        "/_inference/e", data=b'{"input":"x"}', skip_auto_headers=["Content-Type"]
    ) as response:
        assert response.status == 406
        assert await response.json() == envelope("status_exception", "Content-Type header is missing", 406)
    form = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends without -H
    _, _, body = await call(http, "POST", "/_inference/e", data=b"input=x", headers=form)
    assert body == envelope(
        "status_exception", "Content-Type header [application/x-www-form-urlencoded] is not supported", 406
    )


async def test_body_limits_and_syntax(http: aiohttp.ClientSession, max_body_bytes: int) -> None:
    big = json.dumps({"input": "x" * max_body_bytes})
    status, _, body = await call(
        http, "POST", "/_inference/e", data=big, headers={"Content-Type": "application/json"}
    )
    assert body == envelope(
        "status_exception", f"Request body is too large: the limit is [{max_body_bytes}] bytes", 413
    )
    json_headers = {"Content-Type": "application/json"}
    status, _, body = await call(http, "PUT", "/_inference/e", data=b'{"service": ', headers=json_headers)
    assert status == 400 and body["error"]["type"] == "parse_exception"
    assert body["error"]["reason"] == "Failed to parse content to map"
    assert body["error"]["caused_by"]["type"] == "json_parse_exception"
    status, _, body = await call(http, "POST", "/_inference/e", data=b'{"input": [}', headers=json_headers)
    assert status == 400 and body["error"]["type"] == "x_content_parse_exception"
    status, _, body = await call(http, "PUT", "/_inference/e")
    assert body == envelope("parse_exception", "request body is required", 400)
    status, _, body = await call(http, "POST", "/_inference/e")
    assert body == envelope("parse_exception", "request body or source parameter is required", 400)
    status, _, body = await call(http, "GET", "/_inference", json={"a": 1})
    assert body == envelope(
        "illegal_argument_exception", "request [GET /_inference] does not support having a body", 400
    )


async def test_query_parameters(http: aiohttp.ClientSession) -> None:
    await call(http, "PUT", "/_inference/sparse_embedding/e", json=PUT_BODY)
    status, _, body = await call(http, "POST", "/_inference/e?tmeout=1s", json={"input": "x"})
    assert body == envelope(
        "illegal_argument_exception",
        "request [/_inference/e] contains unrecognized parameter: [tmeout] -> did you mean [timeout]?",
        400,
    )
    status, _, body = await call(http, "DELETE", "/_inference/e?dry_run=yes")
    assert body == envelope(
        "illegal_argument_exception",
        "Failed to parse value [yes] as only [true] or [false] are allowed.",
        400,
    )
    status, _, body = await call(http, "POST", "/_inference/e?timeout=1.5s", json={"input": "x"})
    assert body["error"]["reason"] == "failed to parse [1.5s], fractional time values are not supported"
    status, _, body = await call(http, "POST", "/_inference/e", json={"input": "x", "timeout": "10"})
    assert body["error"]["reason"].endswith("as a time value: unit is missing or unrecognized")
    for query in ("timeout=30s", "timeout=1m&human&error_trace=false", "pretty=false"):
        status, _, _ = await call(http, "POST", f"/_inference/e?{query}", json={"input": "x"})
        assert status == 200, query


async def test_expired_timeout_is_408(http: aiohttp.ClientSession) -> None:
    await call(http, "PUT", "/_inference/sparse_embedding/e", json=PUT_BODY)
    status, _, body = await call(http, "POST", "/_inference/e?timeout=0s", json={"input": "x"})
    assert (status, body["status"], body["error"]["type"]) == (408, 408, "status_exception")
    assert body["error"]["reason"].startswith("Timed out")


async def test_pretty_and_filter_path(http: aiohttp.ClientSession) -> None:
    await call(http, "PUT", "/_inference/sparse_embedding/e", json=PUT_BODY)
    async with http.delete("/_inference/e?dry_run&pretty") as response:
        assert await response.text() == (
            '{\n  "acknowledged" : false,\n  "pipelines" : [ ],\n  "indexes" : [ ],\n  "error_message" : ""\n}\n'
        )
    _, _, body = await call(http, "GET", "/_inference?filter_path=endpoints.inference_id")
    assert body == {"endpoints": [{"inference_id": ".elser-2-elasticsearch"}, {"inference_id": "e"}]}
    _, _, body = await call(http, "GET", "/_inference/e?filter_path=**.model_id,-endpoints.inference_id")
    assert body == {"endpoints": [{"service_settings": {"model_id": ".elser_model_2"}}]}
    _, _, body = await call(
        http, "POST", "/_inference/e?filter_path=*.is_truncated", json={"input": ["a", "b"]}
    )
    assert body == {"sparse_embedding": [{"is_truncated": False}, {"is_truncated": False}]}
    _, _, body = await call(http, "GET", "/_inference/nope?filter_path=x")  # errors are never filtered
    assert body["error"]["type"] == "resource_not_found_exception"


async def test_inference_output_is_the_cores_float32_rows(
    http: aiohttp.ClientSession, core: InferenceCore
) -> None:
    await call(http, "PUT", "/_inference/sparse_embedding/e", json=PUT_BODY)
    texts = ["U.S. e.g. a.b.c, dotted tokens", "short", "word " * 600]
    expected = await core.infer("e", None, texts)
    for query in ("", "?pretty"):
        async with http.post(f"/_inference/e{query}", json={"input": texts}) as response:
            raw = await response.text()
        rows = json.loads(raw)["sparse_embedding"]
        assert [r["is_truncated"] for r in rows] == [False, False, True]
        for row, want in zip(rows, expected, strict=True):
            assert want.tokens is not None
            assert list(row["embedding"]) == [t.replace(".", "__") for t in want.tokens]
            got = np.array(list(row["embedding"].values()), dtype=np.float32)
            assert np.array_equal(got, want.weights)  # float32 digits round-trip exactly


async def test_stream_routes_answer_an_sse_error(http: aiohttp.ClientSession) -> None:
    await call(http, "PUT", "/_inference/sparse_embedding/e", json=PUT_BODY)
    for path, status, reason in [
        ("/_inference/e/_stream", 405, "Streaming is not allowed for service [elasticsearch]."),
        (
            "/_inference/sparse_embedding/e/_stream",
            405,
            "Streaming is not allowed for service [elasticsearch].",
        ),
        ("/_inference/nope/_stream", 404, "Inference endpoint not found [nope]"),
    ]:
        async with http.post(path, json={"input": "x"}) as response:
            assert response.status == status
            assert response.headers["Content-Type"] == "text/event-stream"
            event, data, *_ = (await response.text()).split("\n")
        assert event == "\ufeffevent: error"  # ES starts every server-sent event with a byte order mark
        assert json.loads(data.removeprefix("data: "))["error"]["reason"] == reason


async def test_unexpected_errors_do_not_leak(
    http: aiohttp.ClientSession, core: InferenceCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(core, "get_endpoints", broken)
    status, _, body = await call(http, "GET", "/_inference")
    assert status == 500 and "secret" not in json.dumps(body)
    assert body["error"]["root_cause"][0]["type"] == "status_exception"


async def test_queue_full_is_429_with_retry_after(
    http: aiohttp.ClientSession, core: InferenceCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def full(*_: object, **__: object) -> None:
        raise queue_full(2.5)

    monkeypatch.setattr(core, "infer", full)
    status, headers, body = await call(http, "POST", "/_inference/e", json={"input": "x"})
    assert (status, headers["Retry-After"]) == (429, "3")
    assert body == envelope(
        "es_rejected_execution_exception", "inference process queue is full. Unable to execute command", 429
    )


async def test_chunked_extension(http: aiohttp.ClientSession) -> None:
    await call(http, "PUT", "/_inference/sparse_embedding/e", json=PUT_BODY)
    text = "First sentence here. Second one follows. And a third."
    settings = {"strategy": "word", "max_chunk_size": 10, "overlap": 1}
    status, _, body = await call(
        http, "POST", "/_elser/chunked/e", json={"input": [text, "x"], "chunking_settings": settings}
    )
    assert status == 200
    outputs = body["chunked_sparse_embedding"]
    assert len(outputs) == 2 and outputs[0]["chunks"][0]["start_offset"] == 0
    for chunk in outputs[0]["chunks"]:
        # ES's keys in ES's order, then the code point extension
        assert list(chunk) == [
            "start_offset", "end_offset", "is_truncated", "embedding", "start_code_point", "end_code_point"
        ]  # fmt: skip
    status, _, body = await call(
        http, "POST", "/_elser/chunked/e", json={"input": "x", "chunking_settings": {"strategy": "bogus"}}
    )
    assert status == 400 and body["error"]["type"] == "illegal_argument_exception"


async def test_chunked_extension_offsets_in_utf16_and_code_points(http: aiohttp.ClientSession) -> None:
    """Outside the BMP the two units differ: `start_offset`/`end_offset` index the UTF-16 form (as ES/Java),
    `start_code_point`/`end_code_point` the code points (as gRPC InferChunked and Python `str`)."""
    await call(http, "PUT", "/_inference/sparse_embedding/e", json=PUT_BODY)
    text = " ".join(f"😀 word{i} 𠀋 🇫🇷 more" for i in range(12))
    settings = {"strategy": "word", "max_chunk_size": 10, "overlap": 2}
    status, _, body = await call(
        http, "POST", "/_elser/chunked/e", json={"input": text, "chunking_settings": settings}
    )
    assert status == 200
    chunks = body["chunked_sparse_embedding"][0]["chunks"]
    expected = chunking.chunk(text, chunking.parse_chunking_settings(settings))
    assert len(chunks) == len(expected) > 2
    utf16 = text.encode("utf-16-le")
    for got, want in zip(chunks, expected, strict=True):
        assert (got["start_offset"], got["end_offset"]) == (want.start_utf16, want.end_utf16)
        assert (got["start_code_point"], got["end_code_point"]) == (want.start, want.end)
        by_utf16 = utf16[2 * got["start_offset"] : 2 * got["end_offset"]].decode("utf-16-le")
        assert by_utf16 == text[got["start_code_point"] : got["end_code_point"]]
    assert chunks[0]["start_offset"] == chunks[0]["start_code_point"] == 0
    # after the first emoji the units part ways, and the UTF-16 offsets run ahead
    assert all(c["end_offset"] > c["end_code_point"] for c in chunks)
    assert all(c["start_offset"] > c["start_code_point"] for c in chunks[1:])


async def test_stats_extension(http: aiohttp.ClientSession) -> None:
    await call(http, "PUT", "/_inference/sparse_embedding/e", json=PUT_BODY)
    await call(http, "POST", "/_inference/e", json={"input": ["a", "b"]})
    status, _, body = await call(http, "GET", "/_elser/deployments/e/_stats")
    stats = body["deployment_stats"]
    assert status == 200 and stats["deployment_id"] == "e" and stats["inference_count"] >= 2
    assert stats["threads_per_allocation"] == 1
    assert stats["runtime"] == {
        "backend": "openvino" if openvino_installed() else "onnxruntime",
        "precision": "fp32",
        "reason": "portable model id: exact fp32",
    }
    status, _, body = await call(http, "GET", "/_elser/deployments/nope/_stats")
    assert status == 404
