"""API keys and paging cursors at the store layer (``dbembed.store.api_keys``, ``dbembed.store.paging``),
on the real embedded PostgreSQL: what the HTTP API, ``dbembed keys`` and the service all call."""

from __future__ import annotations

import hashlib

import psycopg
import pytest

from dbembed.errors import InvalidInput, NotFound
from dbembed.store import api_keys
from dbembed.store.migrate import migrate
from dbembed.store.paging import decode_cursor, encode_cursor
from dbembed.store.runs import runs_page


@pytest.fixture()
def conn(database_url: str):  # noqa: ANN201
    with psycopg.connect(database_url, autocommit=True) as c:
        migrate(c)
        yield c


def test_keys_round_trip_through_the_store(conn: psycopg.Connection) -> None:
    key, token = api_keys.create_key(conn, "t1", "Jose\u0301", "laptop")
    assert key.user_id == "José" and key.tenant_id == "t1" and key.name == "laptop"  # stored canonical (NFC/NFKC)
    assert token.startswith(f"dbe_{key.id}_")
    stored = conn.execute("SELECT secret_sha256 FROM dbembed.api_keys WHERE id = %s", (key.id,)).fetchone()
    assert stored == (hashlib.sha256(token.encode()).hexdigest(),)  # only the digest, never the token
    service_key, service_token = api_keys.create_key(conn, "t2")
    assert service_key.user_id is None

    assert api_keys.verify_token(conn, token) == key
    assert api_keys.verify_token(conn, token[:-1] + ("A" if token[-1] != "A" else "B")) is None  # wrong secret
    assert api_keys.verify_token(conn, "dbe_000000000000_" + "A" * 43) is None  # unknown id
    assert api_keys.verify_token(conn, "not a token") is None
    used = conn.execute("SELECT last_used_at FROM dbembed.api_keys WHERE id = %s", (key.id,)).fetchone()
    assert used is not None and used[0] is not None

    assert [k.id for k in api_keys.list_keys(conn)] == [key.id, service_key.id]
    assert [k.id for k in api_keys.list_keys(conn, "ｔ2")] == [service_key.id]  # tenant id normalised (NFKC)

    revoked = api_keys.revoke_key(conn, key.id)
    assert revoked.revoked_at is not None
    assert api_keys.revoke_key(conn, key.id).revoked_at == revoked.revoked_at  # idempotent: first time kept
    assert api_keys.verify_token(conn, token) is None
    assert api_keys.verify_token(conn, service_token) == service_key
    with pytest.raises(NotFound):
        api_keys.revoke_key(conn, "ffffffffffff")
    with pytest.raises(NotFound):
        api_keys.revoke_key(conn, "'; DROP TABLE dbembed.api_keys; --")


def test_bad_ids_are_refused_naming_the_field(conn: psycopg.Connection) -> None:
    with pytest.raises(InvalidInput, match="user id"):
        api_keys.create_key(conn, "t1", "caf\udce9")
    with pytest.raises(InvalidInput, match="tenant id"):
        api_keys.create_key(conn, "\x00")
    assert api_keys.list_keys(conn) == []


def test_cursors_round_trip_and_refuse_forgeries() -> None:
    assert decode_cursor(None, 1) is None
    assert decode_cursor(encode_cursor([2**63 - 1]), 1) == [2**63 - 1]
    assert decode_cursor(encode_cursor(["2026-11-30T12:00:00+00:00", 7]), 2, "ti") == ["2026-11-30T12:00:00+00:00", 7]
    for forged in ("!!", encode_cursor([2**63]), encode_cursor(["x"]), encode_cursor([1, 2]), "A" * 201):
        with pytest.raises(InvalidInput, match="invalid cursor"):
            decode_cursor(forged, 1)
    with pytest.raises(InvalidInput, match="invalid cursor"):  # a timestamp without a zone
        decode_cursor(encode_cursor(["2026-11-30T12:00:00", 7]), 2, "ti")


def test_runs_page_walks_every_run_once(conn: psycopg.Connection) -> None:
    cid = conn.execute(
        "INSERT INTO dbembed.collections (name, model, dimensions, vector_type) VALUES ('c', 'local:m', 3, 'vector') RETURNING id"
    ).fetchone()[0]
    ids = [
        conn.execute(
            "INSERT INTO dbembed.runs (collection_id, worker, roots) VALUES (%s, 'w', '{}') RETURNING id", (cid,)
        ).fetchone()[0]
        for _ in range(5)
    ]
    seen, cursor = [], None
    while True:
        page = runs_page(conn, 2, cursor)
        seen += [r["id"] for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(ids, reverse=True)
    with pytest.raises(InvalidInput):
        runs_page(conn, 2, "garbage!")


def test_service_key_operations_on_one_pool(settings) -> None:  # noqa: ANN001
    """``dbembed keys`` and the HTTP API's authentication go through these service methods."""
    from dbembed.service import Dbembed

    with Dbembed(settings, pooled=True) as service:
        key, token = service.create_key("t1", "alice", "ci")
        assert service.verify_key(token) == key
        assert [k.id for k in service.list_keys("t1")] == [key.id] and service.list_keys("t2") == []
        assert service.revoke_key(key.id).revoked_at is not None
        assert service.verify_key(token) is None
        service.ping()
        assert service.runs_page(5).items == [] and service.collections() == []
        assert service._pool is not None and service._pool.get_stats()["connections_num"] <= settings.api_db_pool_size
