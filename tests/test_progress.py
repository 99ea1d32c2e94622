"""Progress you can trust on big files: rows and chunks move within a file, the total is estimated
before the first file is read, and the ETA exists from the start when earlier runs left a rate."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dbembed.cli.progress import RunProgress, fmt_eta
from dbembed.run.estimate import estimate_rows, rows_in_file
from dbembed.run.reading import FLUSH_CHUNKS
from tests.helpers import TOPICS, make_db, tickets_for


def big_db(path: Path, rows: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany(
            "INSERT INTO notes VALUES (?, ?)",
            [(i, f"{TOPICS[i % len(TOPICS)]} (note {i})") for i in range(1, rows + 1)],
        )
        conn.execute("CREATE TABLE tags (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID")
        conn.executemany("INSERT INTO tags VALUES (?, ?)", [(f"k{i}", "tag text") for i in range(7)])
    conn.close()
    return path


def test_discovery_estimates_rows_cheaply_and_defensively(tmp_path: Path) -> None:
    a = big_db(tmp_path / "a.db", 1500)
    assert rows_in_file(str(a)) == 1500 + 7
    sparse = make_db(tmp_path / "sparse.db", [(1, "a", "b"), (999, "c", "d")])
    assert rows_in_file(str(sparse)) == 2  # counted, not max(rowid); the numbers-only table is left out
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"SQLite format 3\x00" + b"\x00" * 5000)
    est = estimate_rows([(str(a), a.stat().st_size), (str(junk), 5000), ("s3://b/k.db", a.stat().st_size)])
    assert est[str(a)] == 1507
    assert est["s3://b/k.db"] == 1507  # same size as a: rows at a's measured bytes per row
    assert a.read_bytes()[:16] == b"SQLite format 3\x00"  # opened read-only, never written


def test_the_bar_moves_within_a_file_with_an_eta_from_the_start() -> None:
    p = RunProgress(enabled=False)
    p.on_start(2)
    p.on_estimate({"/a.db": 10_000, "/b.db": 10_000}, prior_rows_per_s=100.0)
    assert (p.completed, p.total) == (0, 20_000) and p.eta() == 200.0  # before any row was read
    p.on_progress("/a.db", 2_000, 1_800)
    assert (p.completed, p.chunks) == (2_000, 1_800)  # inside the first file, nothing finished yet
    p.on_file(SimpleNamespace(path="/a.db", rows=9_000, chunks_written=8_000, status="indexed",
                              error=None, duration_s=1.0))  # fmt: skip
    assert (p.completed, p.total, p.chunks) == (9_000, 19_000, 8_000)  # the estimate is replaced
    assert fmt_eta(p.eta()) == "0:01:40"  # 10,000 rows left at 100 rows/s


def test_a_real_run_reports_rows_inside_a_file(settings: Any, minilm: Any, tmp_path: Path) -> None:
    import dbembed.service

    n = FLUSH_CHUNKS + 300  # two embed+load steps
    big_db(tmp_path / "data" / "big.db", n)
    make_db(tmp_path / "data" / "small.db", tickets_for(1, 5))
    dbembed.service.default_providers.put(minilm, spec=settings.model)
    events: list[tuple[str, Any]] = []
    dbembed.index(
        [tmp_path / "data"],
        settings,
        on_start=lambda n: events.append(("start", n)),
        on_estimate=lambda est, rate: events.append(("estimate", est)),
        on_progress=lambda path, rows, chunks: events.append(("progress", (Path(path).name, rows, chunks))),
        on_file=lambda res: events.append(("file", (Path(res.path).name, res.chunks_written))),
    )
    kinds = [k for k, _ in events]
    assert kinds[:2] == ["start", "estimate"]
    estimate = dict(events[1][1])
    assert sorted(Path(k).name for k in estimate) == ["big.db", "small.db"]
    assert estimate[str((tmp_path / "data" / "big.db").resolve())] == n + 7
    big_steps = [v for k, v in events if k == "progress" and v[0] == "big.db"]
    done_at = next(i for i, (k, v) in enumerate(events) if k == "file" and v[0] == "big.db")
    written = events[done_at][1][1]
    assert len(big_steps) >= 2  # FLUSH_CHUNKS per step: the bar moved before the file was done
    assert all(events.index(("progress", s)) < done_at for s in big_steps)
    assert sum(s[1] for s in big_steps) <= n + 7 and sum(s[2] for s in big_steps) == written >= n


def test_tty_bar_shows_rows_files_chunks_and_eta() -> None:
    from rich.console import Console

    buf = io.StringIO()
    p = RunProgress(enabled=True, console=Console(file=buf, force_terminal=True, width=200))
    with p:
        p.on_start(4)
        p.on_estimate({"/a.db": 4_000}, prior_rows_per_s=50.0)
        p.on_progress("/a.db", 1_000, 900)
        p._progress.refresh()
    out = buf.getvalue()
    assert "1,000/~4,000 rows" in out and "0/4 files" in out and "900 chunks" in out and "ETA 0:01:00" in out


def test_estimate_never_creates_files_next_to_a_wal_source(tmp_path: Path) -> None:
    """A crashed writer leaves db + -wal without -shm: even a read-only open would create the -shm."""
    live = tmp_path / "live"
    live.mkdir()
    src = live / "chat.sqlite"
    writer = sqlite3.connect(src)
    writer.execute("PRAGMA journal_mode=wal")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    writer.executemany("INSERT INTO t (body) VALUES (?)", [(f"message {i}",) for i in range(50)])
    writer.commit()
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for suffix in ("", "-wal"):  # what a writer on another host leaves behind
        (crashed / f"chat.sqlite{suffix}").write_bytes(Path(f"{src}{suffix}").read_bytes())
    writer.close()
    before = sorted(p.name for p in crashed.iterdir())
    rows_in_file(str(crashed / "chat.sqlite"))
    assert sorted(p.name for p in crashed.iterdir()) == before == ["chat.sqlite", "chat.sqlite-wal"]


def test_rows_only_in_a_killed_writers_wal_are_never_estimated_as_zero(tmp_path: Path) -> None:
    """A writer killed before any checkpoint leaves its rows only in the -wal: the estimate counts them
    or says it does not know (and the run's estimate then goes by the -wal's size), never ~0 rows."""
    import os
    import signal
    import subprocess
    import sys

    src = tmp_path / "chat.sqlite"
    writer = (
        "import os, signal, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1])\n"
        "c.execute('PRAGMA journal_mode=wal'); c.execute('PRAGMA wal_autocheckpoint=0')\n"
        "c.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)')\n"
        "c.executemany('INSERT INTO t (body) VALUES (?)', [(f'message {i}',) for i in range(300)])\n"
        "c.commit()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", writer, str(src)], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert Path(f"{src}-wal").stat().st_size > 0
    assert rows_in_file(str(src)) in (300, None)  # its -shm is still there
    os.remove(f"{src}-shm")  # as copied off the writer's host, or downloaded
    before = sorted(p.name for p in tmp_path.iterdir())
    assert rows_in_file(str(src)) is None
    (estimate,) = estimate_rows([(str(src), src.stat().st_size)]).values()
    assert estimate >= 30, estimate  # the -wal's size speaks for its rows
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written next to it
