"""The clear error when pgvector is missing or too old (e.g. an old Aurora engine version).

The real server has pgvector, so the catalog view is shadowed: ``ensure_pgvector`` reads
``pg_available_extensions`` unqualified, and a schema listed *before* ``pg_catalog`` in
``search_path`` wins.  The same query then sees what a server without (or with an old)
pgvector would report.
"""

from __future__ import annotations

import pytest


def _shadow(conn, rows_sql: str) -> None:  # noqa: ANN001
    conn.execute("CREATE SCHEMA fakecat")
    conn.execute(f"CREATE VIEW fakecat.pg_available_extensions AS {rows_sql}")
    conn.execute("SET search_path = fakecat, pg_catalog, public")


def test_missing_pgvector_is_explained(database_url: str) -> None:
    import psycopg

    from dbembed.errors import DatabaseUnavailable
    from dbembed.store.migrate import ensure_pgvector

    with psycopg.connect(database_url, autocommit=True) as conn:
        _shadow(
            conn,
            "SELECT 'plpgsql'::name AS name, '1.0'::text AS default_version, "
            "'1.0'::text AS installed_version",
        )
        with pytest.raises(DatabaseUnavailable, match="pgvector extension is not installed") as info:
            ensure_pgvector(conn)
        assert "CREATE EXTENSION vector" in str(info.value)


def test_old_pgvector_is_explained(database_url: str) -> None:
    import psycopg

    from dbembed.errors import DatabaseUnavailable
    from dbembed.store.migrate import ensure_pgvector

    with psycopg.connect(database_url, autocommit=True) as conn:
        _shadow(
            conn,
            "SELECT 'vector'::name AS name, '0.5.1'::text AS default_version, "
            "'0.5.1'::text AS installed_version",
        )
        with pytest.raises(DatabaseUnavailable, match=r"pgvector 0\.5\.1 is too old") as info:
            ensure_pgvector(conn)
        assert "ALTER EXTENSION vector UPDATE" in str(info.value)


def test_real_pgvector_passes(database_url: str) -> None:
    import psycopg

    from dbembed.store.connection import MIN_PGVECTOR, parse_version
    from dbembed.store.migrate import ensure_pgvector

    with psycopg.connect(database_url, autocommit=True) as conn:
        assert parse_version(ensure_pgvector(conn)) >= MIN_PGVECTOR
