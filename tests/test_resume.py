"""Crash safety and work sharing: SIGKILL at several points, several processes on one index.

The final index after crashes + a rerun must equal a clean run's, chunk for chunk:
no duplicate, no missing chunk, no source stuck leased.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

import dbembed.service
from tests.helpers import index_state, make_tree

pytestmark = pytest.mark.slow


def _cli(
    root: Path,
    url: str,
    data_dir: Path,
    *,
    crash: str | None = None,
    lease_s: float = 60,
    background: bool = False,
) -> subprocess.Popen[bytes] | subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "DBEMBED_LEASE_S": str(lease_s), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("DBEMBED_CRASH_AT", None)
    if crash:
        env["DBEMBED_CRASH_AT"] = crash
    cmd = [
        sys.executable,
        "-m",
        "dbembed.cli.main",
        "run",
        str(root),
        "--database-url",
        url,
        "--data-dir",
        str(data_dir),
        "--settle",
        "0",
        "--no-sidecar",
        "--json",
    ]
    if background:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(cmd, env=env, capture_output=True, timeout=300)


def _clean_state(tmp_path: Path, root: Path, pg_server, minilm) -> list:  # noqa: ANN001
    """The index an uninterrupted run produces, in a separate database."""
    name = "clean_" + os.urandom(4).hex()
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_server.get_uri(database=name)
    from dbembed.config import load_settings

    s = load_settings(database_url=url, data_dir=tmp_path / "clean", settle_s=0, sidecar=False)
    dbembed.service.default_providers.put(minilm, s)
    dbembed.index([str(root)], s)
    return index_state(url)


def _leftover(url: str) -> list:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT path, status FROM dbembed.sources WHERE status <> 'indexed'").fetchall()


def test_sigkill_at_any_point_then_rerun_equals_clean_run(tmp_path, database_url, pg_server, minilm) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    make_tree(root, files=5, rows=30)
    clean = _clean_state(tmp_path, root, pg_server, minilm)
    for point in ("after_claim:2", "after_copy:1", "before_commit:2", "after_commit:3"):
        proc = _cli(root, database_url, tmp_path / "d", crash=point)
        assert proc.returncode == -9, (point, proc.stderr.decode()[-2000:])
    final = _cli(root, database_url, tmp_path / "d")
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    assert index_state(database_url) == clean
    assert _leftover(database_url) == []


def test_three_workers_one_killed_every_file_indexed_once(tmp_path, database_url, pg_server, minilm) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    make_tree(root, files=9, rows=30)
    clean = _clean_state(tmp_path, root, pg_server, minilm)
    # Three processes on one tree.  The doomed one starts first and dies inside a file's transaction (after a
    # COPY); the others start as soon as it holds a lease, so it surely has work whatever the scheduling.
    doomed = _cli(root, database_url, tmp_path / "d", lease_s=2, background=True, crash="after_copy:1")
    survivors = []
    deadline = time.monotonic() + 240
    while not survivors and time.monotonic() < deadline:
        try:
            with psycopg.connect(database_url) as conn:
                row = conn.execute("SELECT count(*) FROM dbembed.sources WHERE lease_owner LIKE %s",
                                   (f"%:{doomed.pid}:%",)).fetchone()  # fmt: skip
        except psycopg.errors.UndefinedTable:
            row = (0,)
        if (row and row[0]) or doomed.poll() is not None:
            survivors = [
                _cli(root, database_url, tmp_path / "d", lease_s=2, background=True) for _ in range(2)
            ]
        else:
            time.sleep(0.05)
    assert doomed.wait(timeout=300) == -9, doomed.stderr.read()[-1500:]  # type: ignore[union-attr]
    codes = [p.wait(timeout=300) for p in survivors]  # type: ignore[union-attr]
    assert codes == [0, 0], [p.stderr.read()[-1500:] for p in survivors]  # type: ignore[union-attr]
    # The survivors waited for the dead worker's lease to expire and finished its file.
    assert _leftover(database_url) == []
    assert index_state(database_url) == clean


def test_workers_option_spreads_files_over_processes(tmp_path, database_url) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    make_tree(root, files=6, rows=10)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dbembed.cli.main",
            "run",
            str(root),
            "--database-url",
            database_url,
            "--data-dir",
            str(tmp_path / "d"),
            "--settle",
            "0",
            "--workers",
            "2",
            "--json",
        ],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    with psycopg.connect(database_url) as conn:
        owners = conn.execute("SELECT count(DISTINCT run_id), count(*) FROM dbembed.sources").fetchone()
        workers = conn.execute("SELECT count(*) FROM dbembed.sources WHERE status = 'indexed'").fetchone()
    assert owners == (1, 6) and workers == (6,)
