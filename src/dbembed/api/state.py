"""Per-process API state: the connection pool (opened and migrated on first use), the
embedding provider (loaded once), metrics.

Opening lazily keeps ``create_app`` free of side effects, so the same app object
works under uvicorn, under TestClient and in a Lambda cold start alike.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dbembed.api.metrics import Metrics

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from dbembed.config import Settings


class AppState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.cache: dict[str, Any] = {}  # shared by ChatStores: provider, resolved memory tables
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()
        self._migrated = False

    @property
    def data_api(self) -> bool:
        from dbembed.store.dataapi import is_data_api_url

        return is_data_api_url(self.settings.database_url)

    def pool(self) -> ConnectionPool:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = self._open()
        return self._pool

    def _open(self) -> ConnectionPool:
        from psycopg_pool import ConnectionPool

        from dbembed.errors import DatabaseUnavailable
        from dbembed.store.connection import connect, conninfo
        from dbembed.store.migrate import migrate

        conn = connect(self.settings, register_vector=False)  # clear DatabaseUnavailable message if down
        try:
            migrate(conn)
        finally:
            conn.close()
        pool = ConnectionPool(
            conninfo(self.settings),
            min_size=1,
            max_size=max(1, self.settings.api_db_pool_size),
            kwargs={"autocommit": True, "connect_timeout": max(1, int(self.settings.db_connect_timeout_s))},
            configure=_configure,
            open=False,
        )
        try:
            pool.open(wait=True, timeout=self.settings.db_connect_timeout_s)
        except Exception as exc:  # noqa: BLE001 - PoolTimeout and friends
            raise DatabaseUnavailable(f"cannot open the database pool: {exc}") from exc
        return pool

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        if self.data_api:  # RDS Data API: no pool, a cheap per-request adapter over one boto3 client
            yield self._data_api_connection()
            return
        with self.pool().connection() as conn:
            yield conn

    def _data_api_connection(self) -> Any:
        from dbembed.store.connection import connect

        if not self._migrated:
            with self._lock:
                if not self._migrated:
                    from dbembed.store.migrate import migrate

                    migrate(connect(self.settings))
                    self._migrated = True
        return connect(self.settings)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _configure(conn: psycopg.Connection) -> None:
    """Register pgvector's types on every pooled connection."""
    from dbembed.store.connection import try_register_vector

    try_register_vector(conn)
