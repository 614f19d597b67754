"""ES's answers over HTTP, table-driven (tests/es_rules.py, shared with the gRPC twin): the core raises each
error with ES's type, reason and status; the shim must deliver them intact in ES's envelope."""

from __future__ import annotations

import json

import aiohttp
import pytest
from es_rules import RULES, Rule
from support import PUT_BODY

SSE_PREFIX = "\ufeffevent: error\ndata: "  # ES starts every server-sent event with a byte order mark


def rule_id(index: int, rule: Rule) -> str:
    return f"{index:02d}-{rule.method}-{rule.path}"


@pytest.mark.parametrize("rule", RULES, ids=[rule_id(i, r) for i, r in enumerate(RULES)])
async def test_rule(http: aiohttp.ClientSession, rule: Rule) -> None:
    async with http.put("/_inference/sparse_embedding/existing", json=PUT_BODY) as created:
        assert created.status == 200
    kwargs = {"json": rule.body} if rule.body is not None else {}
    async with http.request(rule.method, rule.path, **kwargs) as response:
        assert response.headers["X-Elastic-Product"] == "Elasticsearch"
        if rule.sse:
            assert response.headers["Content-Type"] == "text/event-stream"
            text = await response.text()
            assert text.startswith(SSE_PREFIX) and text.endswith("\n\n")
            payload = json.loads(text.removeprefix(SSE_PREFIX))
        else:
            payload = await response.json()
    cause = {"type": rule.es_type, "reason": rule.reason}
    error: dict[str, object] = {"root_cause": [cause], **cause}
    if rule.caused_by is not None:
        error["caused_by"] = {"type": rule.caused_by[0], "reason": rule.caused_by[1]}
    assert payload == {"error": error, "status": rule.status}
    assert response.status == rule.status


@pytest.mark.parametrize("inference_id", ["a", "a.b"])
async def test_valid_id(http: aiohttp.ClientSession, inference_id: str) -> None:
    """One character is enough, and dots are allowed inside an id."""
    async with http.put(f"/_inference/sparse_embedding/{inference_id}", json=PUT_BODY) as response:
        body = await response.json()
    assert response.status == 200
    assert body["inference_id"] == inference_id


@pytest.mark.parametrize("master_timeout", ["30s", "-1", "0", "2m"])
async def test_update_takes_master_timeout(http: aiohttp.ClientSession, master_timeout: str) -> None:
    """RestUpdateInferenceModelAction reads `master_timeout` (ES 9.1) as a time value."""
    async with http.put("/_inference/sparse_embedding/existing", json=PUT_BODY) as created:
        assert created.status == 200
    async with http.put(
        f"/_inference/sparse_embedding/existing/_update?master_timeout={master_timeout}",
        json={"service_settings": {"num_allocations": 2}},
    ) as response:
        body = await response.json()
    assert response.status == 200
    assert body["service_settings"]["num_allocations"] == 2


@pytest.mark.parametrize(
    ("raw", "position"),
    [
        # Jackson counts columns in UTF-8 bytes of the request: "é€😀" is 9 bytes.
        ('{"input": "é€😀", "input_type": "internal_search"}', "1:38"),
        # \r\n, \r and \n each end a line.
        ('{\n  "input": "x",\r\n  "input_type":\r  "INTERNAL_SEARCH"}', "4:3"),
        ('{"input_type": " internal_search ", "foo": 1}', "1:16"),  # before the unknown field, as ES reads
    ],
)
async def test_internal_input_type_is_positioned_at_its_value(
    http: aiohttp.ClientSession, raw: str, position: str
) -> None:
    async with http.put("/_inference/sparse_embedding/existing", json=PUT_BODY) as created:
        assert created.status == 200
    headers = {"Content-Type": "application/json"}
    async with http.post("/_inference/existing", data=raw.encode(), headers=headers) as response:
        error = (await response.json())["error"]
    assert response.status == 400
    assert (
        error["reason"]
        == f"[{position}] [cluster:internal/xpack/inference] failed to parse field [input_type]"
    )
    assert error["caused_by"] == {
        "type": "illegal_argument_exception",
        "reason": "Unrecognized input_type [internal_search]",
    }
