"""Property: whatever the path, method, query string, headers and body, the shim never answers 5xx, and every
error is ES's envelope carrying X-Elastic-Product."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ELSER_PUT_BODY, PUT_BODY
from yarl import URL

SEGMENTS = st.sampled_from(
    [
        "_inference",
        "_all",
        "*",
        "sparse_embedding",
        "text_embedding",
        "bad",
        "e",
        "_update",
        "_stream",
        "_elser",
        "chunked",
        "deployments",
        "_stats",
        ".elser-2-elasticsearch",
        "",
        "..",
        "My-Id",
    ]
) | st.text(max_size=8)
PARAMS = st.sampled_from(
    ["pretty", "human", "error_trace", "filter_path", "timeout", "dry_run", "force", "tmeout"]
)
VALUES = st.sampled_from(
    [
        *("", "true", "false", "1s", "0s", "-1", "1.5s", "abc", "*", "**.x,-y", "10"),
        # hostile: past a Java long and a double, non-ASCII digits, a star glob
        *("1" + "0" * 400 + "s", "9" * 30 + "ms", "²s", "٣s", "²", "**." + "*" * 30 + "Z"),
    ]
) | st.text(max_size=6)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
BODIES = st.one_of(
    st.none(),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"input": st.one_of(st.text(max_size=20), st.lists(st.text(max_size=20), max_size=3))},
        optional={"task_settings": JSON, "input_type": VALUES, "timeout": VALUES, "foo": JSON},
    ).map(lambda v: json.dumps(v).encode()),
    st.sampled_from([PUT_BODY, ELSER_PUT_BODY, {"service_settings": {"num_allocations": 2}}]).map(
        lambda v: json.dumps(v).encode()
    ),
    st.binary(max_size=40),
)
CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "application/vnd.elasticsearch+json; compatible-with=8",
        "application/vnd.elasticsearch+json; compatible-with=9",
        "application/vnd.elasticsearch+json; compatible-with=x",
        "text/plain",
        "application/x-www-form-urlencoded",
    ]
)
ACCEPTS = st.sampled_from(
    [
        None,
        "*/*",
        "application/json",
        "application/vnd.elasticsearch+json; compatible-with=9",
        "application/vnd.elasticsearch+json; compatible-with=6",
        "text/html, application/json",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS"]),
    segments=st.lists(SEGMENTS, max_size=4),
    query=st.lists(st.tuples(PARAMS, VALUES), max_size=3),
    body=BODIES,
    content_type=CONTENT_TYPES,
    accept=ACCEPTS,
)
async def test_never_5xx_and_always_enveloped(
    base_url: str,
    method: str,
    segments: list[str],
    query: list[tuple[str, str]],
    body: bytes | None,
    content_type: str | None,
    accept: str | None,
) -> None:
    path = "/" + "/".join(quote(s, safe="*") for s in segments)
    if query:
        path += "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query)
    headers = {k: v for k, v in (("Content-Type", content_type), ("Accept", accept)) if v is not None}
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            URL(base_url + path, encoded=True),
            data=body,
            headers=headers,
            skip_auto_headers=["Content-Type"],
        ) as response,
    ):
        text = await response.text()
    assert response.status < 500, (response.status, text)
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    if response.status < 400 or method == "HEAD":
        return
    if response.headers["Content-Type"] == "text/event-stream":
        text = text.split("\n")[1].removeprefix("data: ")
    payload: dict[str, Any] = json.loads(text)
    assert set(payload) == {"error", "status"} and payload["status"] == response.status
    error = payload["error"]
    assert isinstance(error["type"], str) and isinstance(error["reason"], str)
    assert error["root_cause"][0] == {"type": error["type"], "reason": error["reason"]}
