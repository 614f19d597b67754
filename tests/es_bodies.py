"""Request bodies shared by the REST shim tests."""

from __future__ import annotations

ELSER_BODY = {"service": "elser", "service_settings": {"num_allocations": 1, "num_threads": 1}}
ES_BODY = {
    "service": "elasticsearch",
    "service_settings": {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1},
}
