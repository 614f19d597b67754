"""`EndpointStore` in PostgreSQL, shared by every replica, with a change feed (LISTEN/NOTIFY).

psycopg 3's blocking API, as for SQLite: the core calls these methods through `asyncio.to_thread`, and the change
listener runs in its own thread, so no driver call ever runs on the event loop. Every write is one transaction; a
trigger notifies the channel on commit, whoever wrote (a replica, `elser-store import`, a person with psql).

The schema is versioned: `MIGRATIONS[n]` takes version n to n + 1. Opening the store applies the missing ones in
one transaction under an advisory lock, so replicas starting at once migrate it exactly once; a schema newer than
this server knows is refused (migrations only go forward).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from elser_server.core.errors import (
    ElserError,
    endpoint_exists,
    endpoint_not_found,
    internal,
    store_unavailable,
)
from elser_server.core.store import StoreEvents
from elser_server.core.types import Endpoint

log = logging.getLogger(__name__)

CHANNEL = "elser_endpoints"
# pg_advisory_xact_lock key that serializes migrations across replicas ("elser" in ASCII).
MIGRATION_LOCK_KEY = 0x656C736572
POOL_MAX_SIZE = 4  # control-plane traffic only: inference never reads the store
LISTEN_POLL_S = 0.5  # how often the listener thread looks at its stop flag
RECONNECT_MIN_S = 0.2
RECONNECT_MAX_S = 2.0

Migration = tuple[str, ...]

MIGRATIONS: tuple[Migration, ...] = (
    # 1: endpoints (config: Endpoint.to_dict(), ES's shape) and the notification every replica listens to.
    (
        "CREATE TABLE elser_endpoints ("
        " inference_id text PRIMARY KEY,"
        " config jsonb NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now(),"
        " updated_at timestamptz NOT NULL DEFAULT now())",
        "CREATE FUNCTION elser_endpoints_notify() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN"
        f" PERFORM pg_notify('{CHANNEL}', COALESCE(NEW.inference_id, OLD.inference_id));"
        " RETURN NULL;"
        " END $$",
        "CREATE TRIGGER elser_endpoints_notify AFTER INSERT OR UPDATE OR DELETE ON elser_endpoints"
        " FOR EACH ROW EXECUTE FUNCTION elser_endpoints_notify()",
    ),
)


def connection_params(
    url: str, *, password_file: Path | None, timeout_s: float, application_name: str
) -> dict[str, Any]:
    """libpq parameters of `url`, with the password from `password_file` and our defaults where the URL has
    none: a connect timeout and TCP keepalives (a dead link is noticed in about 30 s, not hours)."""
    try:
        params: dict[str, Any] = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"invalid store URL: {exc}") from None
    if password_file is not None:
        params["password"] = password_file.read_text(encoding="utf-8").rstrip("\r\n")
    # libpq reads connect_timeout in whole seconds and treats values below 2 as 2.
    params.setdefault("connect_timeout", max(2, round(timeout_s)))
    params.setdefault("keepalives", 1)
    params.setdefault("keepalives_idle", 10)
    params.setdefault("keepalives_interval", 5)
    params.setdefault("keepalives_count", 4)
    params.setdefault("application_name", application_name[:63])
    return params


def describe(params: dict[str, Any]) -> str:
    """`user@host:port/dbname` for logs and messages (never the password)."""
    user = params.get("user", "")
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    return f"{user}{'@' if user else ''}{host}:{port}/{params.get('dbname', '')}"


def _detail(exc: BaseException) -> str:
    """The first line of a driver error (libpq's messages name host and port, never the password)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unavailable(exc: BaseException) -> ElserError:
    log.warning("endpoint store: %s", _detail(exc))
    return store_unavailable()


class PostgresEndpointStore:
    """Endpoints in one PostgreSQL table; a pool of blocking connections (`open()` before use)."""

    def __init__(
        self,
        url: str,
        *,
        password_file: Path | None = None,
        timeout_s: float,
        application_name: str = "elser-server",
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        params = connection_params(
            url, password_file=password_file, timeout_s=timeout_s, application_name=application_name
        )
        self.description = describe(params)
        self._conninfo = make_conninfo(**params)
        self._migrations = tuple(migrations)
        self._timeout_s = timeout_s
        self._pool = self._new_pool()
        self._opened = False

    def _new_pool(self) -> ConnectionPool:
        return ConnectionPool(
            self._conninfo,
            kwargs={"autocommit": True},
            min_size=1,
            max_size=POOL_MAX_SIZE,
            open=False,
            timeout=self._timeout_s,
            check=ConnectionPool.check_connection,  # a connection broken by a restart is replaced, not used
            name="elser-store",
        )

    def _renew_pool(self) -> None:
        """The server is back after an outage: a fresh pool connects at once, where the old one would wait out
        its reconnection backoff (seconds, doubling while the outage lasted)."""
        old, self._pool = self._pool, self._new_pool()
        self._pool.open(wait=False)
        # Closing waits for the old pool's workers: not on the listener's thread.
        threading.Thread(target=old.close, name="store-pool-close", daemon=True).start()

    @property
    def schema_version(self) -> int:
        """The version this code migrates to."""
        return len(self._migrations)

    def open(self) -> None:
        """Connect and bring the schema up to date; STORE_UNAVAILABLE while the server cannot be reached (call
        again), STORE_SCHEMA_MISMATCH when its schema is newer than this code."""
        try:
            # A connection of its own: a failure says why (wrong password, no such database), not just that the
            # pool found no connection in time.
            with psycopg.connect(self._conninfo, autocommit=True) as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
                conn.execute("CREATE TABLE IF NOT EXISTS elser_schema_version (version integer NOT NULL)")
                row = conn.execute("SELECT version FROM elser_schema_version").fetchone()
                current = 0 if row is None else int(row[0])
                if current > len(self._migrations):
                    raise internal(
                        f"endpoint store {self.description} has schema version {current}, this server "
                        f"supports up to {len(self._migrations)}: upgrade the server",
                        "STORE_SCHEMA_MISMATCH",
                    )
                for version in range(current, len(self._migrations)):
                    for statement in self._migrations[version]:
                        conn.execute(statement.encode())
                    log.info(
                        "endpoint store %s: schema migrated to version %d", self.description, version + 1
                    )
                if row is None:
                    conn.execute(
                        "INSERT INTO elser_schema_version (version) VALUES (%s)", (len(self._migrations),)
                    )
                elif current != len(self._migrations):
                    conn.execute("UPDATE elser_schema_version SET version = %s", (len(self._migrations),))
        except psycopg.Error as exc:
            raise _unavailable(exc) from exc
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True

    def load_all(self) -> list[Endpoint]:
        rows = self._fetch("SELECT config FROM elser_endpoints ORDER BY inference_id", ())
        return [Endpoint.from_dict(config) for (config,) in rows]

    def get(self, inference_id: str) -> Endpoint | None:
        rows = self._fetch("SELECT config FROM elser_endpoints WHERE inference_id = %s", (inference_id,))
        return Endpoint.from_dict(rows[0][0]) if rows else None

    def insert(self, endpoint: Endpoint) -> None:
        self.insert_all([endpoint])

    def insert_all(self, endpoints: Sequence[Endpoint]) -> None:
        try:
            with self._pool.connection() as conn, conn.transaction():
                for endpoint in endpoints:
                    try:
                        conn.execute(
                            "INSERT INTO elser_endpoints (inference_id, config) VALUES (%s, %s)",
                            (endpoint.inference_id, Jsonb(endpoint.to_dict())),
                        )
                    except pg_errors.UniqueViolation:
                        # The primary key decides between replicas racing for one id; the loser writes nothing.
                        raise endpoint_exists(endpoint.inference_id) from None
        except (psycopg.Error, PoolTimeout) as exc:
            raise _unavailable(exc) from exc

    def replace(self, endpoint: Endpoint) -> None:
        changed = self._write(
            "UPDATE elser_endpoints SET config = %s, updated_at = now() WHERE inference_id = %s",
            (Jsonb(endpoint.to_dict()), endpoint.inference_id),
        )
        if not changed:
            raise endpoint_not_found(endpoint.inference_id)

    def delete(self, inference_id: str) -> bool:
        return self._write("DELETE FROM elser_endpoints WHERE inference_id = %s", (inference_id,)) > 0

    def close(self) -> None:
        if self._opened:
            self._pool.close()

    def listen(self, events: StoreEvents) -> PostgresListener:
        """Start reporting changes to `events` from a thread of its own (until its `stop()`)."""
        listener = PostgresListener(self._conninfo, events, on_back=self._renew_pool)
        listener.start()
        return listener

    def _fetch(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            with self._pool.connection() as conn:
                return conn.execute(sql.encode(), params).fetchall()
        except (psycopg.Error, PoolTimeout) as exc:
            raise _unavailable(exc) from exc

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        """One statement, its own transaction (autocommit); the number of rows changed."""
        try:
            with self._pool.connection() as conn:
                return conn.execute(sql.encode(), params).rowcount
        except (psycopg.Error, PoolTimeout) as exc:
            raise _unavailable(exc) from exc


class PostgresListener:
    """`LISTEN` on a connection of its own in a thread of its own; reconnects with capped, jittered backoff."""

    def __init__(self, conninfo: str, events: StoreEvents, on_back: Callable[[], None]) -> None:
        """`on_back` runs when the server is reachable again after a lost connection, before `connected()`."""
        self._conninfo = conninfo
        self._events = events
        self._on_back = on_back
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and wait for the thread (at most one poll interval)."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        delay = RECONNECT_MIN_S
        lost = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}".encode())
                    delay = RECONNECT_MIN_S
                    if lost:
                        self._on_back()
                        lost = False
                    self._events.connected()
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=LISTEN_POLL_S):
                            self._events.changed(notice.payload)
            except psycopg.Error as exc:
                if self._stop.is_set():
                    return
                lost = True
                self._events.lost(_detail(exc))
            # Jitter: replicas cut off together do not reconnect in lockstep.
            self._stop.wait(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, RECONNECT_MAX_S)
