"""Issue 10, the HTTP side: no bad input ever gets a 500 or a plain-text answer, an unexpected
exception is a logged JSON 500 with a request id, and the server stays correct under
concurrent requests (real app on uvicorn over loopback, embedded Postgres, real model)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from dbembed.api.app import create_app
from dbembed.store.api_keys import create_key
from tests.test_api import ApiEnv, api_env  # noqa: F401 - fixture

DEEP = b"[" * 100_000 + b"]" * 100_000

# (method, path, request kwargs): each one is bad input and must get a JSON 4xx.
HOSTILE: list[tuple[str, str, dict[str, Any]]] = [
    ("get", "/v1/chats/99999999999999999999999999/turns", {}),
    ("get", "/v1/chats/-5/turns", {}),
    ("get", "/v1/chats/1e3/turns", {}),
    ("get", "/v1/chats/NaN/turns", {}),
    ("delete", "/v1/chats/-1", {}),
    ("get", "/v1/memory/-7", {}),
    ("get", "/v1/memory/18446744073709551616", {}),
    ("get", "/v1/chats", {"params": {"limit": str(10**40)}}),
    ("get", "/v1/chats", {"params": {"limit": "-1"}}),
    ("get", "/v1/chats", {"params": {"limit": "NaN"}}),
    ("get", "/v1/chats", {"params": {"theme": "t" * 600}}),
    ("get", "/v1/chats", {"params": {"cursor": "\u00e9\u00e9\u00e9"}}),
    ("get", "/v1/chats/1/turns", {"params": {"cursor": "WzEsMiwzXQ"}}),  # a valid list, wrong arity
    ("get", "/v1/chats/1/turns", {"params": {"cursor": "WyJ4Il0"}}),  # ["x"]: not a number
    ("get", "/v1/memory/search", {"params": {"q": "x", "k": str(10**40)}}),
    ("get", "/v1/memory/search", {"params": {"q": "x", "k": "Infinity"}}),
    ("get", "/v1/memory/search", {"params": {"q": "\u200b\u2060\ufeff"}}),
    ("get", "/v1/memory/search", {"params": {"q": "x", "since": "2020-01-01T00:00:00", "until": "2019-01-01T00:00:00+00:00"}}),
    ("get", "/v1/memory/search", {"params": {"q": "x", "since": "2020-13-45"}}),
    ("get", "/v1/search", {"params": {"q": "x", "k": str(10**40)}}),
    ("get", "/v1/files", {"params": {"limit": str(10**40)}}),
    ("get", "/v1/files", {"params": {"cursor": "////"}}),
    ("get", "/v1/runs", {"params": {"cursor": "WyJ4Il0"}}),
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": "x", "turn_no": NaN}'}),
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": "x", "turn_no": Infinity}'}),
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": "x", "turn_no": -Infinity}'}),
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": "x", "turn_no": 1e999}'}),
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": "x", "turn_no": 1.5}'}),
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": "x", "turn_no": ' + b"9" * 5000 + b"}"}),
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": "x", "turn_no": 99999999999}'}),
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": 5}'}),
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": ["a"]}'}),
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": null}'}),
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": {"$gt": ""}}'}),
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": "x", "theme": 7}'}),
    ("post", "/v1/chats/1/turns", {"content": b"[]"}),
    ("post", "/v1/chats/1/turns", {"content": b"null"}),
    ("post", "/v1/chats/1/turns", {"content": b'"just a string"'}),
    ("post", "/v1/chats/1/turns", {"content": b""}),
    ("post", "/v1/chats/1/turns", {"content": DEEP}),
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": ' + DEEP + b"}"}),
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": "caf\xe9 \xff\xfe"}'}),  # not UTF-8
    ("post", "/v1/chats/1/turns", {"content": b"\xff\xfe{\x00}\x00"}),  # UTF-16 garbage
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": "x"}', "headers": {"content-type": "text/plain"}}),
    ("post", "/v1/chats/1/turns", {"content": b'{"user_input": "x"}', "headers": {"content-length": "-1"}}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "kwargs"), HOSTILE, ids=[f"{m} {p} {k}"[:90] for m, p, k in HOSTILE])
def test_hostile_input_gets_json_4xx(api_env: ApiEnv, method: str, path: str, kwargs: dict[str, Any]) -> None:  # noqa: F811
    headers = {**api_env.key(user="mallory"), "content-type": "application/json", **kwargs.get("headers", {})}
    r = api_env.client.request(method.upper(), path, headers=headers, content=kwargs.get("content"),
                               params=kwargs.get("params"))  # fmt: skip
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] and body["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer d\u00e9j\u00e0".encode()},
        {"Authorization": b"Bearer \xff\xfe"},
        {"X-API-Key": "\U0001f511".encode()},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer " + "x" * 8000},
    ],
)
def test_hostile_auth_headers_get_json_401(api_env: ApiEnv, headers: dict[str, Any]) -> None:  # noqa: F811
    r = api_env.client.get("/v1/chats", headers=headers)
    assert r.status_code == 401 and r.json()["error"], r.text


def test_unexpected_exception_is_a_logged_json_500_with_request_id(
    api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    from dbembed.chat.store import ChatStore

    def bug(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("secret internals")

    monkeypatch.setattr(ChatStore, "list_chats", bug)  # a bug of ours, in the middle of a request
    h = api_env.key(user="alice")
    with caplog.at_level(logging.ERROR, logger="dbembed.api"):
        r = api_env.client.get("/v1/chats", headers={**h, "X-Request-ID": "trace-42"})
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json() == {"error": r.json()["error"], "request_id": "trace-42"}
    assert "request id" in r.json()["error"] and "secret internals" not in r.text
    logged = [rec for rec in caplog.records if "trace-42" in rec.getMessage()]
    assert logged and logged[0].exc_info and logged[0].exc_info[0] is ZeroDivisionError
    assert 'route="/v1/chats",status="500"' in api_env.client.get("/metrics").text
    # A caller's request id is used only when it is a short token; otherwise one is made up.
    other = api_env.client.get("/v1/chats", headers={**h, "X-Request-ID": "bad id\u00e9".encode()})
    assert other.status_code == 500 and len(other.headers["x-request-id"]) == 32
    assert api_env.client.get("/healthz").headers["x-request-id"]


# -- property-based: arbitrary JSON for every field of a turn, arbitrary query strings ------------
# Text with lone surrogates now and then (hypothesis leaves them out by default), NUL, controls.
TEXT = st.text(st.characters() | st.integers(0xD800, 0xDFFF).map(chr) | st.sampled_from("\x00\u200b\ufeff"))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,  # floats include NaN/inf
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
URL_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)  # a URL cannot carry a lone surrogate


@hsettings(max_examples=150, deadline=None, database=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    body=st.fixed_dictionaries(
        {"user_input": TEXT | JSON_VALUES},
        optional={"bot_response": TEXT | JSON_VALUES, "theme": st.none() | TEXT | JSON_VALUES,
                  "turn_no": st.integers(-5, 2**40) | JSON_VALUES, "extra": JSON_VALUES},
    )
    | JSON_VALUES,
    chat=st.integers(min_value=-(2**70), max_value=2**70).map(str) | URL_TEXT,
    params=st.dictionaries(st.sampled_from(["q", "k", "theme", "since", "until", "limit", "cursor"]), URL_TEXT),
)
def test_fuzzed_requests_never_get_a_500(api_env: ApiEnv, body: Any, chat: str, params: dict[str, str]) -> None:  # noqa: F811
    c = api_env.client
    h = _key(api_env)
    raw = json.dumps(body, ensure_ascii=True).encode()  # lone surrogates travel as "\udXXX" escapes
    for r in (
        c.post(f"/v1/chats/{quote(chat, safe='') or 'x'}/turns", headers={**h, "content-type": "application/json"},
               content=raw),
        c.get("/v1/memory/search", headers=h, params={"q": "x", **params}),
        c.get("/v1/chats", headers=h, params=params),
        c.get("/v1/files", headers=h, params=params),
    ):  # fmt: skip
        assert r.status_code < 500, (r.request.url, raw[:200], r.status_code, r.text[:300])
        assert r.headers["content-type"] == "application/json", r.text[:200]


def _key(env: ApiEnv) -> dict[str, str]:
    cached = getattr(env, "_fuzz_key", None)
    if cached is None:
        cached = env.key(user="fuzz")
        env._fuzz_key = cached  # type: ignore[attr-defined]
    return cached


# -- concurrency: many request threads share the pool, the provider and its tokenizer ------------
@pytest.fixture()
def live_server(settings, minilm) -> Iterator[tuple[str, Any]]:  # noqa: ANN001
    """The real app on uvicorn over loopback (its own threadpool), with the session's model."""
    import uvicorn

    import dbembed.service

    dbembed.service.default_providers.put(minilm)
    app = create_app(settings.model_copy(update={"api_db_pool_size": 4}))
    app.state.dbembed.service.use_provider(minilm)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(30)


