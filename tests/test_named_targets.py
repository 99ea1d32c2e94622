"""A model or collection the user names explicitly must exist: searching never falls back to
another index silently (service, CLI, HTTP).  The one-index fallback stays for a user who named
neither."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import dbembed.service
from dbembed.errors import NotFound
from dbembed.service import Dbembed
from tests.helpers import PLANTED, make_tree


@pytest.fixture()
def indexed(settings: Any, minilm: Any, tmp_path: Path) -> Any:
    make_tree(tmp_path / "tree", files=1, rows=4)
    assert Dbembed(settings, provider=minilm).index([tmp_path / "tree"]).files_ok == 1
    return settings


def test_named_model_without_index_is_an_error_listing_what_exists(indexed: Any, minilm: Any) -> None:
    asked = indexed.model_copy(update={"model": "local:doesnotexist"})
    with pytest.raises(NotFound) as err:
        Dbembed(asked, provider=minilm).search("damaged parcel", mode="lexical")
    message = str(err.value)
    assert "local:doesnotexist" in message and "all-minilm-l6-v2" in message and "384 dimensions" in message
    dims = indexed.model_copy(update={"dimensions": 128})
    with pytest.raises(NotFound, match="128 dimensions"):
        Dbembed(dims, provider=minilm).search("damaged parcel", mode="lexical")
    with pytest.raises(NotFound, match="'nope' does not exist"):
        Dbembed(indexed.model_copy(update={"collection": "nope"}), provider=minilm).search("x", mode="lexical")


def test_named_collection_for_status_and_retry_must_exist(indexed: Any, minilm: Any) -> None:
    service = Dbembed(indexed.model_copy(update={"collection": "nope"}), provider=minilm)
    with pytest.raises(NotFound, match="nope"):
        service.status()
    with pytest.raises(NotFound, match="nope"):
        service.retry_failed()


def test_unnamed_model_still_searches_the_only_index(settings: Any, minilm: Any, tmp_path: Path) -> None:
    make_tree(tmp_path / "tree", files=1, rows=4)
    # Indexed under another name than the default model's: found when nothing was named.
    Dbembed(settings.model_copy(update={"collection": "support"}), provider=minilm).index([tmp_path / "tree"])
    hits = Dbembed(settings, provider=minilm).search(PLANTED, k=1, mode="lexical")
    assert hits and "refund" in hits[0].text
    named = settings.model_copy(update={"model": settings.model})  # the same model, but named: no fallback
    with pytest.raises(NotFound, match="'support' \\(model local:"):
        Dbembed(named, provider=minilm).search(PLANTED, k=1, mode="lexical")


def test_cli_exit_code_and_message(indexed: Any, minilm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from dbembed.cli.main import app

    monkeypatch.delenv("DBEMBED_MODEL", raising=False)
    dbembed.service.default_providers.put(minilm)
    url = indexed.database_url
    res = CliRunner().invoke(app, ["search", "--model", "local:doesnotexist", "q", "--database-url", url])
    assert res.exit_code == NotFound.exit_code == 2
    assert "local:doesnotexist" in res.stderr and "all-minilm-l6-v2" in res.stderr
    ok = CliRunner().invoke(app, ["search", PLANTED, "--database-url", url, "--json", "--mode", "lexical"])
    assert ok.exit_code == 0, ok.stderr


def test_http_search_with_a_model_that_has_no_index(indexed: Any, minilm: Any) -> None:
    from fastapi.testclient import TestClient

    from dbembed.api.app import create_app
    from dbembed.store.api_keys import create_key
    from dbembed.store.connection import open_connection

    with open_connection(indexed) as conn:
        _, token = create_key(conn, "t1", None)
        conn.commit()
    app = create_app(indexed.model_copy(update={"model": "local:doesnotexist"}))
    app.state.dbembed.service.use_provider(minilm)
    with TestClient(app) as client:
        res = client.get("/v1/search", params={"q": "parcel", "mode": "lexical"},
                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert res.status_code == NotFound.http_status == 404
    assert "local:doesnotexist" in res.json()["error"] and "all-minilm-l6-v2" in res.json()["error"]
