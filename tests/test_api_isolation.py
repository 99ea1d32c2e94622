"""Isolation suite: a caller never reaches another user's (or tenant's) chats or memory.

User A guesses user B's chat ids, theme names and memory ids through every endpoint;
hostile strings go into every parameter; and row-level security is shown to hide
other users' rows from a query that forgets its user filter.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from dbembed.chat import Actor
from dbembed.store.scope import scoped
from tests.test_api import ApiEnv, api_env  # noqa: F401 - fixture

SECRET = "bob's bank PIN is 4711 and his theme is classified"
THEME = "classified-theme"


def _seed(env: ApiEnv) -> dict[str, Any]:
    c = env.client
    keys = {
        "alice": env.key("t1", "alice"),
        "bob": env.key("t1", "bob"),
        "bob_t2": env.key("t2", "bob"),  # same user id, other tenant
        "svc_t2": env.key("t2"),
    }
    for chat in (1, 2):
        r = c.post(f"/v1/chats/{chat}/turns", headers=keys["bob"],
                   json={"user_input": SECRET, "bot_response": "noted", "theme": THEME})  # fmt: skip
        assert r.status_code == 201
    c.post("/v1/chats/9/turns", headers=keys["alice"], json={"user_input": "alice's own note about tea"})
    env.sync()
    bob_mem = c.get("/v1/memory/search", headers=keys["bob"], params={"q": "PIN"}).json()["items"]
    assert len(bob_mem) == 2
    return {"keys": keys, "bob_memory_ids": [m["id"] for m in bob_mem]}


def _bob_intact(env: ApiEnv, keys: dict[str, dict[str, str]]) -> None:
    turns = env.client.get("/v1/chats/1/turns", headers=keys["bob"]).json()["items"]
    assert [t["user_input"] for t in turns] == [SECRET]
    assert (
        len(env.client.get("/v1/memory/search", headers=keys["bob"], params={"q": "PIN"}).json()["items"])
        == 2
    )


def test_user_a_cannot_reach_user_b_through_any_endpoint(api_env: ApiEnv) -> None:  # noqa: F811
    seeded = _seed(api_env)
    keys, c = seeded["keys"], api_env.client
    for who in ("alice", "bob_t2", "svc_t2"):
        h = dict(keys[who])
        if who == "svc_t2":
            h["X-Dbembed-User"] = "bob"  # t2's service key names "bob": t2's bob, not t1's
        for chat in (1, 2):
            assert c.get(f"/v1/chats/{chat}/turns", headers=h).json()["items"] == []
        assert c.get("/v1/chats", headers=h, params={"theme": THEME}).json()["items"] == []
        assert all(ch["theme"] != THEME for ch in c.get("/v1/chats", headers=h).json()["items"])
        for params in ({"q": "bank PIN"}, {"q": "bank PIN", "theme": THEME}, {"q": SECRET, "k": 100}):
            items = c.get("/v1/memory/search", headers=h, params=params).json()["items"]
            assert all("PIN" not in m["summary"] for m in items)
        for mid in seeded["bob_memory_ids"]:
            r = c.get(f"/v1/memory/{mid}", headers=h)
            assert r.status_code == 404 and "PIN" not in r.text
        assert c.delete("/v1/chats/1", headers=h).json() == {"turns_deleted": 0, "memories_deleted": 0}
        # Writing "into" bob's chat 1 creates the caller's own chat 1.
        assert c.post("/v1/chats/1/turns", headers=h, json={"user_input": "mine"}).json()["turn_no"] == 0
        c.delete("/v1/me", headers=h)
        _bob_intact(api_env, keys)
    # A user key cannot switch user, even within its tenant.
    r = c.get("/v1/chats/1/turns", headers={**keys["alice"], "X-Dbembed-User": "bob"})
    assert r.status_code == 403 and "PIN" not in r.text


HOSTILE = [
    "' OR '1'='1",
    "1; DROP TABLE dbembed.chat_turns; --",
    "bob' --",
    "%",
    "_",
    "\\",
    "*",
    "') UNION SELECT user_input, bot_response FROM dbembed.chat_turns --",
    "$$; DELETE FROM dbembed.api_keys; $$",
    "current_setting('dbembed.user_id')",
    "🙂 日本語 テーマ",
    "x" * 5000,
]


def test_hostile_strings_in_every_parameter(api_env: ApiEnv) -> None:  # noqa: F811
    keys = _seed(api_env)["keys"]
    svc = api_env.key("t1")
    for bad in HOSTILE:
        _hostile(api_env, keys, svc, bad)
    _bob_intact(api_env, keys)
    assert api_env.store.conn.execute("SELECT count(*) FROM dbembed.api_keys").fetchone()[0] == 5
    assert api_env.store.conn.execute("SELECT count(*) FROM dbembed.chat_turns").fetchone()[0] == 3 + len(
        HOSTILE
    )


def _hostile(api_env: ApiEnv, keys: dict[str, dict[str, str]], svc: dict[str, str], bad: str) -> None:  # noqa: F811
    c = api_env.client
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("get", "/v1/chats", {"params": {"theme": bad}}),
        ("get", "/v1/chats", {"params": {"cursor": bad}}),
        ("get", "/v1/chats/1/turns", {"params": {"cursor": bad}}),
        ("get", "/v1/memory/search", {"params": {"q": bad}}),
        ("get", "/v1/memory/search", {"params": {"q": "PIN", "theme": bad}}),
        ("get", "/v1/memory/search", {"params": {"q": "PIN", "since": bad}}),
        ("get", f"/v1/chats/{bad}/turns", {}),
        ("get", f"/v1/memory/{bad}", {}),
        ("delete", f"/v1/chats/{bad}", {}),
        ("post", "/v1/chats/3/turns", {"json": {"user_input": bad, "bot_response": bad, "theme": bad[:512]}}),
        ("get", "/v1/search", {"params": {"q": bad, "file": bad, "table": bad}}),
        ("get", "/v1/files", {"params": {"status": bad, "cursor": bad}}),
    ]
    for method, path, kw in requests:
        r = getattr(c, method)(path, headers=keys["alice"], **kw)
        assert r.status_code < 500 or r.status_code == 503, (path, r.status_code, r.text)
        assert "PIN" not in r.text, path
    # The hostile string as the user id of a tenant service key, and as a token.
    for headers in ({**svc, "X-Dbembed-User": bad.encode("utf-8")}, {"X-API-Key": bad.encode("utf-8")}):
        r = c.get("/v1/memory/search", headers=headers, params={"q": "PIN"})
        assert r.status_code in (200, 400, 401) and "PIN" not in r.text, (bad, r.text)


def test_rls_hides_other_users_from_a_query_without_user_filter(api_env: ApiEnv) -> None:  # noqa: F811
    _seed(api_env)
    conn = api_env.store.conn
    mem_table = api_env.store._memory(create=False).table.as_string(conn)
    everything = conn.execute("SELECT count(*) FROM dbembed.chat_turns").fetchone()[0]
    assert everything == 3  # the owner (superuser here) sees all: the checks below are not vacuous
    alice = Actor("alice", "t1")
    with scoped(conn, alice, rls=True):
        assert conn.execute("SELECT current_user").fetchone()[0] == "dbembed_app"
        rows = conn.execute(
            "SELECT user_id, user_input FROM dbembed.chat_turns"
        ).fetchall()  # no WHERE at all
        assert rows == [("alice", "alice's own note about tea")]
        users = conn.execute(f"SELECT DISTINCT user_id FROM {mem_table}").fetchall()
        assert users == [("alice",)]
        assert (
            conn.execute("UPDATE dbembed.chat_turns SET user_input = 'pwned'").rowcount == 1
        )  # only alice's
        assert conn.execute(f"DELETE FROM {mem_table}").rowcount == 1
    # Writing a row for another user is refused by the policy's WITH CHECK.
    with pytest.raises(psycopg.errors.InsufficientPrivilege), scoped(conn, alice, rls=True):
        conn.execute(
            "INSERT INTO dbembed.chat_turns (tenant_id, user_id, chat_id, turn_no) VALUES ('t1', 'bob', 77, 0)"
        )
    # Without any user set, the app role sees nothing; and it cannot read API keys at all.
    with conn.transaction():
        conn.execute("SET LOCAL ROLE dbembed_app")
        assert conn.execute("SELECT count(*) FROM dbembed.chat_turns").fetchone()[0] == 0
        assert conn.execute(f"SELECT count(*) FROM {mem_table}").fetchone()[0] == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
        conn.execute("SET LOCAL ROLE dbembed_app")
        conn.execute("SELECT * FROM dbembed.api_keys")
    role = conn.execute(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'dbembed_app'"
    ).fetchone()
    assert role == (False, False)
    assert conn.execute(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'dbembed.chat_turns'::regclass"
    ).fetchone() == (True, True)
    assert (
        conn.execute("SELECT count(*) FROM dbembed.chat_turns WHERE user_input = 'pwned'").fetchone()[0] == 1
    )
    assert conn.execute("SELECT count(*) FROM dbembed.chat_turns WHERE user_id = 'bob'").fetchone()[0] == 2
