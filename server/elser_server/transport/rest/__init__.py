"""Elasticsearch-compatible REST shim (`_inference` API) over the shared core."""

from elser_server.transport.rest.app import ES_VERSION, build_app
from elser_server.transport.rest.server import RestTransport

__all__ = ["ES_VERSION", "RestTransport", "build_app"]
