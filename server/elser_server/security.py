"""Transport-neutral security: API keys (loading, checking `Authorization` values) and the server TLS context
of the REST shim (gRPC builds its own credentials from the same files).

Accepted `Authorization` values, for a configured key K:
- `Bearer K`;
- `ApiKey K` (the raw key);
- `ApiKey base64(X)` where X is K, or X is `id:K` (Elasticsearch's ApiKey credential: base64 of `id:api_key`),
  or the whole `id:key` text equals K (a key configured as `id:key`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ssl
from collections.abc import Iterable
from pathlib import Path

from elser_server.core.errors import invalid_credentials, missing_credentials

SCHEMES = ("apikey", "bearer")


def parse_keys(lines: Iterable[str]) -> list[str]:
    """One key per item, surrounding whitespace stripped; blank items and `#` comment lines skipped (a key
    may contain `#` elsewhere)."""
    stripped = (line.strip() for line in lines)
    return [text for text in stripped if text and not text.startswith("#")]


def load_api_keys(keys_file: Path | None, keys_csv: str | None) -> list[str]:
    """Keys from the file (one a line) and from the comma-separated list; empty means authentication is off."""
    keys = parse_keys(keys_file.read_text(encoding="utf-8").splitlines()) if keys_file is not None else []
    if keys_csv:
        keys += parse_keys(keys_csv.split(","))
    return keys


class ApiKeys:
    """Checks `Authorization` values against the configured keys in constant time per key."""

    def __init__(self, keys: Iterable[str]) -> None:
        # Digests, not keys: compare_digest on equal-length values does not reveal a key's length either.
        self._keys = [hashlib.sha256(k.encode("utf-8")).digest() for k in keys]
        if not self._keys:
            raise ValueError("API-key authentication needs at least one key")

    def check(self, authorization: str | None, subject: str) -> None:
        """Raise the ES error for missing or wrong credentials; return when a configured key matches."""
        if not authorization or not authorization.strip():
            raise missing_credentials(subject)
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() not in SCHEMES or not value:
            raise invalid_credentials(subject)
        candidates = [value]
        if scheme.lower() == "apikey":
            candidates += _decoded_api_key(value)
        matched = False
        for candidate in candidates:
            presented = hashlib.sha256(candidate.encode("utf-8")).digest()
            for key in self._keys:
                # No early exit: the time taken does not tell which key (or how much of one) matched.
                matched |= hmac.compare_digest(presented, key)
        if not matched:
            raise invalid_credentials(subject)


def _decoded_api_key(value: str) -> list[str]:
    """ES's ApiKey credential is base64(`id:api_key`): the decoded text and its key part."""
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return []
    _, colon, key = decoded.partition(":")
    return [decoded, key] if colon and key else [decoded]


def server_ssl_context(
    cert_file: Path, key_file: Path, client_ca_file: Path | None, require_client_cert: bool
) -> ssl.SSLContext:
    """TLS ≥ 1.2 server context; with a client CA, client certificates are verified (and required if asked)."""
    if require_client_cert and client_ca_file is None:
        raise ValueError("requiring client certificates needs a client CA file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if client_ca_file is not None:
        context.load_verify_locations(cafile=client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context