def test_concurrent_requests_share_pool_and_provider_safely(live_server: tuple[str, Any], settings, tmp_path) -> None:  # noqa: ANN001
    import dbembed.service
    from dbembed.chat import open_store
    from tests.helpers import PLANTED, make_db, tickets_for

    base, app = live_server
    tickets = tickets_for(1)
    tickets[3] = (4, "Damaged", PLANTED)
    make_db(tmp_path / "src" / "shop.db", tickets)
    dbembed.index([tmp_path / "src"], settings=settings)
    with open_store(settings) as store:
        _, token = create_key(store.conn, "t1")
        for user in range(8):
            store.add_turn(_actor(user), 1, f"user {user} keeps a {ANIMALS[user]} as a pet", "nice")
        store._provider = app.state.dbembed.service.provider_for()
        assert store.sync().memories_written == 8

    threads, rounds = 8, 6
    barrier = threading.Barrier(threads)
    failures: list[str] = []

    def worker(n: int) -> None:
        h = {"Authorization": f"Bearer {token}", "X-Dbembed-User": f"u{n}"}
        with httpx.Client(base_url=base, timeout=120) as c:
            barrier.wait()
            for i in range(rounds):
                checks = [
                    c.post("/v1/chats/2/turns", headers=h, json={"user_input": f"round {i}", "bot_response": "ok"}),
                    *(c.post("/v1/chats/3/turns", headers={**h, "X-Dbembed-User": "shared"},
                             json={"user_input": f"u{n} round {i}.{j}"}) for j in range(SHARED)),  # 8 writers, 1 chat
                    c.get("/v1/memory/search", headers=h, params={"q": f"my pet {ANIMALS[n]}", "k": 1}),
                    c.get("/v1/search", headers=h, params={"q": "refund for a crushed parcel", "k": 1}),
                ]  # fmt: skip
                for r in checks:
                    if r.status_code >= 300:
                        failures.append(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:200]}")
                hits = checks[-2].json().get("items") or [{}]
                if ANIMALS[n] not in hits[0].get("summary", ""):
                    failures.append(f"u{n} memory search: {checks[-2].text[:200]}")
                files = checks[-1].json().get("items") or [{}]
                if PLANTED not in files[0].get("text", ""):
                    failures.append(f"file search: {checks[-1].text[:200]}")

    assert httpx.get(base + "/healthz").json() == {"status": "ok"}  # the app's pool is open
    sessions_before = _sessions(settings.database_url)
    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(300)
    assert not failures, failures[:5]
    # 8 threads x 6 rounds x (2 searches + 9 writes) = 528 requests, 48 of them file searches: every one
    # ran on a connection of the app's pool (at most 4), none opened a connection of its own (the +1 is
    # the connection that took the first reading).
    opened = _sessions(settings.database_url) - sessions_before
    assert opened <= 4 + 1, f"{opened} database sessions opened for {threads * rounds} file searches"
    with httpx.Client(base_url=base) as c:
        h = {"Authorization": f"Bearer {token}"}
        for n in range(threads):
            turns = c.get("/v1/chats/2/turns", headers={**h, "X-Dbembed-User": f"u{n}"}).json()["items"]
            assert sorted(t["turn_no"] for t in turns) == list(range(rounds))
        numbers, cursor = [], None
        while True:
            page = c.get("/v1/chats/3/turns", headers={**h, "X-Dbembed-User": "shared"},
                         params={"limit": 200, **({"cursor": cursor} if cursor else {})}).json()  # fmt: skip
            numbers += [t["turn_no"] for t in page["items"]]
            if not (cursor := page["next_cursor"]):
                break
        assert sorted(numbers) == list(range(threads * rounds * SHARED))


