"""The HTTP API over real HTTP semantics (FastAPI TestClient) on the real embedded PostgreSQL.

The ``api_env`` fixture defined here is imported by the other test_api*/test_web* modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dbembed.api.app import create_app
from dbembed.chat import ChatStore, open_store
from dbembed.store.api_keys import create_key, revoke_key


@dataclass
class ApiEnv:
    client: TestClient
    store: ChatStore  # owner connection: sync, seeding, checks

    def key(self, tenant: str = "t1", user: str | None = None) -> dict[str, str]:
        _, token = create_key(self.store.conn, tenant, user)
        return {"Authorization": f"Bearer {token}"}

    def sync(self) -> Any:
        return self.store.sync()


@pytest.fixture()
def api_env(serving_settings, settings, minilm) -> Iterator[ApiEnv]:  # noqa: ANN001
    """The app over each transport (psycopg pool; RDS Data API stand-in); seeding/sync as the owner."""
    import dbembed.service

    dbembed.service.default_providers.put(minilm)  # the file-index search reuses the loaded model
    app = create_app(serving_settings)
    app.state.dbembed.service.use_provider(minilm)
    with TestClient(app) as client, open_store(settings) as store:
        store._provider = minilm
        yield ApiEnv(client, store)


def test_health_metrics_openapi(api_env: ApiEnv) -> None:
    c = api_env.client
    assert c.get("/healthz").json() == {"status": "ok"}
    paths = c.get("/openapi.json").json()["paths"]
    for p in (
        "/v1/search",
        "/v1/files",
        "/v1/runs",
        "/v1/chats/{chat_id}/turns",
        "/v1/memory/search",
        "/v1/me",
    ):
        assert p in paths
    assert c.get("/docs").status_code == 200
    c.get("/v1/chats")  # 401, counted
    text = c.get("/metrics").text
    assert 'dbembed_http_requests_total{method="GET",route="/v1/chats",status="401"} 1' in text
    assert 'dbembed_http_request_duration_seconds_count{route="/healthz"} 1' in text
    assert "# TYPE dbembed_http_requests_total counter" in text


def test_auth_errors_and_revocation(api_env: ApiEnv) -> None:
    c = api_env.client
    assert c.get("/v1/chats").status_code == 401
    assert c.get("/v1/chats", headers={"Authorization": "Bearer nope"}).json()["error"].startswith("invalid")
    key, token = create_key(api_env.store.conn, "t1", "alice")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert c.get("/v1/chats", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert c.get("/v1/me", headers={"X-API-Key": token}).json() == {
        "tenant_id": "t1", "user_id": "alice", "key_id": key.id,
    }  # fmt: skip
    stored = api_env.store.conn.execute("SELECT secret_sha256 FROM dbembed.api_keys").fetchone()[0]
    assert token not in stored and len(stored) == 64
    revoke_key(api_env.store.conn, key.id)
    assert c.get("/v1/me", headers={"X-API-Key": token}).status_code == 401


def test_turns_memory_and_delete_through_api(api_env: ApiEnv) -> None:
    c, h = api_env.client, api_env.key(user="alice")
    r = c.post("/v1/chats/5/turns", headers=h, json={"user_input": "I love hiking in the Alps", "bot_response": "Nice!",
                                                     "theme": "outdoors"})  # fmt: skip
    assert r.status_code == 201 and r.json()["turn_no"] == 0 and r.json()["theme"] == "outdoors"
    for i in range(1, 4):
        assert (
            c.post("/v1/chats/5/turns", headers=h, json={"user_input": f"q{i}", "bot_response": "a"}).json()[
                "turn_no"
            ]
            == i
        )
    c.post(
        "/v1/chats/6/turns", headers=h, json={"user_input": "Recipe for ramen?", "bot_response": "Broth..."}
    )
    assert c.post("/v1/chats/5/turns", headers=h, json={"user_input": "x", "turn_no": 1}).status_code == 409

    page = c.get("/v1/chats/5/turns", headers=h, params={"limit": 3}).json()
    assert [t["turn_no"] for t in page["items"]] == [3, 2, 1]
    page2 = c.get("/v1/chats/5/turns", headers=h, params={"limit": 3, "cursor": page["next_cursor"]}).json()
    assert [t["turn_no"] for t in page2["items"]] == [0] and page2["next_cursor"] is None
    chats = c.get("/v1/chats", headers=h).json()["items"]
    assert [ch["chat_id"] for ch in chats] == [6, 5] and chats[1]["turns"] == 4

    api_env.sync()
    hits = c.get("/v1/memory/search", headers=h, params={"q": "mountain walking", "k": 2}).json()["items"]
    assert "hiking in the Alps" in hits[0]["summary"] and hits[0]["theme"] == "outdoors"
    one = c.get(f"/v1/memory/{hits[0]['id']}", headers=h).json()
    assert one["summary"] == hits[0]["summary"]
    only = c.get("/v1/memory/search", headers=h, params={"q": "food", "theme": "outdoors"}).json()["items"]
    assert {x["chat_id"] for x in only} == {5}
    # `since`/`until` take an age, like /v1/files?since= and `dbembed files --since`.
    recent = c.get("/v1/memory/search", headers=h, params={"q": "food", "since": "2h"})
    assert recent.status_code == 200 and recent.json()["items"], recent.text
    assert c.get("/v1/memory/search", headers=h, params={"q": "food", "until": "2h"}).json()["items"] == []
    assert c.get("/v1/memory/search", headers=h, params={"q": "food", "since": "2000-01-01T00:00Z"}).json()["items"]

    assert c.delete("/v1/chats/6", headers=h).json() == {"turns_deleted": 1, "memories_deleted": 1}
    assert c.delete("/v1/me", headers=h).json() == {"turns_deleted": 4, "memories_deleted": 4}
    assert c.get("/v1/chats", headers=h).json()["items"] == []
    assert c.get("/v1/memory/search", headers=h, params={"q": "hiking"}).json()["items"] == []
    assert 'dbembed_events_total{event="turns_written"} 5' in c.get("/metrics").text


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "message"),
    [
        ("get", "/v1/chats", {"params": {"limit": 201}}, 422, "query parameter limit: must be between 1 and 200 (got 201)"),
        ("get", "/v1/chats", {"params": {"limit": 0}}, 422, "query parameter limit: input should be greater than or equal to 1 (got '0')"),
        ("get", "/v1/memory/search", {"params": {"q": "x", "k": 101}}, 422, "query parameter k: must be between 1 and 100 (got 101)"),
        ("get", "/v1/memory/search", {"params": {"q": ""}}, 422, "query parameter q:"),
        (
            "get",
            "/v1/memory/search",
            {"params": {"q": "x", "since": "2030-01-01", "until": "2020-01-01"}},
            422,
            "query parameter since: must not be after until",
        ),
        ("get", "/v1/memory/search", {"params": {"q": "x", "since": "yesterday"}}, 422, "query parameter since: give an ISO 8601"),
        ("get", "/v1/chats/-1/turns", {}, 422, "chat_id"),
        ("get", "/v1/chats/99999999999999999999/turns", {}, 422, "chat_id"),
        ("get", "/v1/chats/abc/turns", {}, 422, "path parameter chat_id:"),
        ("get", "/v1/chats/1/turns", {"params": {"cursor": "garbage"}}, 422, "query parameter cursor: invalid cursor"),
        ("get", "/v1/memory/0", {}, 422, "memory_id"),
        ("post", "/v1/chats/1/turns", {"json": {"bot_response": "no input"}}, 422, "JSON field user_input: field required"),
        ("post", "/v1/chats/1/turns", {"json": {"user_input": "a", "theme": "t" * 513}}, 422, "JSON field theme: too long"),
        ("post", "/v1/chats/1/turns", {"json": {"user_input": "x" * 100_001}}, 422, "JSON field user_input: too long"),
        ("post", "/v1/chats/1/turns", {"json": {"user_input": "x", "turn_no": -3}}, 422, "JSON field turn_no:"),
        (
            "post",
            "/v1/chats/1/turns",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
            "JSON",
        ),
        ("post", "/v1/chats/1/turns", {"content": b"x" * 1_000_001}, 413, "too large"),
        ("get", "/v1/files", {"params": {"status": "weird"}}, 422, "query parameter status: must be one of"),
        ("get", "/v1/files", {"params": {"sort": "colour"}}, 422, "query parameter sort: must be one of"),
        ("get", "/v1/files", {"params": {"since": "soon"}}, 422, "query parameter since: give an ISO 8601"),
        ("get", "/v1/files", {"params": {"limit": 10**25}}, 422, "query parameter limit: must be between 1 and"),
        ("get", "/v1/files", {"params": {"cursor": "x"}}, 422, "query parameter cursor: invalid cursor"),
        ("get", "/v1/search", {"params": {"q": "x", "k": 0}}, 422, "query parameter k:"),
        ("get", "/v1/search", {"params": {"q": "x", "k": "1" * 26}}, 422, "query parameter k: must be between 1 and 100 (got 1111"),
        ("get", "/v1/search", {"params": {"q": "x", "mode": "fuzzy"}}, 422, "query parameter mode: input should be 'hybrid', 'vector' or 'lexical' (got 'fuzzy')"),
        ("get", "/v1/memory/search", {"params": {"q": "x", "mode": "fuzzy"}}, 422, "query parameter mode: input should be"),
        ("post", "/v1/search", {"json": {"q": "x", "k": 10**25}}, 422, "JSON field k: must be between 1 and 100 (got 1000"),
        ("post", "/v1/search", {"json": {"q": " \u200b "}}, 422, "JSON field q: must not be empty"),
        ("get", "/v1/search", {"params": {"q": " \u200b "}}, 422, "query parameter q: must not be empty"),
        ("get", "/v1/memory/search", {"params": {"q": "x", "until": "2x"}}, 422, "query parameter until: give an ISO 8601"),
        ("post", "/v1/chats/1/turns", {"content": b'{"user_input": "x", "turn_no": ' + b"7" * 5000 + b"}", "headers": {"content-type": "application/json"}}, 422, "request body: a JSON number has too many digits"),
        ("post", "/v1/chats/1/turns", {"content": b"hello", "headers": {"content-type": "text/plain"}}, 422, "request body: must be a JSON object sent with Content-Type: application/json"),
        ("post", "/v1/chats/1/turns", {"json": ["a"]}, 422, "request body: must be a JSON object (got an array)"),
    ],
)
def test_bad_input_gets_clear_4xx(
    api_env: ApiEnv, method: str, path: str, kwargs: dict[str, Any], status: int, message: str
) -> None:
    h = api_env.key(user="alice")
    kwargs = {**kwargs, "headers": {**h, **kwargs.get("headers", {})}}
    r = getattr(api_env.client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert message.lower() in r.json()["error"].lower()
    assert "sys." not in r.text and "b'" not in r.text and "^(" not in r.text  # no Python internals


def test_service_key_acts_for_named_users_of_its_tenant(api_env: ApiEnv) -> None:
    c, svc = api_env.client, api_env.key(tenant="t1")
    assert c.get("/v1/chats", headers=svc).status_code == 400  # must name the user
    c.post("/v1/chats/1/turns", headers={**svc, "X-Dbembed-User": "u1"}, json={"user_input": "from u1"})
    c.post("/v1/chats/1/turns", headers={**svc, "X-Dbembed-User": "u2"}, json={"user_input": "from u2"})
    turns = c.get("/v1/chats/1/turns", headers={**svc, "X-Dbembed-User": "u1"}).json()["items"]
    assert [t["user_input"] for t in turns] == ["from u1"]
    user_key = api_env.key(tenant="t1", user="u1")
    assert [t["user_input"] for t in c.get("/v1/chats/1/turns", headers=user_key).json()["items"]] == [
        "from u1"
    ]
    assert c.get("/v1/chats", headers={**user_key, "X-Dbembed-User": "u2"}).status_code == 403


def test_files_and_runs_status(api_env: ApiEnv) -> None:
    conn = api_env.store.conn
    cid = conn.execute(
        "INSERT INTO dbembed.collections (name, model, dimensions, vector_type) "
        "VALUES ('c', 'local:all-MiniLM-L6-v2', 384, 'halfvec') RETURNING id"
    ).fetchone()[0]
    run = conn.execute(
        "INSERT INTO dbembed.runs (collection_id, worker, status, files_ok) VALUES (%s, 'w1', 'ok', 3) RETURNING id",
        (cid,),
    ).fetchone()[0]
    for i, status in enumerate(["indexed", "failed", "indexed"]):
        conn.execute(
            "INSERT INTO dbembed.sources (collection_id, path, status, error, run_id) VALUES (%s, %s, %s, %s, %s)",
            (cid, f"/data/{i}.db", status, "not a database" if status == "failed" else None, run),
        )
    c, h = api_env.client, api_env.key(user="ops")
    conn.execute("UPDATE dbembed.sources SET rejected_rows = 4, rejected_chunks = 1 WHERE path = '/data/2.db'")
    page = c.get("/v1/files", headers=h, params={"limit": 2}).json()
    assert [f["path"] for f in page["items"]] == ["/data/0.db", "/data/1.db"] and page["next_cursor"]
    assert page["counts"] == {"indexed": 2, "failed": 1}
    rest = c.get("/v1/files", headers=h, params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [(f["path"], f["rejected_rows"], f["rejected_chunks"]) for f in rest["items"]] == [("/data/2.db", 4, 1)]
    assert rest["next_cursor"] is None
    failed = c.get("/v1/files", headers=h, params={"status": "failed"}).json()["items"]
    assert [(f["path"], f["error"], f["collection"]) for f in failed] == [
        ("/data/1.db", "not a database", "c")
    ]
    newest = c.get("/v1/files", headers=h, params={"sort": "path", "desc": "true", "glob": "*.db"}).json()
    assert [f["path"] for f in newest["items"]] == ["/data/2.db", "/data/1.db", "/data/0.db"]
    assert c.get("/v1/files", headers=h, params={"sort": "colour"}).status_code == 422
    assert c.get("/v1/files", headers=h, params={"since": "soon"}).status_code == 422
    assert c.get("/v1/files", headers=h, params={"cursor": "x"}).status_code == 422
    runs = c.get("/v1/runs", headers=h).json()["items"]
    assert [(r["id"], r["worker"], r["status"], r["files_ok"]) for r in runs] == [(run, "w1", "ok", 3)]
    assert c.get("/v1/files").status_code == 401


def test_file_index_search_with_filters(api_env: ApiEnv, tmp_path) -> None:  # noqa: ANN001
    import dbembed.service
    from tests.helpers import PLANTED, make_db, tickets_for

    tickets = tickets_for(1)
    tickets[3] = (4, "Damaged", PLANTED)
    make_db(tmp_path / "src" / "shop.db", tickets)
    make_db(tmp_path / "src" / "other.db", tickets_for(2))
    dbembed.index([tmp_path / "src"], settings=api_env.store.settings)
    c, h = api_env.client, api_env.key(user="alice")
    hits = c.get("/v1/search", headers=h, params={"q": "refund for a crushed parcel", "k": 3}).json()["items"]
    assert (
        hits[0]["path"].endswith("shop.db") and hits[0]["table"] == "tickets" and PLANTED in hits[0]["text"]
    )
    assert {"score", "row_key", "chunk_no"} <= set(hits[0])
    only = c.get("/v1/search", headers=h, params={"q": "refund", "file": str(tmp_path / "src" / "other.db")})
    assert only.status_code == 200 and {x["path"] for x in only.json()["items"]} == {
        str(tmp_path / "src" / "other.db")
    }
    none = c.get("/v1/search", headers=h, params={"q": "refund", "table": "no_such_table"}).json()["items"]
    assert none == []
    assert c.get("/v1/search", headers=h, params={"q": "refund", "k": 1000}).status_code == 422
    assert c.get("/v1/search", params={"q": "refund"}).status_code == 401
