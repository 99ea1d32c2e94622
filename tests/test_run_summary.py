"""A run's summary never counts a file that failed in an earlier run (and was not retried) as
unchanged: it is counted on its own, in the summary, the run record, `dbembed status`, the CLI
line and `GET /v1/runs`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import dbembed.service
from dbembed.service import Dbembed
from tests.helpers import make_db, tickets_for


def _tree(root: Path) -> Path:
    make_db(root / "a.db", tickets_for(1, 4))
    make_db(root / "b.db", tickets_for(2, 4))
    (root / "broken.db").write_bytes(b"this is not an SQLite database at all " * 200)
    return root


def test_failed_earlier_files_are_not_unchanged(settings: Any, minilm: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from dbembed.cli.main import app

    root = _tree(tmp_path / "tree")
    service = Dbembed(settings, provider=minilm)
    first = service.index([root])
    assert (first.files_ok, first.files_failed, first.files_skipped, first.files_still_failed) == (2, 1, 0, 0)
    again = service.index([root])
    assert (again.files_ok, again.files_failed, again.files_skipped, again.files_still_failed) == (0, 0, 2, 1)
    assert any("failed in an earlier run" in n for n in again.notes)
    assert not any("3 files unchanged" in n for n in again.notes)
    (run,) = service.runs(limit=1)
    assert (run.files_skipped, run.files_still_failed) == (2, 1)
    assert service.status().collections[0].runs[0].files_still_failed == 1

    for name in [n for n in os.environ if n.startswith("DBEMBED_")]:
        monkeypatch.delenv(name)
    dbembed.service.default_providers.put(minilm)
    res = CliRunner().invoke(app, ["run", str(root), "--database-url", settings.database_url, "--settle", "0"])
    assert res.exit_code == 0, res.stderr
    assert "2 unchanged, 1 failed earlier and not retried" in res.stdout
    assert "dbembed retry-failed" in res.stdout
    shown = CliRunner().invoke(app, ["status", "--database-url", settings.database_url])
    assert "1 failed earlier and not retried" in shown.stdout


def test_http_runs_count_failed_earlier_files(settings: Any, minilm: Any, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from dbembed.api.app import create_app
    from dbembed.store.api_keys import create_key
    from dbembed.store.connection import open_connection

    root = _tree(tmp_path / "tree")
    service = Dbembed(settings, provider=minilm)
    service.index([root])
    service.index([root])
    with open_connection(settings) as conn:
        _, token = create_key(conn, "t1", None)
    with TestClient(create_app(settings)) as client:
        items = client.get("/v1/runs", headers={"Authorization": f"Bearer {token}"}).json()["items"]
    assert [(r["files_skipped"], r["files_still_failed"]) for r in items] == [(2, 1), (0, 0)]
