"""Bad input gets a clear error naming the field as the caller knows it: an HTTP parameter over
HTTP, a flag in the CLI, the argument in Python; a chat turn must say something; a query string
that is not UTF-8 is refused (422), never searched with replacement characters; a bad value
quoted in a message is cut to about 80 characters."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dbembed.errors import InvalidText, echo
from dbembed.service import Dbembed
from tests.test_api import ApiEnv, api_env  # noqa: F401


@pytest.mark.parametrize("user_input", ["", "   ", "\t\n", "\u200b\u2060", "\u0000"])
def test_http_turn_with_nothing_to_say_is_422(api_env: ApiEnv, user_input: str) -> None:  # noqa: F811
    h = api_env.key(user="hana")
    r = api_env.client.post("/v1/chats/1/turns", headers=h, json={"user_input": user_input, "bot_response": "hi"})
    assert r.status_code == 422 and r.json()["error"].startswith("JSON field user_input: must not be empty"), r.text
    assert api_env.client.get("/v1/chats/1/turns", headers=h).json()["items"] == []


def test_python_and_cli_refuse_an_empty_turn(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from dbembed.cli.main import app

    service = Dbembed(settings)
    with pytest.raises(InvalidText, match="^user_input: must not be empty"):
        service.add_turn(Dbembed.actor("hana"), 1, "  \u200b ")
    for name in [n for n in os.environ if n.startswith("DBEMBED_")]:
        monkeypatch.delenv(name)
    res = CliRunner().invoke(
        app, ["chat", "add-turn", "hana", "1", "--input", "   ", "--database-url", settings.database_url]
    )
    assert res.exit_code == 2 and "--input: must not be empty" in res.stderr, res.stderr
    assert service.list_turns(Dbembed.actor("hana"), 1).items == []


def test_http_errors_name_http_parameters(api_env: ApiEnv, settings: Any, tmp_path: Path,  # noqa: F811
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    c, h = api_env.client, api_env.key(user="hana")
    r = c.get("/v1/files", headers=h, params={"since": "garbage"})
    assert r.status_code == 422 and r.json()["error"].startswith("query parameter since: give an ISO"), r.text
    assert "(got 'garbage')" in r.json()["error"]
    r = c.get("/v1/search", headers=h, params={"q": " \u200b "})
    assert r.status_code == 422 and r.json()["error"].startswith("query parameter q: must not be empty"), r.text
    r = c.get("/v1/memory/search", headers=h, params={"q": "\u2060"})
    assert r.status_code == 422 and r.json()["error"].startswith("query parameter q: must not be empty"), r.text
    # ... and the CLI names its flag.
    from dbembed.cli.main import app

    for name in [n for n in os.environ if n.startswith("DBEMBED_")]:
        monkeypatch.delenv(name)
    res = CliRunner().invoke(app, ["files", "--since", "garbage", "--database-url", settings.database_url])
    assert res.exit_code == 2 and "--since: give an ISO 8601" in res.stderr and "(got 'garbage')" in res.stderr, res.stderr


@pytest.mark.parametrize(
    ("query", "name", "byte"),
    [("q=%ff%fe", "'q'", "0xff"), ("q=caf%e9", "'q'", "0xe9"), ("q=%ed%a0%80", "'q'", "0xed"),
     ("k=3&q=ok&mode=%c3", "'mode'", "0xc3"), ("q=x&%ff=1", "'\ufffd'", "0xff")],
)  # fmt: skip
def test_query_strings_that_are_not_utf8_get_422(api_env: ApiEnv, query: str, name: str, byte: str) -> None:  # noqa: F811
    h = api_env.key(user="hana")
    for path in ("/v1/search", "/v1/memory/search", "/v1/files"):
        r = api_env.client.get(f"{path}?{query}", headers=h)
        assert r.status_code == 422, r.text
        assert r.json()["error"].startswith(f"query parameter {name} is not valid UTF-8 (byte {byte}"), r.text
        assert r.json()["request_id"] == r.headers["x-request-id"]


def test_raw_bytes_in_the_query_string_are_refused() -> None:
    """What a client that does not percent-encode sends (httpx always encodes, so asked directly)."""
    import asyncio

    from dbembed.api.errors import Utf8Query, bad_query_parameter

    assert bad_query_parameter(b"q=caf\xc3\xa9&k=2") is None
    assert bad_query_parameter(b"q=caf\xe9") == "query parameter 'q' is not valid UTF-8 (byte 0xe9 at offset 3)"
    sent: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a query string that is not UTF-8 reached the app")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "query_string": b"q=\xff\xfe", "state": {"request_id": "r1"}}
    asyncio.run(Utf8Query(inner)(scope, None, send))
    assert sent[0]["status"] == 422 and b"'q' is not valid UTF-8" in sent[1]["body"]


def test_echo_cuts_long_values_and_names_their_size() -> None:
    assert echo("garbage") == "'garbage'" and echo(5) == "5"
    long_text = echo("x" * 5000)
    assert len(long_text) < 100 and long_text.endswith("... (5,000 characters)")
    assert echo(10**4000).endswith("... (4,001 characters)") and len(echo(10**4000)) < 100


def test_echo_of_a_number_python_cannot_print() -> None:
    huge = int("9" * 4000) * 10**1000  # past int_max_str_digits: repr() itself raises
    assert echo(huge) == "a number of 5,000 digits"


CLI_USAGE = [
    (["files", "--sort", "bogus"], "--sort: must be one of path, last_indexed", "(got 'bogus')"),
    (["files", "--status", "bogus"], "--status: must be one of", "(got 'bogus')"),
    (["files", "-n", "0"], "-n/--limit: must be between 1 and 10000", "(got 0)"),
    (["files", "--since", "2x"], "--since: give an ISO 8601", "(got '2x')"),
    (["search", "x", "-k", "0"], "-k/--k: must be between 1 and 1000", "(got 0)"),
    (["search", "x", "--mode", "fuzzy"], "--mode: must be one of hybrid, vector, lexical", "(got 'fuzzy')"),
    (["search", "   "], "QUERY: must not be empty", ""),
    (["status", "--runs", "-1"], "--runs: must be between 0 and 10000", "(got -1)"),
    (["chat", "search", "u", "x", "-k", "0"], "-k/--k: must be between 1 and 100", "(got 0)"),
    (["chat", "search", "u", "x", "--mode", "fuzzy"], "--mode: must be one of", "(got 'fuzzy')"),
    (["chat", "search", "u", "x", "--since", "2x"], "--since: give an ISO 8601", "(got '2x')"),
    (["chat", "search", "u", "x", "--until", "soon"], "--until: give an ISO 8601", "(got 'soon')"),
    (["chat", "search", "u", "x", "--since", "1h", "--until", "2h"], "--since: must not be after until", ""),
    (["chat", "list-chats", "u", "--limit", "0"], "--limit: must be between 1 and 200", "(got 0)"),
    (["chat", "list-turns", "u", "1", "--limit", "100000"], "--limit: must be between 1 and 200", "(got 100000)"),
    (["chat", "retention", "--days", "-1"], "--days: must be between 0 and", "(got -1.0)"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message", "got"), CLI_USAGE, ids=[" ".join(a) for a, _, _ in CLI_USAGE])
def test_cli_usage_errors_name_the_flag_as_typed(args: list[str], message: str, got: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Refused before a database is opened (this URL has no server), exit 2, the flag and value named."""
    from dbembed.cli.main import app

    for name in [n for n in os.environ if n.startswith("DBEMBED_")]:
        monkeypatch.delenv(name)
    res = CliRunner().invoke(app, [*args, "--database-url", "postgresql://nobody@127.0.0.1:1/none"])
    assert res.exit_code == 2, (res.exit_code, res.stderr)
    assert f"error: {message}" in res.stderr and got in res.stderr, res.stderr
    assert "connect" not in res.stderr


