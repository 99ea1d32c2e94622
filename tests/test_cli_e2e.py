"""The CLI as a new user runs it: real SQLite files, the real embedded PostgreSQL, the real model.

Most tests drive ``dbembed.cli.main.app`` in-process through typer's ``CliRunner`` with the
session's MiniLM seeded into ``dbembed.service.default_providers`` (the model loads once); two smoke
tests run ``python -m dbembed.cli.main`` as a real subprocess to check exit codes end to end.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

import dbembed.service
from dbembed.cli.main import app
from tests.helpers import PLANTED, make_db, tickets_for

UNREACHABLE = "postgresql://u:secretpw@127.0.0.1:1/x"
SIDECAR_KEYS = {
    "file_path",
    "file_size",
    "processed_at",
    "embedding_model",
    "status",
    "chunk_count",
    "tables",
    "rows",
    "dimensions",
    "duration_s",
    "error",
}
JP_PLANTED = "富士山の頂上で見た初日の出は、一生忘れられない美しさでした。"
JP_OTHER = [
    "注文した商品がまだ届いていません。配送状況を教えてください。",
    "返品の手続き方法を知りたいです。",
    "会議は来週の火曜日に延期されました。",
    "新しいパスワードの設定方法がわかりません。",
]
SALMON = "A pallet of frozen salmon thawed overnight on the loading dock."
WHALES = "The lighthouse keeper counts the passing whales at dawn."
TEAPOT = "Gift wrap the ceramic teapot in blue paper before shipping."
WAL_ROW = "Emergency: the greenhouse sprinklers flooded the orchid seedlings."


# ---------------------------------------------------------------------------------------------
# plumbing
# ---------------------------------------------------------------------------------------------
def _clean_env(mp: pytest.MonkeyPatch, cwd: Path) -> None:
    """No DBEMBED_* variable and no ./dbembed.toml of the developer's leaks into a test."""
    for name in list(os.environ):
        if name.startswith("DBEMBED_"):
            mp.delenv(name)
    mp.setenv("DBEMBED_DB_RESUME_WAIT_S", "0")  # an unreachable server fails at once, not after 3 min
    mp.chdir(cwd)


def _seed_model(minilm: Any) -> None:
    """The CLI's default settings resolve to this provider key; reuse the session's loaded model."""

    dbembed.service.default_providers.put(minilm)


def invoke(*args: str) -> Result:
    """Run ``dbembed ARGS`` in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def as_json(result: Result) -> Any:
    assert result.stdout.strip(), f"no JSON on stdout; stderr: {result.stderr}"
    return json.loads(result.stdout)


def search(url: str, query: str, *extra: str) -> list[dict[str, Any]]:
    result = invoke("search", query, "--database-url", url, "--json", *extra)
    assert result.exit_code == 0, result.stderr
    hits = as_json(result)
    assert isinstance(hits, list)
    return hits


def status(url: str) -> dict[str, Any]:
    result = invoke("status", "--database-url", url, "--json")
    assert result.exit_code == 0, result.stderr
    out = as_json(result)
    assert len(out["collections"]) == 1
    return out["collections"][0]


def run_json(root: Path, url: str, *extra: str, expect: int = 0) -> dict[str, Any]:
    result = invoke("run", str(root), "--database-url", url, "--settle", "0", "--json", *extra)
    assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
    summary = as_json(result)
    assert summary["exit_code"] == expect
    return summary


@pytest.fixture()
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, minilm: Any) -> Path:
    """Per test: clean env, cwd in a temp dir, the model seeded.  Returns the temp dir."""
    _clean_env(monkeypatch, tmp_path)
    _seed_model(minilm)
    return tmp_path


# ---------------------------------------------------------------------------------------------
# the tree a new user points dbembed at
# ---------------------------------------------------------------------------------------------
def make_shop(path: Path) -> Path:
    """``Order Details`` (space in the name), ``a"b`` (quote), a WITHOUT ROWID table and a view."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE "Order Details" (OrderID INTEGER PRIMARY KEY, ProductName TEXT, Notes TEXT)')
    conn.executemany(
        'INSERT INTO "Order Details" VALUES (?, ?, ?)',
        [
            (1, "Ceramic teapot", TEAPOT),
            (2, "Espresso machine", "Customer asked for the espresso machine to be delivered after 5pm."),
            (3, "Wool blanket", "The wool blanket is out of stock until next month."),
        ],
    )
    conn.execute('CREATE TABLE "a""b" (id INTEGER PRIMARY KEY, quote TEXT)')
    conn.executemany(
        'INSERT INTO "a""b" VALUES (?, ?)',
        [(1, WHALES), (2, "Interest rates on savings accounts rose again this quarter.")],
    )
    conn.execute(
        "CREATE TABLE stock_notes (sku TEXT NOT NULL, warehouse TEXT NOT NULL, note TEXT,"
        " PRIMARY KEY (sku, warehouse)) WITHOUT ROWID"
    )
    conn.executemany(
        "INSERT INTO stock_notes VALUES (?, ?, ?)",
        [
            ("SKU-77", "north", SALMON),
            ("SKU-12", "south", "Forklift battery replaced; aisle 4 is open again."),
            ("SKU-12", "north", "Cardboard boxes restocked for the holiday season."),
        ],
    )
    conn.execute(
        "CREATE VIEW v_gift_notes AS SELECT ProductName || ' (view): ' || Notes AS line FROM \"Order Details\""
    )
    conn.commit()
    conn.close()
    return path


