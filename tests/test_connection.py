"""The one store entry point: ``open_connection`` / ``open_pool`` return ready connections
(migrated once per process per database, pgvector's types registered), over psycopg and the
RDS Data API stand-in."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from dbembed.store import connection as store_connection
from dbembed.store import migrate as store_migrate
from dbembed.store.connection import forget_migrated, open_connection, open_pool


def floats(value: Any) -> list[float]:
    """A pgvector value as loaded with the types registered (unregistered, it is a str)."""
    assert not isinstance(value, str), "pgvector types are not registered on this connection"
    return [float(x) for x in (value.to_list() if hasattr(value, "to_list") else value)]


@pytest.fixture()
def migrate_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every real migration this process runs (the real ``migrate`` still runs)."""
    calls: list[str] = []
    real = store_migrate.migrate

    def counting(conn: Any) -> list[int]:
        calls.append(getattr(conn, "is_data_api", False) and "dataapi" or conn.info.dbname)
        return real(conn)

    monkeypatch.setattr(store_migrate, "migrate", counting)
    return calls


def test_open_connection_migrates_once_and_registers_vector(settings: Any, migrate_calls: list[str]) -> None:
    with open_connection(settings) as conn:
        assert conn.execute("SELECT to_regclass('dbembed.schema_migrations') IS NOT NULL").fetchone() == (True,)
        assert floats(conn.execute("SELECT '[1,2,3]'::vector").fetchone()[0]) == [1.0, 2.0, 3.0]
        assert conn.autocommit
    with open_connection(settings) as conn:  # the same database again: no second migration
        assert conn.execute("SELECT count(*) FROM dbembed.schema_migrations").fetchone()[0] >= 5
    assert len(migrate_calls) == 1
    forget_migrated()
    open_connection(settings).close()
    assert len(migrate_calls) == 2


def test_open_connection_is_safe_to_call_from_many_threads(settings: Any, migrate_calls: list[str]) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with open_connection(settings) as conn:
                assert floats(conn.execute("SELECT '[1]'::vector").fetchone()[0]) == [1.0]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(migrate_calls) == 1


def test_open_connection_keys_by_database(settings: Any, database_url: str, pg_server: Any,
                                          migrate_calls: list[str]) -> None:  # fmt: skip
    import uuid

    import psycopg

    other = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{other}"')
    try:
        open_connection(settings).close()
        open_connection(settings.model_copy(update={"database_url": pg_server.get_uri(database=other)})).close()
        assert migrate_calls == [psycopg.conninfo.conninfo_to_dict(database_url)["dbname"], other]
    finally:
        with psycopg.connect(pg_server.get_uri(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')


def test_open_connection_closes_on_a_failed_migration(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Any] = []
    real_connect = store_connection.connect

    def tracking(*args: Any, **kwargs: Any) -> Any:
        opened.append(real_connect(*args, **kwargs))
        return opened[-1]

    def broken(conn: Any) -> list[int]:
        raise RuntimeError("migration failed")

    monkeypatch.setattr(store_connection, "connect", tracking)
    monkeypatch.setattr(store_migrate, "migrate", broken)
    with pytest.raises(RuntimeError, match="migration failed"):
        open_connection(settings)
    assert opened and opened[0].closed


def test_open_pool_gives_ready_connections(settings: Any, migrate_calls: list[str]) -> None:
    pool = open_pool(settings, max_size=2)
    try:
        with pool.connection() as conn:
            assert conn.autocommit
            assert floats(conn.execute("SELECT '[4,5]'::vector").fetchone()[0]) == [4.0, 5.0]
            assert conn.execute("SELECT count(*) FROM dbembed.schema_migrations").fetchone()[0] >= 5
    finally:
        pool.close()
    assert len(migrate_calls) == 1


def test_open_connection_over_the_data_api(settings: Any, dataapi: Any, migrate_calls: list[str]) -> None:
    from dbembed.errors import UsageError
    from tests.conftest import dataapi_url

    da = settings.model_copy(
        update={"database_url": dataapi_url(settings.database_url), "rds_data_endpoint_url": dataapi.url}
    )
    with open_connection(da) as conn:
        assert conn.is_data_api
        assert conn.execute("SELECT count(*) FROM dbembed.schema_migrations").fetchone()[0] >= 5
    open_connection(da).close()
    assert migrate_calls == ["dataapi"]
    with pytest.raises(UsageError):
        open_pool(da)


def _hold_every_slot(url: str) -> list[Any]:
    """Open connections until the server refuses more (max_connections exhausted, superuser slots too)."""
    import psycopg

    held: list[Any] = []
    try:
        while len(held) < 1000:
            held.append(psycopg.connect(url, autocommit=True))
    except psycopg.OperationalError:
        pass
    return held


def test_too_many_clients_is_waited_out(settings: Any, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """"too many clients" (SQLSTATE 53300) at connect is transient: retried with backoff within the
    connect-wait budget until a slot frees up, instead of failing at once."""
    import logging
    import time

    import psycopg

    from dbembed.store.connection import connect
    from dbembed.store.wait_for_server import is_transient, refusal_sqlstate

    caplog.set_level(logging.WARNING, logger="dbembed.store.wait_for_server")
    held = _hold_every_slot(database_url)
    try:
        assert len(held) >= 10
        with pytest.raises(psycopg.OperationalError) as refused:
            psycopg.connect(database_url)
        assert refusal_sqlstate(database_url) == "53300"
        assert is_transient(refused.value, database_url)
        releaser = threading.Timer(1.0, lambda: [c.close() for c in held])
        releaser.start()
        start = time.monotonic()
        conn = connect(settings.model_copy(update={"db_resume_wait_s": 20}), register_vector=False)
        waited = time.monotonic() - start
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.close()
        releaser.join()
    finally:
        for c in held:
            c.close()
    assert 0.9 <= waited < 15
    assert [r for r in caplog.records if "not ready" in r.getMessage()]


def test_a_refusal_that_waiting_cannot_fix_still_fails_at_once(database_url: str) -> None:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from dbembed.store.wait_for_server import is_transient, refusal_sqlstate

    unknown = make_conninfo(**{**conninfo_to_dict(database_url), "dbname": "no_such_database"})
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(unknown)
    assert refusal_sqlstate(unknown) == "3D000"
    assert not is_transient(refused.value, unknown)
    assert refusal_sqlstate(database_url) == ""  # it lets us in: whatever refused us has passed
