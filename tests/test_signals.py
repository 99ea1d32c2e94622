"""How a real `dbembed` process ends when it is stopped from outside: SIGTERM (AWS Batch, Kubernetes,
`docker stop`) like Ctrl-C, a reader that closes the pipe early, a question answered with no; and
`GET /v1/runs` telling a dead run from a live one like `dbembed status` does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from tests.helpers import make_db, tickets_for
from tests.test_files import _fill, _migrated


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBEMBED_")}
    env.update(DBEMBED_DB_RESUME_WAIT_S="0", DBEMBED_BACKEND="torch", HF_HUB_OFFLINE="1")
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dbembed.cli.main", *args]


def test_sigterm_ends_a_run_like_ctrl_c(tmp_path: Path, database_url: str) -> None:
    root = tmp_path / "data"
    for i in range(4):
        make_db(root / f"f{i}.db", tickets_for(i + 1, 400))
    proc = subprocess.Popen(
        _cli("run", str(root), "--database-url", database_url, "--settle", "0", "--no-sidecar"),
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        leased = 0
        while time.monotonic() < deadline and proc.poll() is None and not leased:
            time.sleep(0.3)
            try:
                with psycopg.connect(database_url) as conn:
                    leased = conn.execute(  # type: ignore[assignment]
                        "SELECT count(*) FROM dbembed.sources WHERE status = 'leased'"
                    ).fetchone()[0]  # type: ignore[index]
            except psycopg.Error:
                continue  # not migrated yet
        assert leased, "the run never leased a file"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted: SIGTERM" in err and "Traceback" not in err
    _assert_stopped_cleanly(database_url)


def _assert_stopped_cleanly(database_url: str) -> None:
    """The run is recorded ``interrupted: SIGTERM``; no lease is held, and the files in flight were
    rolled back (queued again, none of their chunks kept); every other file is whole."""
    with psycopg.connect(database_url) as conn:
        runs = conn.execute("SELECT status, error, finished_at IS NOT NULL FROM dbembed.runs").fetchall()
        states = dict(conn.execute("SELECT status, count(*) FROM dbembed.sources GROUP BY 1").fetchall())
        (cid,) = conn.execute("SELECT id FROM dbembed.collections").fetchone()  # type: ignore[misc]
        half_done = conn.execute(
            f"SELECT count(*) FROM dbembed.chunks_{int(cid)} c JOIN dbembed.sources s ON s.id = c.source_id"
            " WHERE s.status <> 'indexed'"
        ).fetchone()
    assert runs == [("interrupted", "interrupted: SIGTERM", True)]
    assert set(states) <= {"indexed", "queued"} and states.get("queued"), states
    assert half_done == (0,)


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_stops_the_workers_children_too(tmp_path: Path, database_url: str) -> None:
    root = tmp_path / "data"
    for i in range(16):
        make_db(root / f"f{i}.db", tickets_for(i + 1, 300))
    proc = subprocess.Popen(
        _cli("run", str(root), "--database-url", database_url, "--settle", "0", "--no-sidecar", "--workers", "2"),
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    children: list[int] = []
    try:
        deadline = time.monotonic() + 180
        owners = 0
        while time.monotonic() < deadline and proc.poll() is None and owners < 2:
            time.sleep(0.3)
            try:
                with psycopg.connect(database_url) as conn:
                    owners = conn.execute(  # type: ignore[assignment]
                        "SELECT count(DISTINCT lease_owner) FROM dbembed.sources WHERE status = 'leased'"
                    ).fetchone()[0]  # type: ignore[index]
            except psycopg.Error:
                continue
        assert owners >= 2, "the two workers never held leases at once"
        children = [c for c in _children(proc.pid) if _alive(c)]
        cmdlines = {c: _cmdline(c) for c in children}
        assert any("spawn_main" in line for line in cmdlines.values()), cmdlines
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
        # The worker child (spawn_main) is gone once the parent is; multiprocessing's resource tracker
        # follows within moments of its pipe closing.
        workers_left = [c for c in children if "spawn_main" in cmdlines[c] and _alive(c)]
        deadline = time.monotonic() + 10
        while [c for c in children if _alive(c)] and time.monotonic() < deadline:
            time.sleep(0.2)
        others_left = [cmdlines[c] for c in children if _alive(c)]
    finally:
        proc.kill()
        for c in children:
            if _alive(c):
                os.kill(c, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert not workers_left, "a worker child outlived the run"
    assert not others_left, "a child process outlived the run"
    _assert_stopped_cleanly(database_url)


def test_a_closed_pipe_ends_quietly(database_url: str) -> None:
    with _migrated(database_url) as conn:
        _fill(conn, 20_000)
    proc = subprocess.Popen(
        _cli("files", "--all", "--database-url", database_url, "--collection", "big"),  # 20,000 lines
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(100)  # like `| head -1`: read a little, then hang up
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert proc.returncode == 141, err
    assert "error" not in err and "Traceback" not in err


def test_declining_a_question_is_not_fatal(database_url: str) -> None:
    done = subprocess.run(
        _cli("chat", "delete-user", "José", "--database-url", database_url),
        env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "aborted" in done.stderr and "--yes" in done.stderr and "Traceback" not in done.stderr


def test_http_runs_show_a_dead_run_as_abandoned(database_url: str) -> None:
    from dbembed.config import load_settings
    from dbembed.run.index import abandoned_after_s
    from dbembed.store.runs import page_runs

    with _migrated(database_url) as conn:
        conn.execute(
            "INSERT INTO dbembed.runs (worker, status, started_at, heartbeat_at) VALUES"
            " ('host:1:dead', 'running', now() - interval '1 hour', now() - interval '1 hour'),"
            " ('host:2:live', 'running', now(), now())"
        )
        after = abandoned_after_s(load_settings(database_url=database_url))
        runs = {r["worker"]: r["status"] for r in page_runs(conn, 10, None, after)}
    assert runs == {"host:1:dead": "abandoned", "host:2:live": "running"}
