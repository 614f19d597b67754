"""Endpoint.from_dict (core/types.py) restores what Endpoint.to_dict stored, chunking settings included."""

from __future__ import annotations

from typing import Any

import pytest
from elser_server.core.defaults import default_endpoint
from elser_server.core.endpoint_rules import parse_put_request
from elser_server.core.types import Endpoint
from support import PUT_BODY, put_body

FIXED = parse_put_request("fixed", "sparse_embedding", PUT_BODY).endpoint
ADAPTIVE = parse_put_request(
    "adaptive",
    "sparse_embedding",
    put_body(
        adaptive_allocations={"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 4}
    ),
).endpoint


def with_chunking(chunking_settings: dict[str, Any]) -> dict[str, Any]:
    return {**PUT_BODY, "chunking_settings": chunking_settings}


@pytest.mark.parametrize(
    "endpoint",
    [
        default_endpoint(),
        FIXED,
        ADAPTIVE,
        parse_put_request(
            "w",
            "sparse_embedding",
            with_chunking({"strategy": "recursive", "max_chunk_size": 50, "separator_group": "markdown"}),
        ).endpoint,
        parse_put_request("n", "sparse_embedding", with_chunking({"strategy": "none"})).endpoint,
    ],
)
def test_endpoint_from_dict_round_trip(endpoint: Any) -> None:
    restored = Endpoint.from_dict(endpoint.to_dict())
    assert restored.to_dict() == endpoint.to_dict()
    assert restored.chunking_settings == endpoint.chunking_settings


def test_endpoint_from_dict_without_chunking() -> None:
    legacy = {k: v for k, v in FIXED.to_dict().items() if k != "chunking_settings"}
    assert Endpoint.from_dict(legacy).chunking_settings is None
