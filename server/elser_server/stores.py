"""The endpoint store the settings name: PostgreSQL shared by replicas (`store_url`), else SQLite in the data dir."""

from __future__ import annotations

from elser_server.core.store import EndpointStore, SharedEndpointStore, SqliteEndpointStore
from elser_server.settings import Settings


class StoreConfigError(Exception):
    """The settings name a store that cannot be used as configured (a missing password file, say)."""


def open_store(settings: Settings) -> tuple[EndpointStore, SharedEndpointStore | None]:
    """The store, and the same object again when it is shared (it then needs `open()` before use)."""
    if settings.store_url is None:
        return SqliteEndpointStore(settings.database_path), None
    # Imported here: a single-node server never loads the driver.
    from elser_server.core.store_postgres import PostgresEndpointStore

    try:
        store = PostgresEndpointStore(
            settings.store_url,
            password_file=settings.store_password_file,
            timeout_s=settings.store_timeout_s,
            application_name=f"elser-server {settings.effective_replica_name}",
        )
    except OSError as exc:
        raise StoreConfigError(
            f"cannot read the store password file: {exc.strerror}: {exc.filename}"
        ) from None
    return store, store
