"""``dbembed run --dry-run`` answers "what will the next run do": its predictions are checked
against the real run that follows, on the real index, with no model loaded and no network."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import make_db, tickets_for
from tests.test_cli_e2e import cli_env, invoke  # noqa: F401 - the fixture is used by name


def refuse_models(mp: pytest.MonkeyPatch) -> None:
    """Any attempt to build a provider (load a model, probe a service) fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the dry run tried to load a model or build a provider")

    mp.setattr("dbembed.service.Dbembed.provider_for", refuse)
    mp.setattr("dbembed.embed.registry.get_provider", refuse)
    mp.setattr("dbembed.embed.local.SentenceTransformerProvider._load", refuse)


@pytest.fixture()
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_models(monkeypatch)


def dry(root: Path, url: str, *extra: str) -> dict[str, Any]:
    out = invoke("run", str(root), "--database-url", url, "--settle", "0", "--dry-run", "--json", *extra)
    assert out.exit_code == 0, out.stderr
    return dict(json.loads(out.stdout))


def real(root: Path, url: str) -> dict[str, Any]:
    out = invoke("run", str(root), "--database-url", url, "--settle", "0", "--json")
    assert out.exit_code == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_dry_run_predicts_the_next_run_exactly(cli_env: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    root = cli_env / "data"
    a = make_db(root / "a.db", tickets_for(1, 12))
    b = make_db(root / "b.db", tickets_for(2, 6))
    first = real(root, database_url)
    usage = first["usage"]["local:all-MiniLM-L6-v2"]
    assert usage["tokens"] > usage["texts"] > 0  # local models count tokens too

    # change the tree: one row edited, one added, one deleted in a; b deleted; c new
    with sqlite3.connect(a) as conn:
        conn.execute("UPDATE tickets SET body = 'The umbrella handle snapped in light wind.' WHERE id = 1")
        conn.execute("INSERT INTO tickets VALUES (100, 'New', 'Please send the invoice as a PDF file.', 1)")
        conn.execute("DELETE FROM tickets WHERE id = 2")
    b.unlink()
    # c repeats three unchanged rows of a (their vectors are reused), and has one text of its own
    make_db(root / "c.db", tickets_for(1, 12)[4:7] + [(50, "x", "The parrot learned to whistle the anthem.")])

    with monkeypatch.context() as mp:
        refuse_models(mp)
        plan = dry(root, database_url)
    assert (plan["files"], plan["files_new"], plan["files_changed"], plan["files_deleted"]) == (2, 1, 1, 1)
    assert (plan["rows_changed"], plan["rows_deleted"]) == (1, 1 + 6)  # 1 in a, the 6 of the deleted b
    assert plan["rows_new"] == 1 + 4  # a's new row, c's four rows
    assert plan["chunks_reused"] == 3 and plan["texts_to_embed"] == 3
    assert plan["estimated_cost_usd"] is None and "tokenizer" in plan["token_source"]
    assert plan["estimated_seconds"] is not None and "tokens/s" in plan["estimate_basis"]

    after = real(root, database_url)
    assert after["texts_embedded"] == plan["texts_to_embed"]
    assert after["texts_reused"] == plan["chunks_reused"]
    assert after["chunks"] == plan["chunks"]
    assert after["usage"]["local:all-MiniLM-L6-v2"]["tokens"] == plan["tokens"]
    assert after["files_missing"] == plan["files_deleted"]

    with monkeypatch.context() as mp:
        refuse_models(mp)
        idle = dry(root, database_url)
    assert (idle["files_unchanged"], idle["texts_to_embed"], idle["tokens"], idle["rows"]) == (2, 0, 0, 0)
    assert idle["estimated_seconds"] == 0.0
    text = invoke("run", str(root), "--database-url", database_url, "--settle", "0", "--dry-run")
    assert "nothing to do: 2 files unchanged" in text.stdout


def test_dry_run_reports_pending_and_still_failed(cli_env: Path, database_url: str, no_model_load: None) -> None:  # noqa: F811
    root = cli_env / "data"
    make_db(root / "a.db", tickets_for(1, 4))
    plan = invoke("run", str(root), "--database-url", database_url, "--dry-run", "--json")  # --settle 60
    assert plan.exit_code == 0, plan.stderr
    report = json.loads(plan.stdout)
    assert report["files_pending"] == 1 and report["texts_to_embed"] == 0
    text = invoke("run", str(root), "--database-url", database_url, "--dry-run").stdout
    assert "--settle 0" in text


def test_dry_run_for_remote_models_sends_nothing_and_prices_tokens(
    cli_env: Path, database_url: str, no_model_load: None  # noqa: F811
) -> None:
    root = cli_env / "data"
    make_db(root / "a.db", tickets_for(1, 12))
    unknown = dry(root, database_url, "--model", "openai:my-local-model")  # no probe request is sent
    assert unknown["texts_to_embed"] == 12 and unknown["estimated_cost_usd"] is None
    assert "4 characters per token" in unknown["token_source"]
    small = dry(root, database_url, "--model", "openai:text-embedding-3-small")
    assert small["estimated_cost_usd"] == pytest.approx(small["tokens"] / 1000 * 0.00002)
    cohere = dry(root, database_url, "--model", "bedrock:cohere.embed-multilingual-v3")
    assert cohere["tokens"] == small["tokens"] and cohere["estimated_cost_usd"] == pytest.approx(
        cohere["tokens"] / 1000 * 0.0001
    )
    assert cohere["estimated_seconds"] is None and "no earlier run" in cohere["estimate_basis"]


def test_offline_chunk_sizing_equals_the_loaded_model(minilm: Any, settings: Any) -> None:
    """The dry run chunks exactly like the real provider: same window, same token counts."""
    from dbembed.embed.offline import offline_profile
    from tests.helpers import TOPICS

    profile = offline_profile(settings)
    assert profile.max_tokens == minilm.max_tokens == 254
    for text in [*TOPICS, "x" * 3000, "注文 " * 400]:
        assert profile.count_tokens(text) == minilm.count_tokens(text)
