"""Which collection a request means is decided the same way on every surface (service, Python
API, CLI, HTTP GET and POST): a named collection must exist, a named model must be the named
collection's own (``CollectionMismatch``, exit 2 / HTTP 409), and a run or dry run checks that
before any model is loaded."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import dbembed
import dbembed.service
from dbembed.embed.provider_cache import ProviderCache
from dbembed.errors import CollectionMismatch, NotFound
from dbembed.service import Dbembed
from tests.helpers import PLANTED, make_tree

STATIC = "local:minilm-static"  # a model other than the one "pk" was indexed with


@pytest.fixture()
def two(settings: Any, minilm: Any, tmp_path: Path) -> Any:
    """Collection "pk" (the planted refund row) and collection "other" (one unrelated row), both
    of the bundled model; the returned settings name "other"."""
    make_tree(tmp_path / "pk", files=1, rows=4)
    other = tmp_path / "other"
    other.mkdir()
    with sqlite3.connect(other / "o.db") as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO notes (body) VALUES ('Quarterly inventory of the warehouse shelves.')")
    for name, root in (("pk", tmp_path / "pk"), ("other", other)):
        s = settings.model_copy(update={"collection": name})
        assert Dbembed(s, provider=minilm).index([root]).files_ok == 1
    return settings.model_copy(update={"collection": "other"})


class NoLoading(ProviderCache):
    """A provider cache that fails the test if anything asks it for a model."""

    def get(self, settings: Any, spec: str | None = None) -> Any:
        raise AssertionError(f"a model was loaded ({spec or settings.model})")


def test_service_named_collection_and_model(two: Any, minilm: Any) -> None:
    service = Dbembed(two, provider=minilm)
    hits = service.search("refund", k=1, collection="pk", mode="lexical")
    assert hits and "refund" in hits[0].text
    assert "refund" not in " ".join(h.text for h in service.search("refund", k=3, mode="lexical"))
    assert service.search(PLANTED, k=1, collection="pk", model="local:all-MiniLM-L6-v2")[0].text.count("refund")
    for model in (STATIC, "local:nope"):
        with pytest.raises(CollectionMismatch) as err:
            service.search("refund", collection="pk", model=model, mode="lexical")
        assert "'pk'" in str(err.value) and model in str(err.value) and "all-MiniLM-L6-v2" in str(err.value)
    with pytest.raises(NotFound, match="'nope' does not exist.*pk"):
        service.search("refund", collection="nope", mode="lexical")
    with pytest.raises(NotFound, match="local:nope.*'pk'"):
        service.search("refund", model="local:nope", mode="lexical")
    with pytest.raises(NotFound, match="noscheme:x.*'pk'"):
        service.search("refund", model="noscheme:x", mode="lexical")
    named = two.model_copy(update={"model": STATIC, "collection": "pk"})  # flags / env / TOML
    with pytest.raises(CollectionMismatch, match=STATIC):
        Dbembed(named, provider=minilm).search("refund", mode="lexical")
    with pytest.raises(CollectionMismatch, match="minilm-static"):
        dbembed.search("refund", settings=two, collection="pk", model=STATIC, mode="lexical")


def test_cli_search_mismatch_exits_2(two: Any, minilm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from dbembed.cli.main import app

    monkeypatch.delenv("DBEMBED_MODEL", raising=False)
    dbembed.service.default_providers.put(minilm)
    url = two.database_url
    for model in (STATIC, "local:nope"):
        res = CliRunner().invoke(app, ["search", "refund", "--collection", "pk", "--model", model, "--database-url", url])
        assert res.exit_code == CollectionMismatch.exit_code == 2, res.output
        assert model in res.stderr and "'pk'" in res.stderr
    ok = CliRunner().invoke(app, ["search", "refund", "--collection", "pk", "--database-url", url, "--mode", "lexical"])
    assert ok.exit_code == 0, ok.stderr
    assert "refund" in ok.stdout


def test_run_and_dry_run_refuse_another_models_collection_without_loading(two: Any, tmp_path: Path) -> None:
    from dbembed.cli.main import app

    wrong = two.model_copy(update={"model": STATIC, "collection": "pk"})
    service = Dbembed(wrong, providers=NoLoading())
    with pytest.raises(CollectionMismatch, match="'pk'.*minilm-static"):
        service.index([tmp_path / "pk"])
    with pytest.raises(CollectionMismatch, match="'pk'.*minilm-static"):
        service.dry_run([tmp_path / "pk"])
    with pytest.raises(CollectionMismatch, match="64 dimensions"):
        Dbembed(two.model_copy(update={"collection": "pk", "dimensions": 64}), providers=NoLoading()).dry_run(
            [tmp_path / "pk"]
        )
    url = two.database_url
    res = CliRunner().invoke(
        app, ["run", str(tmp_path / "pk"), "--dry-run", "--model", STATIC, "--collection", "pk", "--database-url", url]
    )
    assert res.exit_code == 2 and "minilm-static" in res.stderr, res.output
    # The matching model still plans and runs (nothing changed, nothing loaded).
    right = two.model_copy(update={"collection": "pk"})
    assert Dbembed(right, providers=NoLoading()).dry_run([tmp_path / "pk"]).files_unchanged == 1
    assert Dbembed(right, providers=NoLoading()).index([tmp_path / "pk"]).files_ok == 0


def _client(settings: Any, minilm: Any) -> Any:
    from fastapi.testclient import TestClient

    from dbembed.api.app import create_app
    from dbembed.store.api_keys import create_key
    from dbembed.store.connection import open_connection

    with open_connection(settings) as conn:
        _, token = create_key(conn, "t1", None)
        conn.commit()
    app = create_app(settings)
    app.state.dbembed.service.use_provider(minilm)
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


@pytest.mark.parametrize("method", ["get", "post"])
def test_http_search_chooses_the_collection_per_request(two: Any, minilm: Any, method: str) -> None:
    def call(**params: Any) -> Any:
        params = {"q": "refund", "k": 1, "mode": "lexical", **params}
        if method == "get":
            return client.get("/v1/search", params=params)
        return client.post("/v1/search", json=params)

    with _client(two, minilm) as client:
        assert call().json()["items"] == [] or "refund" not in call().json()["items"][0]["text"]
        hit = call(collection="pk")
        assert hit.status_code == 200 and "refund" in hit.json()["items"][0]["text"]
        vec = call(collection="pk", mode="vector", model="local:all-MiniLM-L6-v2")
        assert vec.status_code == 200 and "refund" in vec.json()["items"][0]["text"]
        for params in ({"collection": "nope"}, {"model": "local:nope"}, {"model": "noscheme:x"}):
            res = call(**params)
            assert res.status_code == 404, res.text
            assert next(iter(params.values())) in res.json()["error"]
            assert "'pk' (model local:all-MiniLM-L6-v2, 384 dimensions)" in res.json()["error"]
        res = call(collection="pk", model=STATIC)
        assert res.status_code == 409 and STATIC in res.json()["error"] and "'pk'" in res.json()["error"]
        res = call(colection="pk")
        assert res.status_code == 422 and "colection" in res.json()["error"]


def test_a_named_collection_wins_over_a_configured_model(
    two: Any, minilm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``DBEMBED_MODEL`` / TOML ``model`` is the server's or process's default: a collection named
    in the request or call is searched with its own model; only a model named with it conflicts."""
    from dbembed.cli.main import app

    configured = two.model_copy(update={"model": STATIC})
    hits = Dbembed(configured, providers=NoLoading()).search("refund", k=1, collection="pk", mode="lexical")
    assert hits and "refund" in hits[0].text
    vec = Dbembed(configured, provider=minilm).search(PLANTED, k=1, collection="pk", mode="vector")
    assert "refund" in vec[0].text
    with _client(configured, minilm) as client:
        res = client.get("/v1/search", params={"q": "refund", "k": 1, "collection": "pk"})
        assert res.status_code == 200 and "refund" in res.json()["items"][0]["text"], res.text
        res = client.get("/v1/search", params={"q": "refund", "collection": "pk", "model": STATIC})
        assert res.status_code == 409 and "`model`" in res.json()["error"], res.text
    monkeypatch.setenv("DBEMBED_MODEL", STATIC)
    dbembed.service.default_providers.put(minilm)
    url = two.database_url
    ok = CliRunner().invoke(app, ["search", "refund", "--collection", "pk", "--database-url", url, "--mode", "lexical"])
    assert ok.exit_code == 0 and "refund" in ok.stdout, ok.output
    bad = CliRunner().invoke(
        app, ["search", "refund", "--collection", "pk", "--model", STATIC, "--database-url", url, "--mode", "lexical"]
    )
    assert bad.exit_code == 2 and STATIC in bad.stderr, bad.output


