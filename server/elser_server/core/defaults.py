"""Elasticsearch's built-in ELSER names: the model ids it knows, the preconfigured `.elser-2-elasticsearch`
endpoint and the reserved endpoint ids."""

from __future__ import annotations

import platform

from elser_server.core.chunking.settings import DEFAULT_CHUNKING
from elser_server.core.types import AdaptiveAllocations, Endpoint, ServiceSettings, TaskType

ELSER_V1_MODEL_ID = ".elser_model_1"
ELSER_V2_MODEL_ID = ".elser_model_2"
ELSER_V2_X86_MODEL_ID = ".elser_model_2_linux-x86_64"
ELSER_MODEL_IDS = frozenset({ELSER_V1_MODEL_ID, ELSER_V2_MODEL_ID, ELSER_V2_X86_MODEL_ID})

ELASTICSEARCH_SERVICE = "elasticsearch"
ELSER_SERVICE = "elser"

# ES AdaptiveAllocationsScalerService: the bound without an explicit max_number_of_allocations.
DEFAULT_MAX_ALLOCATIONS = 32


def _platform_default_model_id() -> str:
    # ES picks the optimized variant only when every ML node is linux-x86_64; here the one node is this host.
    machine = platform.machine().lower()
    if platform.system() == "Linux" and machine in ("x86_64", "amd64"):
        return ELSER_V2_X86_MODEL_ID
    return ELSER_V2_MODEL_ID


DEFAULT_ELSER_MODEL_ID = _platform_default_model_id()
DEFAULT_ENDPOINT_ID = ".elser-2-elasticsearch"
RESERVED_ENDPOINT_IDS = frozenset(
    {
        DEFAULT_ENDPOINT_ID,
        ".multilingual-e5-small-elasticsearch",
        ".rerank-v1-elasticsearch",
        ".elser-2-elastic",
    }
)


def default_endpoint() -> Endpoint:
    """The preconfigured `.elser-2-elasticsearch` (listed always, deployed on first use)."""
    return Endpoint(
        inference_id=DEFAULT_ENDPOINT_ID,
        task_type=TaskType.SPARSE_EMBEDDING,
        service_settings=ServiceSettings(
            model_id=DEFAULT_ELSER_MODEL_ID,
            num_threads=1,
            adaptive_allocations=AdaptiveAllocations(True, 0, DEFAULT_MAX_ALLOCATIONS),
        ),
        chunking_settings=DEFAULT_CHUNKING,
        service=ELASTICSEARCH_SERVICE,
    )
