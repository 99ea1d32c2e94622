"""``dbembed chat ...`` and ``dbembed keys ...`` end to end (typer runner, real database, real model)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dbembed.cli.main import app

runner = CliRunner()


def _run(database_url: str, *args: str, code: int = 0) -> object:
    result = runner.invoke(app, [*args, "--database-url", database_url])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if "--json" in args and code == 0 else result.output


def test_chat_commands_json(database_url: str) -> None:
    out = _run(database_url, "chat", "add-turn", "dora", "12", "--input", "My favourite band is Queen",
               "--response", "Bohemian Rhapsody!", "--theme", "music", "--json")  # fmt: skip
    assert out["turn_no"] == 0 and out["theme"] == "music"  # type: ignore[index]
    _run(database_url, "chat", "add-turn", "dora", "12", "--input", "And my cat is called Freddie", "--json")
    _run(database_url, "chat", "add-turn", "eve", "1", "--input", "eve's secret", "--json")
    chats = _run(database_url, "chat", "list-chats", "dora", "--json")
    assert [(c["chat_id"], c["turns"]) for c in chats["items"]] == [(12, 2)]  # type: ignore[index]
    turns = _run(database_url, "chat", "list-turns", "dora", "12", "--limit", "1", "--json")
    assert turns["items"][0]["turn_no"] == 1 and turns["next_cursor"]  # type: ignore[index]
    synced = _run(database_url, "chat", "sync", "--json")
    assert synced["memories_written"] == 3 and synced["complete"]  # type: ignore[index]
    hits = _run(database_url, "chat", "search", "dora", "pet animal name", "-k", "1", "--json")
    assert "Freddie" in hits["items"][0]["summary"]  # type: ignore[index]
    assert _run(database_url, "chat", "retention", "--days", "30", "--json")["memories_deleted"] == 0  # type: ignore[index]
    gone = _run(database_url, "chat", "delete-user", "dora", "--json")
    assert gone == {"turns_deleted": 2, "memories_deleted": 2}
    assert "eve" in str(_run(database_url, "chat", "search", "eve", "secret", "--json"))
    err = _run(database_url, "chat", "add-turn", "dora", str(2**63), "--input", "x", code=2)
    assert "chat id" in str(err)
    err = _run(database_url, "chat", "list-chats", "dora", "--limit", "100000", code=2)
    assert "--limit: must be between 1 and 200 (got 100000)" in str(err)
    # `since`/`until` take what `dbembed files --since` takes: an age or an ISO date/time.
    recent = _run(database_url, "chat", "search", "eve", "secret", "--since", "2h", "--json")
    assert "eve" in str(recent)
    assert _run(database_url, "chat", "search", "eve", "secret", "--until", "2h", "--json") == {"items": []}
    old = _run(database_url, "chat", "search", "eve", "secret", "--since", "2000-01-01", "--until", "1d", "--json")
    assert old == {"items": []}


def test_keys_create_list_revoke(database_url: str) -> None:
    created = _run(
        database_url, "keys", "create", "--tenant", "acme", "--user", "zoe", "--name", "web", "--json"
    )
    token, key_id = created["token"], created["id"]  # type: ignore[index]
    assert token.startswith(f"dbe_{key_id}_")
    listed = _run(database_url, "keys", "list", "--json")
    assert [(k["id"], k["tenant_id"], k["user_id"], k["revoked_at"]) for k in listed] == [
        (key_id, "acme", "zoe", None)
    ]  # type: ignore[union-attr]
    assert token not in json.dumps(listed)
    assert _run(database_url, "keys", "revoke", key_id, "--json")["revoked_at"]  # type: ignore[index]
    assert "no API key" in str(_run(database_url, "keys", "revoke", "nope", code=2))