class Recorder(ProviderCache):
    """A provider cache that records which model a run asked for, then stops the run."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def get(self, settings: Any, spec: str | None = None) -> Any:
        self.asked.append(spec or settings.model)
        raise RuntimeError("stop here")


def test_run_with_a_named_collection_and_no_model_uses_the_collections_model(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbembed.config import load_settings
    from dbembed.store.collections import ensure_collection
    from dbembed.store.connection import open_connection

    monkeypatch.delenv("DBEMBED_MODEL", raising=False)
    make_tree(tmp_path / "st", files=1, rows=2)
    with open_connection(settings) as conn:
        ensure_collection(conn, "st", STATIC, 256, settings.store)
        conn.commit()
    recorder = Recorder()
    with pytest.raises(RuntimeError, match="stop here"):
        Dbembed(settings.model_copy(update={"collection": "st"}), providers=recorder).index([tmp_path / "st"])
    assert recorder.asked == [STATIC]
    plan = Dbembed(settings.model_copy(update={"collection": "st"}), providers=NoLoading()).dry_run([tmp_path / "st"])
    assert plan.collection == "st" and plan.files_new == 1
    # A model from DBEMBED_MODEL that is not the collection's: refused, naming the variable.
    monkeypatch.setenv("DBEMBED_MODEL", "local:all-MiniLM-L6-v2")
    env = load_settings(database_url=settings.database_url, data_dir=settings.data_dir, collection="st")
    with pytest.raises(CollectionMismatch, match="by DBEMBED_MODEL"):
        Dbembed(env, providers=NoLoading()).index([tmp_path / "st"])


def test_post_search_refuses_a_query_string(two: Any, minilm: Any) -> None:
    with _client(two, minilm) as client:
        res = client.post("/v1/search?collection=pk", json={"q": "refund", "k": 1, "mode": "lexical"})
        assert res.status_code == 422, res.text
        assert "query parameter collection" in res.json()["error"] and "JSON body" in res.json()["error"]


def test_search_refuses_int8_like_run(two: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dbembed.cli.main import app

    monkeypatch.delenv("DBEMBED_MODEL", raising=False)
    url = two.database_url
    for cmd in (["search", "refund"], ["run", str(tmp_path / "pk"), "--dry-run"]):
        res = CliRunner().invoke(app, [*cmd, "--precision", "int8", "--database-url", url])
        assert res.exit_code != 0 and "precision int8 is not offered" in res.stderr, (cmd, res.output)