def test_typed_names_reads_every_spelling() -> None:
    from dbembed.cli.chat import search
    from dbembed.cli.common import typed_names
    from dbembed.cli.files import files_cmd

    names = typed_names(files_cmd)
    assert names["limit"] == "-n/--limit" and names["sort"] == "--sort" and names["desc"] == "--desc"
    assert typed_names(search)["k"] == "-k/--k" and typed_names(search)["query"] == "QUERY"
    assert typed_names(search)["tenant"] == "--tenant" and typed_names(search)["user"] == "USER"


def test_config_errors_stay_readable(tmp_path: Path) -> None:
    from dbembed.config import load_settings
    from dbembed.errors import ConfigError

    toml = tmp_path / "dbembed.toml"
    toml.write_text("workers = " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(toml)
    assert str(toml) in str(err.value) and len(str(err.value)) < 300, str(err.value)
    toml.write_text('vector_type = "' + "x" * 5000 + '"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(toml)
    assert "vector_type" in str(err.value) and "(5,000 characters)" in str(err.value)
    assert len(str(err.value)) < 400, str(err.value)
    with pytest.raises(ConfigError) as err:
        load_settings(settle_s="9" * 3000 + "x")
    assert "settle_s" in str(err.value) and len(str(err.value)) < 300, str(err.value)
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path / ("x" * 3000))
    assert "cannot be read" in str(err.value) and len(str(err.value)) < 300, str(err.value)


def test_http_errors_cut_what_they_quote(api_env: ApiEnv) -> None:  # noqa: F811
    h = api_env.key(user="hana")
    for params in ({"status": "x" * 3000}, {"sort": "y" * 3000}):
        r = api_env.client.get("/v1/files", headers=h, params=params)
        assert r.status_code == 422 and "(3,000 characters)" in r.json()["error"], r.text
        assert len(r.json()["error"]) < 300, r.text


def test_the_verify_hint_only_when_verify_was_off(settings: Any, minilm: Any, tmp_path: Path) -> None:
    from tests.helpers import make_tree

    make_tree(tmp_path / "tree", files=2, rows=3)
    plain = Dbembed(settings, provider=minilm)
    plain.index([tmp_path / "tree"])
    (note,) = [n for n in plain.index([tmp_path / "tree"]).notes if "unchanged" in n]
    assert "--verify also compares content" in note
    verified = Dbembed(settings.model_copy(update={"verify": True}), provider=minilm)
    verified.index([tmp_path / "tree"])  # the first run with --verify records the content hashes
    (note,) = [n for n in verified.index([tmp_path / "tree"]).notes if "unchanged" in n]
    assert "--verify" not in note and "content hash" in note and "--force re-reads them" in note
