"""Blank input on `/_elser/chunked`, per strategy, with the request's chunking settings and with an endpoint's
own: one chunk, the whole input, embedded as `POST _inference` embeds that text (ES sends the chunk's text,
"" included, to the model like any input)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from support import BLANK_CHUNKING, BLANK_TEXTS, PUT_BODY


async def post(http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> Any:
    async with http.post(path, json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def embeddings(http: aiohttp.ClientSession, inference_id: str) -> list[dict[str, Any]]:
    body = await post(http, f"/_inference/{inference_id}", {"input": BLANK_TEXTS})
    rows: list[dict[str, Any]] = body["sparse_embedding"]
    return rows


def check(outputs: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(outputs) == len(BLANK_TEXTS)
    for text, output, row in zip(BLANK_TEXTS, outputs, expected, strict=True):
        chunks = output["chunks"]
        n = len(text)  # all BMP: UTF-16 units and code points agree
        assert len(chunks) == 1, (text, chunks)
        (c,) = chunks
        assert (c["start_offset"], c["end_offset"]) == (0, n)
        assert (c["start_code_point"], c["end_code_point"]) == (0, n)
        assert c["is_truncated"] is row["is_truncated"] is False
        assert c["embedding"].keys() == row["embedding"].keys()
        assert c["embedding"] == pytest.approx(row["embedding"], rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("settings", BLANK_CHUNKING.values(), ids=BLANK_CHUNKING.keys())
async def test_blank_input_with_request_chunking_settings(
    http: aiohttp.ClientSession, settings: dict[str, object]
) -> None:
    async with http.put("/_inference/sparse_embedding/e", json=PUT_BODY) as response:
        assert response.status == 200
    body = await post(http, "/_elser/chunked/e", {"input": BLANK_TEXTS, "chunking_settings": settings})
    check(body["chunked_sparse_embedding"], await embeddings(http, "e"))


@pytest.mark.parametrize("settings", BLANK_CHUNKING.values(), ids=BLANK_CHUNKING.keys())
async def test_blank_input_with_the_endpoints_chunking_settings(
    http: aiohttp.ClientSession, settings: dict[str, object]
) -> None:
    async with http.put(
        "/_inference/sparse_embedding/stored", json={**PUT_BODY, "chunking_settings": settings}
    ) as response:
        assert response.status == 200, await response.text()
    body = await post(http, "/_elser/chunked/stored", {"input": BLANK_TEXTS})
    check(body["chunked_sparse_embedding"], await embeddings(http, "stored"))