def _sessions(database_url: str) -> int:
    """Sessions ever established to this database (``pg_stat_database.sessions``), once the
    closed ones have reported: a connection opened and closed per request shows here."""
    import psycopg

    time.sleep(0.5)  # a closing backend flushes its statistics on exit
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()").fetchone()
    assert row is not None
    return int(row[0])


SHARED = 8  # turns each thread writes per round into the one chat all threads share
ANIMALS = ["cat", "dog", "parrot", "hamster", "tortoise", "goldfish", "rabbit", "horse"]


def _actor(n: int) -> Any:
    from dbembed.chat import Actor

    return Actor(f"u{n}", "t1")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (DEEP, 422, "JSON nested too deeply"),
        (b'{"user_input": "caf\xe9"}', 422, "request body is not UTF-8 (byte 0xe9 at offset 19)"),
        (b'{"user_input": "x", "turn_no": ' + b"9" * 5000 + b"}", 422, "request body: a JSON number has too many digits (at most 4,300)"),
        (b"{bad", 422, "request body is not valid JSON"),
        (b'{"user_input": "x", "turn_no": NaN}', 422, "turn_no: Input should be a finite number"),
    ],
)
def test_body_errors_name_the_fault(api_env: ApiEnv, body: bytes, status: int, message: str) -> None:  # noqa: F811
    h = {**api_env.key(user="mallory"), "content-type": "application/json"}
    r = api_env.client.post("/v1/chats/1/turns", headers=h, content=body)
    assert r.status_code == status and message in r.json()["error"], r.text
