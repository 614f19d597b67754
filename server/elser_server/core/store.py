"""Endpoint persistence behind a small interface: `SqliteEndpointStore` for one process (here), and
`PostgresEndpointStore` (core/store_postgres.py) shared by several replicas.

Each SQLite write is one transaction in WAL mode with `synchronous=FULL`, so a crash at any moment leaves the
old or the new state and an acknowledged write survives power loss. Methods block: the core calls them through
`asyncio.to_thread`, hence one connection shared under a lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from elser_server.core.errors import endpoint_exists, endpoint_not_found, internal
from elser_server.core.types import Endpoint

SCHEMA_VERSION = 1

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    # config: Endpoint.to_dict() as JSON, the ES shape (readable with sqlite3's json functions).
    "CREATE TABLE IF NOT EXISTS endpoints ("
    " inference_id TEXT PRIMARY KEY NOT NULL,"
    " config TEXT NOT NULL,"
    " created_at REAL NOT NULL,"
    " updated_at REAL NOT NULL)",
)


class EndpointStore(Protocol):
    def load_all(self) -> list[Endpoint]:
        """Every stored endpoint, sorted by inference_id."""
        ...

    def get(self, inference_id: str) -> Endpoint | None:
        """One stored endpoint, or None."""
        ...

    def insert(self, endpoint: Endpoint) -> None:
        """Store a new endpoint; ALREADY_EXISTS (`endpoint_exists`) if the id is taken."""
        ...

    def insert_all(self, endpoints: Sequence[Endpoint]) -> None:
        """Store new endpoints in one transaction: all of them, or none (ALREADY_EXISTS for the first id taken)."""
        ...

    def replace(self, endpoint: Endpoint) -> None:
        """Overwrite a stored endpoint; NOT_FOUND if it is absent."""
        ...

    def delete(self, inference_id: str) -> bool:
        """Remove an endpoint; False if it was absent."""
        ...

    def close(self) -> None: ...


class StoreEvents(Protocol):
    """What a shared store's change listener reports, from the listener's own thread."""

    def connected(self) -> None:
        """Listening (again): changes made before now may have been missed, so compare everything."""
        ...

    def changed(self, inference_id: str) -> None:
        """A committed write touched `inference_id`."""
        ...

    def lost(self, reason: str) -> None:
        """The store is unreachable; the listener reconnects with backoff."""
        ...


class StoreListener(Protocol):
    def stop(self) -> None:
        """Stop reporting and release the connection (blocks briefly)."""
        ...


class SharedEndpointStore(EndpointStore, Protocol):
    """A store several processes use at once, which tells each of them about the others' changes."""

    description: str  # where it is, for logs and messages (never a secret)

    def open(self) -> None:
        """Connect and bring the schema up to date; STORE_UNAVAILABLE while unreachable (call again)."""
        ...

    def listen(self, events: StoreEvents) -> StoreListener:
        """Start reporting changes (and losing and regaining the store) to `events`."""
        ...


class SqliteEndpointStore:
    """`EndpointStore` in one SQLite file (created with its parent directory when missing)."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per write.
        self._conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=30.0)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._migrate()

    def _migrate(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                self._conn.execute(statement)
            row = self._conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise internal(
                    f"endpoint store {self._path} has schema version {row[0]}, this server supports "
                    f"{SCHEMA_VERSION}",
                    "STORE_SCHEMA_MISMATCH",
                )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def load_all(self) -> list[Endpoint]:
        with self._lock:
            rows = self._conn.execute("SELECT config FROM endpoints ORDER BY inference_id").fetchall()
        return [Endpoint.from_dict(json.loads(config)) for (config,) in rows]

    def get(self, inference_id: str) -> Endpoint | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT config FROM endpoints WHERE inference_id = ?", (inference_id,)
            ).fetchone()
        return None if row is None else Endpoint.from_dict(json.loads(row[0]))

    def insert(self, endpoint: Endpoint) -> None:
        self.insert_all([endpoint])

    def insert_all(self, endpoints: Sequence[Endpoint]) -> None:
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for endpoint in endpoints:
                    try:
                        self._conn.execute(
                            "INSERT INTO endpoints (inference_id, config, created_at, updated_at) "
                            "VALUES (?, ?, ?, ?)",
                            (endpoint.inference_id, _encode(endpoint), now, now),
                        )
                    except sqlite3.IntegrityError:
                        # The primary key makes a concurrent duplicate fail here, not in a racy pre-check.
                        raise endpoint_exists(endpoint.inference_id) from None
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def replace(self, endpoint: Endpoint) -> None:
        changed = self._write(
            "UPDATE endpoints SET config = ?, updated_at = ? WHERE inference_id = ?",
            (_encode(endpoint), time.time(), endpoint.inference_id),
        )
        if not changed:
            raise endpoint_not_found(endpoint.inference_id)

    def delete(self, inference_id: str) -> bool:
        return self._write("DELETE FROM endpoints WHERE inference_id = ?", (inference_id,)) > 0

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        """Run one statement in its own transaction; returns the number of rows changed."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                count = self._conn.execute(sql, params).rowcount
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            return count


def _encode(endpoint: Endpoint) -> str:
    return json.dumps(endpoint.to_dict(), separators=(",", ":"))
