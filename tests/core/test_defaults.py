"""The ELSER defaults (core/defaults.py): the preconfigured endpoint as ES lists it, and the reserved ids."""

from __future__ import annotations

from elser_server.core.defaults import (
    DEFAULT_ELSER_MODEL_ID,
    ELSER_MODEL_IDS,
    RESERVED_ENDPOINT_IDS,
    default_endpoint,
)

DEFAULT_CHUNKING = {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}


def test_default_endpoint() -> None:
    assert default_endpoint().to_dict() == {
        "inference_id": ".elser-2-elasticsearch",
        "task_type": "sparse_embedding",
        "service": "elasticsearch",
        "service_settings": {
            "num_threads": 1,
            "model_id": DEFAULT_ELSER_MODEL_ID,
            "adaptive_allocations": {
                "enabled": True,
                "min_number_of_allocations": 0,
                "max_number_of_allocations": 32,
            },
        },
        "chunking_settings": DEFAULT_CHUNKING,
    }
    assert ".elser-2-elasticsearch" in RESERVED_ENDPOINT_IDS
    assert DEFAULT_ELSER_MODEL_ID in ELSER_MODEL_IDS
