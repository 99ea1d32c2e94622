"""The RDS Data API transport through real boto3 against the Data API stand-in (tests/fake_dataapi.py).

The chat store and API suites run over both transports (``serving_settings`` in conftest);
this module covers what is particular to the Data API: the wire translation, identical
results across transports on one database, Aurora's resume phase, the size limits,
transaction expiry, the error mapping, the indexing guard and the Lambda handler.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
import pytest

from dbembed.chat import Actor, open_store
from dbembed.errors import ConfigError, DatabaseUnavailable, UsageError
from dbembed.store import dataapi, dataapi_sql
from dbembed.store.connection import connect
from tests.conftest import CLUSTER_ARN, SECRET_ARN, dataapi_url
from tests.fake_dataapi import FakeDataApi

ALICE, BOB = Actor("alice"), Actor("bob", "t2")


def _da_settings(settings: Any, api: FakeDataApi, **extra: Any) -> Any:
    update = {"database_url": dataapi_url(settings.database_url), "rds_data_endpoint_url": api.url}
    return settings.model_copy(update=update | extra)


# -- wire translation (no server) ------------------------------------------------------------
def test_translate_placeholders_and_typed_values() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    sql, params = dataapi_sql.translate(
        "SELECT %(a)s, %(a)s, %(v)s::halfvec, %(t)s, %(n)s, %(d)s, %(ids)s, '100%%'",
        {"a": "x", "v": np.array([0.5, -1.25], dtype=np.float32), "t": when, "n": None, "d": Decimal("1.50"),
         "ids": [1, 2]},
    )  # fmt: skip
    assert sql == (
        "SELECT :a, :a, CAST(:v AS vector)::halfvec, CAST(:t AS timestamptz), :n, :d, CAST(:ids AS bigint[]), '100%'"
    )
    by = {p["name"]: p for p in params}
    assert by["a"]["value"] == {"stringValue": "x"} and len(params) == 6
    assert by["v"]["value"] == {"stringValue": "[0.5,-1.25]"}
    assert by["t"]["value"] == {"stringValue": "2026-01-02T03:04:05.678901+00:00"}
    assert by["n"]["value"] == {"isNull": True}
    assert by["d"] == {"name": "d", "value": {"stringValue": "1.50"}, "typeHint": "DECIMAL"}
    assert by["ids"]["value"] == {"stringValue": "{1,2}"}
    sql, params = dataapi_sql.translate("SELECT %s, %s", (7, True))
    assert sql == "SELECT :p1, :p2" and [p["value"] for p in params] == [
        {"longValue": 7},
        {"booleanValue": True},
    ]
    with pytest.raises(dataapi_sql.UnsupportedValue, match="2 placeholders but 3"):
        dataapi_sql.translate("SELECT %s, %s", (1, 2, 3))
    with pytest.raises(dataapi_sql.UnsupportedValue, match="object"):
        dataapi_sql.translate("SELECT %s", (object(),))


def test_split_statements_respects_quotes_dollar_bodies_and_comments() -> None:
    script = """-- a comment; with a semicolon
    CREATE TABLE a (x text DEFAULT 'it''s; fine');
    CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$;
    /* block; comment */ SELECT "odd;name" FROM a;
    -- trailing comment only"""
    parts = dataapi_sql.split_statements(script)
    assert len(parts) == 3
    assert parts[1].startswith("CREATE FUNCTION") and parts[1].endswith("$body$")
    assert parts[2].endswith('SELECT "odd;name" FROM a')


def test_url_parsing_and_clear_config_errors(settings) -> None:  # noqa: ANN001
    t = dataapi.parse_url(f"rds-data://{CLUSTER_ARN}/chat?secret_arn={SECRET_ARN}")
    assert (t.resource_arn, t.database, t.secret_arn, t.region) == (
        CLUSTER_ARN,
        "chat",
        SECRET_ARN,
        "eu-west-1",
    )
    with pytest.raises(ConfigError, match="secret_arn"):
        dataapi.parse_url(f"rds-data://{CLUSTER_ARN}/chat")
    assert dataapi.parse_url(f"rds-data://{CLUSTER_ARN}/chat", settings.store.model_copy(
        update={"db_secret_id": SECRET_ARN})).secret_arn == SECRET_ARN  # fmt: skip
    with pytest.raises(ConfigError, match="must look like"):
        dataapi.parse_url("rds-data://my-cluster/chat?secret_arn=x")


# -- one database, two transports -------------------------------------------------------------
def test_both_transports_return_identical_results(settings, dataapi, minilm) -> None:  # noqa: ANN001
    da = _da_settings(settings, dataapi)
    with open_store(settings) as direct, open_store(da) as remote:
        direct._provider = remote._provider = minilm
        for i in range(4):
            direct.add_turn(ALICE, 1, f"question {i} about Kyoto temples", f"answer {i}", theme="travel")
        remote.add_turn(ALICE, 2, "How do I bake sourdough bread?", "Feed the starter.", theme="food")
        remote.add_turn(BOB, 1, "My cat is named Miso", "Nice name!")
        remote.add_turn(ALICE, 3, "old", "x", created_at=datetime.now(UTC) - timedelta(days=3))
        assert remote.sync().memories_written == 7  # memory write over the Data API (BatchExecute)
        for store_a, store_b in ((direct, remote), (remote, direct)):
            assert store_a.list_turns(ALICE, 1, limit=3) == store_b.list_turns(ALICE, 1, limit=3)
            page = store_a.list_turns(ALICE, 1, limit=3)
            assert store_b.list_turns(ALICE, 1, limit=3, cursor=page.next_cursor).items[0].turn_no == 0
            assert store_a.list_chats(ALICE, limit=2) == store_b.list_chats(ALICE, limit=2)
            since = datetime.now(UTC) - timedelta(days=1)
            hits = store_a.search(ALICE, "temples in Japan", k=5, since=since)
            assert hits == store_b.search(ALICE, "temples in Japan", k=5, since=since) and len(hits) == 5
            assert store_a.get_memory(ALICE, hits[0].id) == store_b.get_memory(ALICE, hits[0].id)
            assert store_a.search(BOB, "pets") == store_b.search(BOB, "pets")
        assert remote.conn.calls > 0 and dataapi.calls["/BatchExecute"] >= 1
        assert remote.delete_chat(ALICE, 2) == {"turns_deleted": 1, "memories_deleted": 1}
        assert direct.list_chats(ALICE).items == remote.list_chats(ALICE).items


def test_migrations_run_statement_by_statement_over_the_data_api(settings, dataapi) -> None:  # noqa: ANN001
    from dbembed.store.migrate import available_migrations, current_version, migrate

    with connect(_da_settings(settings, dataapi)) as conn:
        migrate(conn)
        assert current_version(conn) == max(m.version for m in available_migrations())
    assert dataapi.calls["/BeginTransaction"] >= 1 and dataapi.calls["/CommitTransaction"] >= 1
    assert all(len(dataapi_sql.split_statements(s)) <= 1 for s in dataapi.statements)  # one per call
    with psycopg.connect(settings.database_url) as direct:
        assert current_version(direct) == max(m.version for m in available_migrations())


# -- Aurora realities ---------------------------------------------------------------------------
def test_resuming_cluster_is_waited_out_then_gives_up_clearly(settings, dataapi) -> None:  # noqa: ANN001
    waits: list[float] = []
    dataapi.resuming_calls = 3
    conn = connect(_da_settings(settings, dataapi, db_resume_wait_s=60))
    conn._sleep = waits.append
    assert conn.execute("SELECT 40 + 2").fetchone() == (42,)
    assert len(waits) == 3  # 1 s doubling, with +-20 % jitter
    assert 0.8 <= waits[0] <= 1.2 and 1.6 <= waits[1] <= 2.4 and 3.2 <= waits[2] <= 4.8
    dataapi.resuming_calls = 100
    conn = connect(_da_settings(settings, dataapi, db_resume_wait_s=0))
    with pytest.raises(DatabaseUnavailable, match="still resuming"):
        conn.execute("SELECT 1")


def test_resuming_cluster_through_the_api_is_503_then_recovers(settings, dataapi, minilm) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from dbembed.api.app import create_app
    from dbembed.store.api_keys import create_key

    with open_store(settings) as owner:
        _, token = create_key(owner.conn, "t1", "carol")
    app = create_app(_da_settings(settings, dataapi, db_resume_wait_s=0))
    h = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as c:
        dataapi.resuming_calls = 10**6
        r = c.get("/v1/chats", headers=h)
        assert r.status_code == 503 and "resuming" in r.json()["error"]
        dataapi.resuming_calls = 0
        assert c.post("/v1/chats/1/turns", headers=h, json={"user_input": "hi"}).status_code == 201
        assert (
            c.post("/v1/chats/1/turns", headers=h, json={"user_input": "x", "turn_no": 0}).status_code == 409
        )


def test_large_results_are_paged_and_oversized_rows_named(settings, dataapi) -> None:  # noqa: ANN001
    q = "SELECT g, repeat('x', 1000) || g FROM generate_series(1, 3000) g ORDER BY g"
    with psycopg.connect(settings.database_url) as direct:
        expected = direct.execute(q).fetchall()
    conn = connect(_da_settings(settings, dataapi))
    assert conn.execute(q).fetchall() == expected  # ~3 MB: more than one 1 MiB response
    assert dataapi.calls["/Execute"] > 3
    row = conn.execute(
        "SELECT ARRAY[1, 2]::int8[], ARRAY['a', 'b'], 2.5::numeric, '{\"k\": [1]}'::jsonb, now(), true, NULL::text"
    ).fetchone()
    with psycopg.connect(settings.database_url) as direct:
        assert (
            row
            == direct.execute(
                "SELECT ARRAY[1, 2]::int8[], ARRAY['a', 'b'], 2.5::numeric, '{\"k\": [1]}'::jsonb, %s, true, NULL::text",
                (row[4],),
            ).fetchone()
        )
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="64 KB per row"):
        conn.execute("SELECT repeat('y', 70000)")


def test_executemany_is_split_under_the_request_limit(settings, dataapi) -> None:  # noqa: ANN001
    conn = connect(_da_settings(settings, dataapi))
    conn.execute("CREATE TABLE big (id bigint PRIMARY KEY, body text, at timestamptz, meta jsonb)")
    now = datetime.now(UTC)
    rows = [(i, "z" * 20_000, now if i % 2 else None, json.dumps({"i": i})) for i in range(400)]  # ~8 MB
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO big VALUES (%s, %s, %s, %s::jsonb)", rows)
    assert dataapi.calls["/BatchExecute"] >= 3
    got = conn.execute("SELECT count(*), count(at), sum((meta->>'i')::int) FROM big").fetchone()
    assert got == (400, 200, sum(range(400)))


def test_errors_keep_their_sqlstate_and_transactions_expire(settings, dataapi) -> None:  # noqa: ANN001
    conn = connect(_da_settings(settings, dataapi))
    conn.execute("CREATE TABLE u (id int PRIMARY KEY)")
    conn.execute("INSERT INTO u VALUES (%s)", (1,))
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO u VALUES (%s)", (1,))
    with pytest.raises(psycopg.errors.SyntaxError):
        conn.execute("SELEC 1")
    with pytest.raises(psycopg.errors.UndefinedTable), conn.transaction():
        conn.execute("INSERT INTO u VALUES (2)")
        conn.execute("SELECT * FROM missing")
    assert conn.execute("SELECT count(*) FROM u").fetchone() == (1,)  # rolled back
    dataapi.tx_timeout_s = 0.0
    with pytest.raises(psycopg.OperationalError, match="three minutes"), conn.transaction():
        conn.execute("INSERT INTO u VALUES (3)")
    with pytest.raises(psycopg.NotSupportedError):
        conn.cursor(name="server_side")


def test_bad_credentials_or_cluster_are_database_unavailable(settings, dataapi) -> None:  # noqa: ANN001
    s = _da_settings(settings, dataapi)
    bad = s.model_copy(
        update={
            "database_url": s.database_url.replace("secret_arn=arn:aws:secretsmanager", "secret_arn=nope")
        }
    )
    with pytest.raises(psycopg.DatabaseError):  # the stand-in answers BadRequest without SQLSTATE
        connect(bad).execute("SELECT 1")
    gone = s.model_copy(update={"rds_data_endpoint_url": "http://127.0.0.1:9"})
    with pytest.raises(DatabaseUnavailable, match="rds-data|Could not connect|127.0.0.1"):
        connect(gone.model_copy(update={"request_timeout_s": 1.0})).execute("SELECT 1")


# -- surfaces ------------------------------------------------------------------------------------
def test_indexing_refuses_a_data_api_url_with_exit_2(settings, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from dbembed import index
    from dbembed.cli.main import app

    url = dataapi_url(settings.database_url)
    with pytest.raises(UsageError, match="postgresql://"):
        index([tmp_path], settings=settings.model_copy(update={"database_url": url}))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["run", str(tmp_path), "--database-url", url])
    assert res.exit_code == 2, res.output
    assert "postgresql://" in res.output and "Data API" in res.output


def test_lambda_handler_over_the_data_api(settings, dataapi, minilm, monkeypatch) -> None:  # noqa: ANN001
    import dbembed.api.lambda_handler as lh
    from dbembed.store.api_keys import create_key
    from tests.test_api_lambda import _event

    with open_store(settings) as owner:
        _, token = create_key(owner.conn, "t1", "carol")
    monkeypatch.setenv("DBEMBED_DATABASE_URL", dataapi_url(settings.database_url))
    monkeypatch.setenv("DBEMBED_RDS_DATA_ENDPOINT_URL", dataapi.url)
    monkeypatch.setenv("DBEMBED_DATA_DIR", str(settings.data_dir))
    monkeypatch.setattr(lh, "_handler", None)
    dataapi.resuming_calls = 1  # the first invocation after an auto-pause
    before = sum(dataapi.calls.values())
    out = lh.handler(
        _event("POST", "/v1/chats/3/turns", token, {"user_input": "hello over the Data API"}), None
    )
    assert out["statusCode"] == 201, out
    out = lh.handler(_event("GET", "/v1/chats/3/turns", token, query="limit=5"), None)
    assert [t["user_input"] for t in json.loads(out["body"])["items"]] == ["hello over the Data API"]
    assert lh.handler(_event("GET", "/v1/chats", "dbe_bad"), None)["statusCode"] == 401
    assert sum(dataapi.calls.values()) > before  # it went through the stand-in, not a pool
    assert lh._handler.app.state.dbembed.service._pool is None


def test_cli_keys_and_status_over_the_data_api(settings, dataapi, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from dbembed.cli.main import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DBEMBED_RDS_DATA_ENDPOINT_URL", dataapi.url)
    url = dataapi_url(settings.database_url)
    res = CliRunner().invoke(app, ["keys", "create", "--tenant", "acme", "--user", "alice", "--database-url", url,
                                   "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["tenant_id"] == "acme"
    res = CliRunner().invoke(app, ["status", "--database-url", url, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["collections"] == []
    with psycopg.connect(settings.database_url) as direct:
        assert direct.execute("SELECT tenant_id, user_id FROM dbembed.api_keys").fetchall() == [
            ("acme", "alice")
        ]
    assert dataapi.calls["/Execute"] > 0


def test_concurrent_requests_over_the_data_api(settings, dataapi, minilm) -> None:  # noqa: ANN001
    """8 threads, each with its own Data API connection (as API requests have), write and read at once."""
    from concurrent.futures import ThreadPoolExecutor

    from dbembed.chat import ChatStore
    from dbembed.store.dataapi import connect_data_api

    da = _da_settings(settings, dataapi)
    with open_store(da):
        pass  # migrated

    def worker(n: int) -> list[int]:
        conn = connect_data_api(da.store)
        store = ChatStore(conn, da, rls=True, provider=minilm)
        actor = Actor(f"user{n % 4}")
        for i in range(6):
            store.add_turn(actor, 100 + n, f"turn {i} of worker {n}", "ok")
            assert store.list_turns(actor, 100 + n, limit=50).items[0].turn_no == i
        return [t.turn_no for t in store.list_turns(actor, 100 + n, limit=50).items]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    assert results == [[5, 4, 3, 2, 1, 0]] * 8
    with psycopg.connect(settings.database_url) as direct:
        assert direct.execute("SELECT count(*) FROM dbembed.chat_turns").fetchone() == (48,)
