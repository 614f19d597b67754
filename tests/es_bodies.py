"""Request bodies shared by the REST shim tests and the ES rule table (tests/es_rules.py)."""

from __future__ import annotations

from support import put_body

ELSER_BODY = {"service": "elser", "service_settings": {"num_allocations": 1, "num_threads": 1}}
ES_BODY = put_body()