def make_japanese(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE 日記 (id INTEGER PRIMARY KEY, 本文 TEXT)")
    conn.executemany("INSERT INTO 日記 VALUES (?, ?)", list(enumerate([*JP_OTHER, JP_PLANTED], 1)))
    conn.commit()
    conn.close()
    return path


def make_truncated(path: Path) -> Path:
    """A real SQLite file cut short: its header is fine, its pages are not all there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes VALUES (?, ?)", [(i, f"note number {i} " * 40) for i in range(400)])
    conn.commit()
    conn.close()
    data = path.read_bytes()
    assert len(data) > 40_000
    path.write_bytes(data[: len(data) // 3])
    return path


@dataclass
class Tree:
    """The indexed tree shared by the read-only tests of this module."""

    url: str
    root: Path
    shop: Path
    support: Path
    japanese: Path
    wal: Path
    truncated: Path
    fake: Path
    summary: dict[str, Any]
    wal_size_before_run: int


@pytest.fixture(scope="module")
def tree(pg_server: Any, minilm: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    """Build the tree, run ``dbembed run ROOT --json`` once (module scope: the read-only tests share it)."""
    base = tmp_path_factory.mktemp("e2e_tree")
    root = base / "data"
    shop = make_shop(root / "shop" / "2024" / "01" / "orders.db")
    tickets = tickets_for(3)
    tickets.append((999, "Damaged delivery", PLANTED))
    support = make_db(root / "support" / "eu" / "tickets.sqlite", tickets)
    japanese = make_japanese(root / "jp" / "nihongo.db")
    truncated = make_truncated(root / "broken" / "truncated.db")
    fake = root / "broken" / "notes.db"
    fake.write_text("these are my shopping notes, not a database\n" * 10)
    # WAL mode with committed but uncheckpointed writes; the writer stays open during the run.
    wal = root / "live" / "events.db"
    wal.parent.mkdir(parents=True)
    writer = sqlite3.connect(wal)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, message TEXT)")
    writer.executemany(
        "INSERT INTO events (message) VALUES (?)",
        [("Routine sensor reading recorded.",), ("Nightly backup completed without errors.",)],
    )
    writer.commit()
    writer.execute("INSERT INTO events (message) VALUES (?)", (WAL_ROW,))
    writer.commit()
    wal_size = (wal.parent / "events.db-wal").stat().st_size

    name = "t_" + uuid.uuid4().hex[:12]
    admin = pg_server.get_uri()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_server.get_uri(database=name)
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp, base)
        _seed_model(minilm)
        summary = run_json(root, url, expect=1)
        yield Tree(url, root, shop, support, japanese, wal, truncated, fake, summary, wal_size)
    writer.close()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def t(tree: Tree, monkeypatch: pytest.MonkeyPatch, minilm: Any) -> Tree:
    """The shared tree, with this test's env cleaned and the model seeded."""
    _clean_env(monkeypatch, tree.root.parent)
    _seed_model(minilm)
    return tree


# ---------------------------------------------------------------------------------------------
# 1. one run over a realistic tree
# ---------------------------------------------------------------------------------------------
def test_run_summary_counts_good_and_bad_files(t: Tree) -> None:
    s = t.summary
    assert s["files_found"] == 6
    assert s["files_ok"] == 4 and s["files_failed"] == 2 and s["status"] == "partial"
    failed = {f["file"]: f["error"] for f in s["failures"]}
    assert set(failed) == {str(t.truncated), str(t.fake)}
    assert all(e and "\n" not in e for e in failed.values())
    assert "SQLite" in failed[str(t.fake)] or "header" in failed[str(t.fake)]
    # 3 + 2 + 3 rows in the shop (view skipped) + 13 tickets (numbers-only metrics table skipped)
    # + 5 Japanese + 3 WAL rows, one chunk each
    assert s["rows"] == 8 + 13 + 5 + 3 and s["chunks"] == s["rows"]
    assert "truncated" in failed[str(t.truncated)] or "malformed" in failed[str(t.truncated)]


def test_status_json_records_each_failure_with_one_line_reason(t: Tree) -> None:
    coll = status(t.url)
    assert coll["files"]["indexed"] == 4 and coll["files"]["failed"] == 2
    assert coll["dimensions"] == 384
    reasons = {f["file"]: f["error"] for f in coll["failures"]}
    assert set(reasons) == {str(t.truncated), str(t.fake)}
    for reason in reasons.values():
        assert reason.strip() and "\n" not in reason and len(reason) < 500
    assert coll["runs"][0]["status"] == "partial" and coll["runs"][0]["files_failed"] == 2


def test_paraphrased_query_finds_the_planted_row(t: Tree) -> None:
    hits = search(t.url, "my parcel came smashed and I would like my money back", "-k", "3")
    assert hits[0]["text"].endswith(PLANTED)
    assert hits[0]["path"] == str(t.support) and hits[0]["table"] == "tickets" and hits[0]["row_key"] == "999"


def test_quoted_table_names_are_indexed_and_filterable(t: Tree) -> None:
    hits = search(t.url, "wrap the teapot as a present", "--table", "Order Details", "-k", "2")
    assert len(hits) == 2 and all(h["table"] == "Order Details" for h in hits)
    assert TEAPOT in hits[0]["text"] and hits[0]["row_key"] == "1"
    quoted = search(t.url, "someone counting whales from a lighthouse", "--table", 'a"b', "-k", "5")
    assert [h["table"] for h in quoted] == ['a"b', 'a"b']  # exactly the two rows of that table
    assert WHALES in quoted[0]["text"]


def test_without_rowid_row_key_is_the_primary_key(t: Tree) -> None:
    hits = search(t.url, "frozen fish defrosted at the warehouse dock", "-k", "1")
    assert len(hits) == 1 and SALMON in hits[0]["text"]
    assert hits[0]["table"] == "stock_notes" and hits[0]["path"] == str(t.shop)
    assert json.loads(hits[0]["row_key"]) == ["SKU-77", "north"]


def test_view_is_skipped_by_default(t: Tree) -> None:
    assert search(t.url, "teapot gift wrap", "--table", "v_gift_notes") == []
    hits = search(t.url, "teapot gift wrap", "-k", "20")
    assert not any("(view)" in h["text"] for h in hits)


def test_japanese_row_is_found_by_a_japanese_query(t: Tree) -> None:
    hits = search(t.url, "富士山の頂上で見た初日の出は一生忘れられない美しさでした", "-k", "3")
    assert JP_PLANTED in hits[0]["text"]
    assert hits[0]["table"] == "日記" and hits[0]["path"] == str(t.japanese) and hits[0]["row_key"] == "5"


def test_wal_database_uncheckpointed_rows_are_searchable(t: Tree) -> None:
    assert t.wal_size_before_run > 0  # the rows really were only in the -wal file
    hits = search(t.url, "sprinklers flooded the greenhouse orchids", "-k", "1")
    assert WAL_ROW in hits[0]["text"] and hits[0]["path"] == str(t.wal) and hits[0]["row_key"] == "3"
    # dbembed never writes to a source: the -wal file still holds the writes
    assert (t.wal.parent / "events.db-wal").stat().st_size >= t.wal_size_before_run


def test_file_glob_table_filter_and_k(t: Tree) -> None:
    only_jp = search(t.url, "refund for a damaged order", "--file", "nihongo.db", "-k", "3")
    assert len(only_jp) == 3 and all(h["path"] == str(t.japanese) for h in only_jp)
    by_glob = search(t.url, "refund for a damaged order", "--file", "*/shop/*", "-k", "4")
    assert len(by_glob) == 4 and all(h["path"] == str(t.shop) for h in by_glob)
    none = search(t.url, "refund for a damaged order", "--file", "no_such_file.db")
    assert none == []
    tickets = search(t.url, "refund for a damaged order", "--table", "tickets", "-k", "5")
    assert len(tickets) == 5 and {h["table"] for h in tickets} == {"tickets"}
    assert len(search(t.url, "refund for a damaged order", "-k", "1")) == 1
    assert len(search(t.url, "refund for a damaged order", "--k", "7")) == 7


def test_sidecars_have_the_documented_keys(t: Tree) -> None:
    side = json.loads(Path(str(t.shop) + ".embedding_metadata.json").read_text())
    assert set(side) >= SIDECAR_KEYS
    assert side["file_path"] == str(t.shop) and side["file_size"] == t.shop.stat().st_size
    assert side["status"] == "processed" and side["error"] is None
    assert side["chunk_count"] == 8 and side["rows"] == 8 and side["tables"] == 3
    assert side["dimensions"] == 384 and "MiniLM" in side["embedding_model"]
    assert side["duration_s"] >= 0 and side["processed_at"][:4].isdigit()
    bad = json.loads(Path(str(t.fake) + ".embedding_metadata.json").read_text())
    assert set(bad) >= SIDECAR_KEYS
    assert bad["status"] == "failed" and bad["error"] and bad["chunk_count"] == 0


# ---------------------------------------------------------------------------------------------
# options that change what is written
# ---------------------------------------------------------------------------------------------
def test_views_flag_indexes_views(cli_env: Path, database_url: str) -> None:
    shop = make_shop(cli_env / "data" / "orders.db")
    plain = run_json(cli_env / "data", database_url)
    assert plain["rows"] == 8
    assert search(database_url, "teapot gift wrap", "--table", "v_gift_notes") == []
    other = make_shop(cli_env / "views" / "orders.db")
    with_views = run_json(cli_env / "views", database_url, "--views")
    assert with_views["rows"] == 8 + 3
    hits = search(database_url, "teapot gift wrap", "--table", "v_gift_notes", "-k", "5")
    assert len(hits) == 3 and all(h["path"] == str(other) for h in hits)
    assert "(view)" in hits[0]["text"] and "teapot" in hits[0]["text"].lower()
    # The user's natural next step: the same, unchanged tree again, now with --views.
    rerun = run_json(cli_env / "data", database_url, "--views")
    assert rerun["files_ok"] == 1 and rerun["chunks"] == 3  # only the view's rows are new
    assert rerun["texts_reused"] == 3  # identical view texts of views/orders.db: the embedding cache
    hits = search(database_url, "teapot gift wrap", "--table", "v_gift_notes", "-k", "10")
    assert {h["path"] for h in hits} == {str(shop), str(other)} and len(hits) == 6
    # ... and back without views: the view's chunks go, nothing is embedded.
    back = run_json(cli_env / "data", database_url, "--no-views")
    assert back["files_ok"] == 1 and back["chunks"] == 0 and back["texts_embedded"] == 0
    hits = search(database_url, "teapot gift wrap", "--table", "v_gift_notes", "-k", "10")
    assert {h["path"] for h in hits} == {str(other)}


def test_document_format_flag_env_and_toml(
    cli_env: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--document-format / DBEMBED_DOCUMENT_FORMAT / document_format: a change re-documents the rows
    on the next run (no --force), --dry-run predicts it, a bad value is named."""
    shop = make_shop(cli_env / "data" / "orders.db")
    first = run_json(cli_env / "data", database_url)
    assert first["rows"] == 8
    teapot = search(database_url, "teapot gift wrap", "-k", "1")[0]
    assert teapot["text"] == f"Order Details | ProductName: Ceramic teapot | Notes: {TEAPOT}"

    plan = as_json(invoke(
        "run", str(cli_env / "data"), "--database-url", database_url, "--settle", "0", "--dry-run", "--json",
        "--document-format", "values",
    ))  # fmt: skip
    assert plan["files_changed"] == 1 and plan["rows_changed"] == 8 and plan["texts_to_embed"] == 8
    values = run_json(cli_env / "data", database_url, "--document-format", "values")
    assert values["files_ok"] == 1 and values["chunks"] == 8 and values["texts_embedded"] == 8
    hit = search(database_url, "teapot gift wrap", "-k", "1")[0]
    assert hit["text"] == f"Ceramic teapot | {TEAPOT}" and hit["path"] == str(shop)

    monkeypatch.setenv("DBEMBED_DOCUMENT_FORMAT", "values")
    assert run_json(cli_env / "data", database_url)["files_skipped"] == 1  # the same format: nothing to do
    monkeypatch.delenv("DBEMBED_DOCUMENT_FORMAT")
    (cli_env / "dbembed.toml").write_text('document_format = "columns"\n', encoding="utf-8")
    cols = run_json(cli_env / "data", database_url)
    assert cols["files_ok"] == 1 and cols["chunks"] == 8
    hit = search(database_url, "teapot gift wrap", "-k", "1")[0]
    assert hit["text"] == f"ProductName: Ceramic teapot | Notes: {TEAPOT}"

    bad = invoke("run", str(cli_env / "data"), "--database-url", database_url, "--document-format", "labels")
    assert bad.exit_code == 2 and "--document-format: must be one of table-columns, columns, values" in bad.stderr


def test_no_sidecar_writes_no_metadata_file(cli_env: Path, database_url: str) -> None:
    db = make_db(cli_env / "data" / "a.db", tickets_for(1))
    summary = run_json(cli_env / "data", database_url, "--no-sidecar")
    assert summary["files_ok"] == 1
    assert not Path(str(db) + ".embedding_metadata.json").exists()
    assert sorted(p.name for p in (cli_env / "data").iterdir()) == ["a.db"]


# ---------------------------------------------------------------------------------------------
# 2. retry-failed
# ---------------------------------------------------------------------------------------------
def test_retry_failed_requeues_a_fixed_file(cli_env: Path, database_url: str) -> None:
    root = cli_env / "data"
    make_db(root / "good.db", tickets_for(2))
    broken = make_db(root / "flaky.db", [(1, "Lost umbrella", "A red umbrella was left in meeting room 7.")])
    original = broken.read_bytes()
    st = broken.stat()
    broken.write_bytes(b"NOT-SQLITE-AT-AL" + original[16:])  # same size, bad header
    os.utime(broken, ns=(st.st_atime_ns, st.st_mtime_ns))

    first = run_json(root, database_url, expect=1)
    assert [f["file"] for f in first["failures"]] == [str(broken)]
    # Fix it in place with the same size and mtime: discovery alone cannot tell it changed.
    broken.write_bytes(original)
    os.utime(broken, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = run_json(root, database_url)
    assert again["files_ok"] == 0 and again["files_failed"] == 0
    assert status(database_url)["files"]["failed"] == 1

    result = invoke("retry-failed", "--database-url", database_url, "--json")
    assert result.exit_code == 0, result.stderr
    assert as_json(result) == {"requeued": 1}
    assert status(database_url)["files"]["queued"] == 1
    fixed = run_json(root, database_url)
    assert fixed["files_ok"] == 1 and fixed["files_failed"] == 0
    hits = search(database_url, "umbrella forgotten in a meeting room", "-k", "1")
    assert hits[0]["path"] == str(broken) and "umbrella" in hits[0]["text"]
    coll = status(database_url)
    assert coll["files"]["failed"] == 0 and coll["files"]["indexed"] == 2 and coll["failures"] == []
    # the human-readable form says how many were queued
    text = invoke("retry-failed", "--database-url", database_url)
    assert text.exit_code == 0 and "0 failed file(s) queued again" in text.stdout


# ---------------------------------------------------------------------------------------------
# 3. --verify
# ---------------------------------------------------------------------------------------------
def test_verify_catches_same_size_same_mtime_change(cli_env: Path, database_url: str) -> None:
    root = cli_env / "data"
    db = make_db(root / "menu.db", [(1, "Dessert", "Grandmother's apple pie recipe with cinnamon.")])
    first = run_json(root, database_url)
    assert first["files_ok"] == 1
    st = db.stat()
    data = db.read_bytes()
    assert data.count(b"apple pie") == 1
    db.write_bytes(data.replace(b"apple pie", b"lemon tar"))  # same length, same size
    os.utime(db, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert db.stat().st_size == st.st_size and db.stat().st_mtime_ns == st.st_mtime_ns

    plain = run_json(root, database_url)
    assert plain["files_ok"] == 0 and plain["files_skipped"] == 1
    assert "apple pie" in search(database_url, "dessert recipe", "-k", "1")[0]["text"]

    verified = run_json(root, database_url, "--verify")
    assert verified["files_ok"] == 1 and verified["texts_embedded"] >= 1
    top = search(database_url, "dessert recipe", "-k", "1")[0]
    assert "lemon tar" in top["text"] and "apple pie" not in top["text"]
    # Verified and unchanged: nothing to do.
    calm = run_json(root, database_url, "--verify")
    assert calm["files_ok"] == 0 and calm["files_skipped"] == 1


# ---------------------------------------------------------------------------------------------
# 4. --dry-run
# ---------------------------------------------------------------------------------------------
def test_dry_run_reports_and_writes_nothing(cli_env: Path, database_url: str) -> None:
    root = cli_env / "data"
    db = make_db(root / "x" / "a.db", tickets_for(1, 10))
    make_db(root / "y" / "b.db", tickets_for(2, 5))
    result = invoke("run", str(root), "--database-url", database_url, "--settle", "0", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    report = as_json(result)
    assert report["files"] == 2 and report["files_unreadable"] == 0
    assert report["rows"] == 15  # the numbers-only metrics tables have nothing to embed
    assert report["chunks"] == 15
    assert report["tokens"] > 15 * 5 and report["distinct_chunks"] == 15
    assert report["model"] == "local:all-MiniLM-L6-v2"
    assert report["estimated_cost_usd"] in (None, 0, 0.0)  # a local model has no price
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('dbembed.sources')").fetchone() == (None,)
    assert not Path(str(db) + ".embedding_metadata.json").exists()


# ---------------------------------------------------------------------------------------------
# 5. errors a new user meets first
# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the model takes seconds: a command that is bound to fail must fail before that."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the model was loaded before the error was found")

    monkeypatch.setattr("dbembed.service.Dbembed.provider_for", refuse)


@pytest.mark.parametrize("command", ["run", "search", "status", "retry-failed", "dry-run"])
def test_unreachable_database_exit_3_with_masked_url(cli_env: Path, no_model: None, command: str) -> None:
    if command == "dry-run":  # touches no database at all, so the URL does not matter
        make_db(cli_env / "data" / "a.db", tickets_for(1, 2))
        result = invoke("run", str(cli_env / "nope"), "--dry-run", "--database-url", UNREACHABLE)
        assert result.exit_code == 2 and "root does not exist" in result.stderr
        return
    make_db(cli_env / "data" / "a.db", tickets_for(1, 2))
    args = {"run": ["run", str(cli_env / "data"), "--settle", "0"], "search": ["search", "anything"]}
    result = invoke(*args.get(command, [command]), "--database-url", UNREACHABLE)
    assert result.exit_code == 3
    assert "secretpw" not in result.stdout + result.stderr
    assert "postgresql://u:****@127.0.0.1:1/x" in result.stderr
    assert "refused" in result.stderr.lower() or "failed" in result.stderr.lower()


def test_bad_config_files_exit_2_naming_the_file(cli_env: Path) -> None:
    bad_toml = cli_env / "broken.toml"
    bad_toml.write_text("settle_s = [unclosed\n")
    result = invoke("status", "--config", str(bad_toml))
    assert result.exit_code == 2 and str(bad_toml) in result.stderr and "TOML" in result.stderr
    unknown = cli_env / "typo.toml"
    unknown.write_text('databse_url = "postgresql://x@y/z"\n')
    result = invoke("run", str(cli_env), "--config", str(unknown))
    assert result.exit_code == 2 and str(unknown) in result.stderr and "databse_url" in result.stderr
    wrong_type = cli_env / "type.toml"
    wrong_type.write_text('workers = "many"\n')
    result = invoke("status", "--config", str(wrong_type))
    assert result.exit_code == 2 and str(wrong_type) in result.stderr and "workers" in result.stderr
    missing = cli_env / "nope.toml"
    result = invoke("status", "--config", str(missing))
    assert result.exit_code == 2 and str(missing) in result.stderr


def test_root_that_does_not_exist_exit_2_naming_it(cli_env: Path, no_model: None) -> None:
    missing = cli_env / "no" / "such" / "folder"
    result = invoke("run", str(missing), "--database-url", UNREACHABLE, "--settle", "0")
    assert result.exit_code == 2
    assert str(missing) in result.stderr and "does not exist" in result.stderr


def test_help_lists_the_commands(cli_env: Path) -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("run", "search", "status", "retry-failed"):
        assert f" {command} " in result.stdout
    registered = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    for name in registered - {None}:
        assert name in result.stdout
    run_help = invoke("run", "--help")
    for flag in ("--database-url", "--settle", "--views", "--verify", "--no-sidecar", "--dry-run", "--json",
                 "--document-format"):  # fmt: skip
        assert flag in run_help.stdout


# ---------------------------------------------------------------------------------------------
# real processes: the console script's exit codes
# ---------------------------------------------------------------------------------------------
def _subprocess(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBEMBED_")}
    env["DBEMBED_DB_RESUME_WAIT_S"] = "0"
    # The first `auto` use on a machine measures every runtime (tests/test_backends.py covers it): keep
    # this test's timing bounded on a fresh CI machine.
    env["DBEMBED_BACKEND"] = "torch"
    return subprocess.run(
        [sys.executable, "-m", "dbembed.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_subprocess_exit_codes(tmp_path: Path) -> None:
    ok = _subprocess(["--help"], tmp_path)
    assert ok.returncode == 0 and "retry-failed" in ok.stdout
    down = _subprocess(["status", "--database-url", UNREACHABLE], tmp_path)
    assert down.returncode == 3, down.stderr
    assert "secretpw" not in down.stdout + down.stderr and "u:****@127.0.0.1:1/x" in down.stderr
    assert "Traceback" not in down.stderr
    usage = _subprocess(["run", "--no-such-flag", str(tmp_path)], tmp_path)
    assert usage.returncode == 2 and "no-such-flag" in usage.stderr


def test_subprocess_run_partial_failure_exit_1(tmp_path: Path, database_url: str) -> None:
    root = tmp_path / "data"
    make_db(root / "a.db", [*tickets_for(4, 3), (999, "Damaged delivery", PLANTED)])
    (root / "junk.db").write_text("not sqlite")
    done = _subprocess(
        ["run", str(root), "--database-url", database_url, "--settle", "0", "--json"], tmp_path
    )
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert summary["files_ok"] == 1 and summary["files_failed"] == 1
    assert Path(str(root / "a.db") + ".embedding_metadata.json").is_file()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT path, status FROM dbembed.sources ORDER BY path").fetchall()
    assert rows == [(str(root / "a.db"), "indexed"), (str(root / "junk.db"), "failed")]
