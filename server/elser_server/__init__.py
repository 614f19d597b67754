"""ELSER inference service: an Elasticsearch-compatible sparse-embedding server (gRPC + ES REST shim)."""

__version__ = "0.1.0"
