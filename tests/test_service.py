"""The service object ``dbembed.service.Dbembed``: what every surface calls, the public provider
seam, the thread-safe provider cache, typed results, the pool, and a dry run that reads like a run."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import dbembed
from dbembed.errors import UsageError
from dbembed.service import Dbembed, FilePage, ProviderCache, Status
from tests.helpers import make_db, make_tree, tickets_for


def refuse_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a provider was loaded although one was injected")

    monkeypatch.setattr("dbembed.embed.registry.get_provider", refuse)


def test_injected_provider_does_all_the_embedding(settings: Any, minilm: Any, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    refuse_loading(monkeypatch)
    make_tree(tmp_path / "tree", files=2, rows=6)
    cache = ProviderCache()
    service = Dbembed(settings, provider=minilm, providers=cache)
    before = minilm.usage.texts
    summary = service.index([tmp_path / "tree"])
    assert summary.files_ok == 2 and summary.exit_code == 0
    assert minilm.usage.texts > before  # the injected provider embedded the rows
    hits = service.search("the blender makes a loud grinding noise", k=3, mode="vector")
    assert hits and "blender" in hits[0].text.lower()
    assert len(cache) == 0  # nothing was loaded into the cache


def test_status_runs_files_and_dry_run_are_dataclasses(settings: Any, minilm: Any, tmp_path: Path) -> None:
    make_tree(tmp_path / "tree", files=2, rows=6)
    service = Dbembed(settings, provider=minilm)
    summary = service.index([tmp_path / "tree"])
    status = service.status()
    assert isinstance(status, Status)
    (coll,) = status.collections
    assert coll.files["indexed"] == 2 and coll.rows == summary.rows > 0 and coll.failures == []
    assert coll.runs[0].status == "ok" and coll.runs[0].files_ok == 2
    assert status.as_dict()["collections"][0]["runs"][0]["files_ok"] == 2
    (run,) = service.runs(limit=5)
    assert run.id == coll.runs[0].id and run.chunks == coll.chunks
    page = service.files(limit=1)
    assert isinstance(page, FilePage) and len(page.items) == 1 and page.next_cursor and page.counts == {"indexed": 2}
    plan = service.dry_run([tmp_path / "tree"])
    assert plan.files_unchanged == 2 and plan.texts_to_embed == 0 and plan.as_dict()["files"] == 2


def test_provider_cache_loads_each_provider_once_across_threads(settings: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    loads: list[str | None] = []

    class Slow:
        model_id, dimensions = "local:slow", 3

    def load(s: Any, spec: str | None = None) -> Any:
        loads.append(spec)
        time.sleep(0.2)  # a model load takes a while: the other threads must wait, not load again
        return Slow()

    monkeypatch.setattr("dbembed.embed.registry.get_provider", load)
    cache = ProviderCache()
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(settings))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len(got) == 8 and all(p is got[0] for p in got)
    cache.get(settings, "local:other")
    assert loads == [None, "local:other"]


def test_pooled_service_reuses_its_connections(settings: Any) -> None:
    with Dbembed(settings, pooled=True) as service:
        pids = set()
        for _ in range(5):
            with service.connection() as conn:
                pids.add(conn.info.backend_pid)
                assert conn.execute("SELECT count(*) FROM dbembed.schema_migrations").fetchone()[0] >= 5
        assert len(pids) == 1  # one pooled session served every call
        assert service.status().collections == []
    with Dbembed(settings) as service:  # unpooled: a connection per call
        pids = set()
        for _ in range(2):
            with service.connection() as conn:
                pids.add(conn.info.backend_pid)
        assert len(pids) == 2


def test_dry_run_rejects_tables_as_the_run_does(settings: Any, minilm: Any, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    path = make_db(root / "odd.db", tickets_for(3, 4))
    conn = sqlite3.connect(path)
    conn.create_collation("klingon", lambda a, b: (a > b) - (a < b))
    conn.execute("CREATE TABLE words (w TEXT COLLATE klingon PRIMARY KEY, gloss TEXT) WITHOUT ROWID")
    conn.execute("INSERT INTO words VALUES ('qapla', 'success, said after a victory')")
    conn.commit()
    conn.close()
    service = Dbembed(settings, provider=minilm)
    plan = service.dry_run([root])
    summary = service.index([root])
    rejected = service.status().collections[0].rejections
    assert summary.files_ok == 1 and rejected["tables"] == 1
    assert plan.tables_rejected == rejected["tables"] and plan.rows_new == summary.rows


def test_conveniences_apply_overrides_and_validate_them(settings: Any, minilm: Any, tmp_path: Path) -> None:
    from dbembed.errors import ConfigError

    dbembed.service.default_providers.put(minilm, settings)
    make_db(tmp_path / "t" / "a.db", tickets_for(1, 3))
    summary = dbembed.index([tmp_path / "t"], settings, on_start=lambda n: None, collection="mine")
    assert summary.collection == "mine" and summary.files_ok == 1
    assert dbembed.search("Ticket", 1, settings=settings, collection="mine", mode="lexical")
    assert dbembed.files(settings, status="indexed", collection="mine").counts == {"indexed": 1}
    with pytest.raises(ConfigError):
        dbembed.search("x", settings=settings, search_mode="fuzzy")
    with pytest.raises(UsageError):
        dbembed.search("   ", settings=settings)


@pytest.mark.parametrize(
    ("command", "method"),
    [
        (["search", "anything"], "search"),
        (["status"], "status"),
        (["retry-failed"], "retry_failed"),
        (["files"], "files"),
        (["run", "ROOT", "--dry-run"], "dry_run"),
        (["run", "ROOT"], "index"),
        (["chat", "list-chats", "alice"], "list_chats"),
    ],
)
def test_the_cli_calls_the_service(command: list[str], method: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from typer.testing import CliRunner

    from dbembed.cli.main import app

    def from_the_service(self: Dbembed, *args: Any, **kwargs: Any) -> Any:
        raise UsageError(f"{method} reached the service")

    monkeypatch.setattr(Dbembed, method, from_the_service)
    monkeypatch.chdir(tmp_path)
    args = [str(tmp_path) if a == "ROOT" else a for a in command]
    result = CliRunner().invoke(app, [*args, "--database-url", "postgresql://nobody@127.0.0.1:1/none"])
    assert result.exit_code == 2 and f"{method} reached the service" in result.stderr


def test_scheduler_takes_the_service_as_a_callable() -> None:
    import ast

    source = Path(dbembed.__file__).parent.joinpath("run", "schedule.py").read_text()
    imported = {
        n.module for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom) and n.module
    } | {a.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m.startswith("dbembed.service") or m.startswith("dbembed.cli") for m in imported)


def test_search_with_an_unknown_provider_names_the_provider(settings: Any) -> None:
    """Not "collection 'x' does not exist": the same error run and chat give."""
    from dbembed.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown model provider 'nope'"):
        Dbembed(settings.model_copy(update={"model": "nope:x"})).search("anything", mode="lexical")
