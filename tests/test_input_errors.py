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
    assert r.status_code == 422 and r.json()["error"].startswith("user_input must not be empty"), r.text
    assert api_env.client.get("/v1/chats/1/turns", headers=h).json()["items"] == []


def test_python_and_cli_refuse_an_empty_turn(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from dbembed.cli.main import app

    service = Dbembed(settings)
    with pytest.raises(InvalidText, match="^user_input must not be empty"):
        service.add_turn(Dbembed.actor("hana"), 1, "  \u200b ")
    for name in [n for n in os.environ if n.startswith("DBEMBED_")]:
        monkeypatch.delenv(name)
    res = CliRunner().invoke(
        app, ["chat", "add-turn", "hana", "1", "--input", "   ", "--database-url", settings.database_url]
    )
    assert res.exit_code == 2 and "--input must not be empty" in res.stderr, res.stderr
    assert service.list_turns(Dbembed.actor("hana"), 1).items == []


def test_http_errors_name_http_parameters(api_env: ApiEnv, settings: Any, tmp_path: Path,  # noqa: F811
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    c, h = api_env.client, api_env.key(user="hana")
    r = c.get("/v1/files", headers=h, params={"since": "garbage"})
    assert r.status_code == 400 and r.json()["error"].startswith("since 'garbage'"), r.text
    r = c.get("/v1/search", headers=h, params={"q": " \u200b "})
    assert r.status_code == 422 and r.json()["error"].startswith("q must not be empty"), r.text
    r = c.get("/v1/memory/search", headers=h, params={"q": "\u2060"})
    assert r.status_code == 422 and r.json()["error"].startswith("q must not be empty"), r.text
    # ... and the CLI names its flag.
    from dbembed.cli.main import app

    for name in [n for n in os.environ if n.startswith("DBEMBED_")]:
        monkeypatch.delenv(name)
    res = CliRunner().invoke(app, ["files", "--since", "garbage", "--database-url", settings.database_url])
    assert res.exit_code == 2 and "--since 'garbage'" in res.stderr, res.stderr


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
        assert r.status_code == 400 and "(3,000 characters)" in r.json()["error"], r.text
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
