"""Issue 10, rows 5 and 6: chat input through the one text-hygiene boundary, and one user
identity across the CLI, the HTTP API, API keys and deletion (real app, embedded Postgres,
real model).

Row 5: lone UTF-16 surrogates in JSON turns (an emoji cut in half, a JavaScript "\\udXXX"
escape) and non-UTF-8 bytes on the command line used to give HTTP 500 plain text and CLI
exit 3.  Row 6: ``José`` written by the CLI and by the API (header bytes read as Latin-1)
became two users, so José's own key + header got 403 and ``delete-user`` left rows behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from dbembed.chat import Actor
from dbembed.cli.main import app
from tests.test_api import ApiEnv, api_env  # noqa: F401 - fixture

runner = CliRunner()
FFFD = "\ufffd"

# The exact JSON body bytes a client sends; escapes kept as written (as in
# shared/cases/chat_lone_surrogates.py): (case, chat id, body bytes).
SURROGATE_BODIES = [
    ("plain text", 1, b'{"user_input": "PLANT-S0 I am planning a trip to Kyoto in autumn", '
                      b'"bot_response": "Late November is best."}'),
    ("valid surrogate pair", 2, b'{"user_input": "PLANT-S1 loved the temples \\ud83d\\ude00", '
                                b'"bot_response": "Glad to hear it"}'),
    ("high surrogate alone at the end", 3, b'{"user_input": "PLANT-S2 the ryokan was wonderful \\ud83d", '
                                           b'"bot_response": "Noted"}'),
    ("low surrogate alone in the bot response", 4, b'{"user_input": "PLANT-S3 where should I eat", '
                                                   b'"bot_response": "Try the tofu place \\ude00 near the station"}'),
    ("reversed pair", 5, b'{"user_input": "PLANT-S4 reversed pair \\ude00\\ud83d here", "bot_response": "ok"}'),
    ("lone surrogate in the theme", 6, b'{"user_input": "PLANT-S5 theme test", "bot_response": "ok", '
                                       b'"theme": "trav\\udc00el"}'),
]  # fmt: skip


def _cli(database_url: str, *args: str, code: int = 0) -> Any:
    result = runner.invoke(app, [*args, "--database-url", database_url])
    assert result.exit_code == code, (result.exit_code, result.output)
    return json.loads(result.stdout) if "--json" in args and code == 0 else result.output


def _post(env: ApiEnv, headers: dict[str, Any], chat: int, body: bytes) -> Any:
    return env.client.post(
        f"/v1/chats/{chat}/turns", headers={**headers, "content-type": "application/json"}, content=body
    )


def test_lone_surrogates_in_json_turns_are_stored_replaced(api_env: ApiEnv) -> None:  # noqa: F811
    h = api_env.key(user="kyoto")
    for what, chat, body in SURROGATE_BODIES:
        r = _post(api_env, h, chat, body)
        assert r.status_code == 201, (what, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json"
    turns = {
        t["chat_id"]: t
        for chat in range(1, 7)
        for t in api_env.client.get(f"/v1/chats/{chat}/turns", headers=h).json()["items"]
    }
    assert turns[2]["user_input"].endswith("temples \U0001f600")  # a valid pair is one emoji, kept
    assert turns[3]["user_input"] == f"PLANT-S2 the ryokan was wonderful {FFFD}"
    assert turns[4]["bot_response"] == f"Try the tofu place {FFFD} near the station"
    assert turns[5]["user_input"] == f"PLANT-S4 reversed pair {FFFD}{FFFD} here"
    assert turns[6]["theme"] == f"trav{FFFD}el"
    # Memory: the turns embed and the clean ones are found; a query with a lone surrogate is
    # cleaned the same way instead of failing.
    assert api_env.sync().failed == 0
    for planted, query in (("PLANT-S0", "trip to Kyoto in autumn"), ("PLANT-S1", "loved the temples")):
        hits = api_env.client.get("/v1/memory/search", headers=h, params={"q": query, "k": 1}).json()["items"]
        assert planted in hits[0]["summary"], (planted, hits)
    # A URL cannot carry a lone surrogate; its WTF-8 bytes are not UTF-8: refused naming the parameter.
    r = api_env.client.get("/v1/memory/search?q=the%20ryokan%20was%20wonderful%20%ED%A0%BD&k=1", headers=h)
    assert r.status_code == 422 and "query parameter 'q' is not valid UTF-8" in r.json()["error"], r.text
    # The library: queries and theme filters are cleaned the way the stored turns were.
    me = Actor("kyoto", "t1")
    assert "PLANT-S2" in api_env.store.search(me, "ryokan was wonderful \ud83d", k=1)[0].summary
    assert [c.chat_id for c in api_env.store.list_chats(me, theme="trav\udc00el").items] == [6]


def test_turn_text_passes_the_hygiene_boundary(api_env: ApiEnv) -> None:  # noqa: F811
    """NUL and invisible characters are removed and NFKC applied, on write and on query."""
    h, c = api_env.key(user="hana"), api_env.client
    r = c.post("/v1/chats/1/turns", headers=h, json={
        "user_input": "\u0000ｶﾀｶﾅ\u200b order\u0000 ＡＢＣ１２３\u0000", "bot_response": "\ufeff\u2060", "theme": "ｔｒａｖｅｌ"
    })  # fmt: skip
    assert r.status_code == 201, r.text
    assert (r.json()["user_input"], r.json()["bot_response"], r.json()["theme"]) == (
        "カタカナ order ABC123", "", "travel",
    )  # fmt: skip
    assert c.get("/v1/chats", headers=h, params={"theme": "travel"}).json()["items"][0]["chat_id"] == 1
    r = c.get("/v1/memory/search", headers=h, params={"q": "\u200b\u2060"})
    assert r.status_code == 422 and r.json()["error"].startswith("query parameter q: must not be empty"), r.text


def test_cli_add_turn_with_bytes_that_are_not_utf8(database_url: str, tmp_path: Path) -> None:
    """A real process with a Latin-1 byte in argv: Python hands it over as U+DCE9
    (surrogateescape); the text is stored with U+FFFD, exit 0; as a user id it is refused
    with exit 2 and a message naming the user id (replacing would merge different ids)."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "DBEMBED_DATA_DIR": str(tmp_path / "data")}
    base = [sys.executable, "-m", "dbembed.cli.main", "chat", "add-turn"]
    db = [b"--database-url", database_url.encode()]
    ok = subprocess.run([*base, b"kim", b"7", b"--input", b"PLANT-S6 caf\xe9 au lait every morning",
                         b"--theme", b"caf\xe9", *db, b"--json"], capture_output=True, env=env, timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stderr.decode(errors="replace")
    turn = json.loads(ok.stdout)
    assert turn["user_input"] == f"PLANT-S6 caf{FFFD} au lait every morning" and turn["theme"] == f"caf{FFFD}"
    bad = subprocess.run([*base, b"caf\xe9", b"7", b"--input", b"hello", *db], capture_output=True, env=env,
                         timeout=120)  # fmt: skip
    assert bad.returncode == 2, bad.stderr
    assert b"user id: not valid UTF-8 text" in bad.stderr and b"Traceback" not in bad.stderr
    # The same through the in-process runner (what typer receives), for the other commands.
    listed = _cli(database_url, "chat", "list-turns", "kim", "7", "--json")
    assert listed["items"][0]["user_input"] == turn["user_input"]
    assert "not valid UTF-8" in _cli(database_url, "chat", "list-chats", "caf\udce9", code=2)
    assert "not valid UTF-8" in _cli(database_url, "chat", "add-turn", "kim", "1", "--input", "x",
                                     "--tenant", "t\udcff", code=2)  # fmt: skip
    assert "not valid UTF-8" in _cli(database_url, "keys", "create", "--user", "caf\udce9", code=2)


JOSE_NFC = "Jos\u00e9"
JOSE_NFD = unicodedata.normalize("NFD", JOSE_NFC)


def test_one_identity_across_cli_api_keys_and_deletion(api_env: ApiEnv) -> None:  # noqa: F811
    url = api_env.store.settings.database_url
    assert url is not None
    c = api_env.client
    # CLI writes, once precomposed and once decomposed (as a macOS file name would give it).
    _cli(url, "chat", "add-turn", JOSE_NFC, "1", "--input", "PLANT-J1 from the CLI", "--json")
    _cli(url, "chat", "add-turn", JOSE_NFD, "1", "--input", "PLANT-J2 decomposed from the CLI", "--json")
    # API: a tenant service key names José percent-encoded; José's own key (created by the CLI).
    svc = api_env.key("default")
    r = c.post("/v1/chats/2/turns", headers={**svc, "X-Dbembed-User": "Jos%C3%A9"},
               json={"user_input": "PLANT-J3 from the service key"})  # fmt: skip
    assert r.status_code == 201 and r.json()["user_id"] == JOSE_NFC, r.text
    created = _cli(url, "keys", "create", "--user", JOSE_NFD, "--json")
    assert created["user_id"] == JOSE_NFC
    own = {"Authorization": f"Bearer {created['token']}"}
    for header in (None, "Jos%C3%A9", "Jose%CC%81", "%EF%BC%AAos%C3%A9"):  # NFC, NFD, full-width J
        h = own if header is None else {**own, "X-Dbembed-User": header}
        me = c.get("/v1/me", headers=h)
        assert me.status_code == 200 and me.json()["user_id"] == JOSE_NFC, (header, me.text)
    assert c.post("/v1/chats/3/turns", headers={**own, "X-Dbembed-User": "Jos%C3%A9"},
                  json={"user_input": "PLANT-J4 from José's own key"}).status_code == 201  # fmt: skip
    # Everyone sees the same four turns, whichever surface asks.
    cli_chats = _cli(url, "chat", "list-chats", JOSE_NFD, "--json")["items"]
    api_chats = c.get("/v1/chats", headers=own).json()["items"]
    assert sorted(x["chat_id"] for x in cli_chats) == sorted(x["chat_id"] for x in api_chats) == [1, 2, 3]
    assert sum(x["turns"] for x in api_chats) == 4
    users = api_env.store.conn.execute("SELECT DISTINCT user_id FROM dbembed.chat_turns").fetchall()
    assert users == [(JOSE_NFC,)]
    # Memory too; then the CLI deletes everything of José's, whoever wrote it.
    assert api_env.sync().memories_written == 4
    assert len(c.get("/v1/memory/search", headers=own, params={"q": "PLANT-J", "k": 10}).json()["items"]) == 4
    gone = _cli(url, "chat", "delete-user", JOSE_NFD, "--yes", "--json")
    assert gone == {"turns_deleted": 4, "memories_deleted": 4}
    assert c.get("/v1/chats", headers=own).json()["items"] == []
    assert c.get("/v1/memory/search", headers=own, params={"q": "PLANT-J"}).json()["items"] == []


def test_user_header_other_encodings_are_refused_with_400(api_env: ApiEnv) -> None:  # noqa: F811
    c, svc = api_env.client, api_env.key("t1")
    own = api_env.key("t1", JOSE_NFC)
    cases: list[tuple[dict[str, Any], str]] = [
        ({**svc, "X-Dbembed-User": JOSE_NFC.encode("utf-8")}, "raw non-ASCII byte"),  # what curl sends
        ({**own, "X-Dbembed-User": JOSE_NFC.encode("utf-8")}, "raw non-ASCII byte"),  # no longer a 403
        ({**svc, "X-Dbembed-User": JOSE_NFC.encode("latin-1")}, "raw non-ASCII byte"),
        ({**svc, "X-Dbembed-User": "Jos%E9"}, "not percent-encoded UTF-8"),  # Latin-1 percent-encoded
        ({**svc, "X-Dbembed-User": "Jos%C3"}, "not percent-encoded UTF-8"),  # truncated sequence
        ({**svc, "X-Dbembed-User": "%ED%A0%80"}, "not percent-encoded UTF-8"),  # an encoded surrogate
        ({**svc, "X-Dbembed-User": "100%"}, "not followed by two hex digits"),
        ({**svc, "X-Dbembed-User": "a%zzb"}, "not followed by two hex digits"),
        ({**svc, "X-Dbembed-User": "bob%00"}, "control character"),
        ({**svc, "X-Dbembed-User": "bob%0Aadmin"}, "control character"),
        ({**svc, "X-Dbembed-User": "bob\tx"}, "control character"),
        ({**svc, "X-Dbembed-User": "%E2%80%8B"}, "must not be empty"),  # only a zero-width space
        ({**svc, "X-Dbembed-User": "x" * 300}, "too long"),
    ]
    for headers, message in cases:
        r = c.get("/v1/chats", headers=headers)
        assert r.status_code == 400, (headers, r.status_code, r.text)
        assert "X-Dbembed-User" in r.json()["error"] and message in r.json()["error"], r.text
    twice = c.get("/v1/chats", headers=[*svc.items(), ("X-Dbembed-User", "a"), ("X-Dbembed-User", "b")])
    assert twice.status_code == 400 and "given 2 times" in twice.json()["error"]
    # Plain ASCII ids travel as before; a literal % is %25.
    r = c.post("/v1/chats/1/turns", headers={**svc, "X-Dbembed-User": "100%25+bob"}, json={"user_input": "x"})
    assert r.status_code == 201 and r.json()["user_id"] == "100%+bob"
    assert c.get("/v1/me", headers={**own, "X-Dbembed-User": "someone-else"}).status_code == 403
