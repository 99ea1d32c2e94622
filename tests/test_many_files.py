"""Many small files cost little each: batched claims (bounded by bytes), counters flushed in batches,
small files committed in groups (one transaction per group, each file all or nothing: a crash or
a write fault in a group never leaves a file half written)."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

import psycopg

from dbembed.discover import FoundFile
from dbembed.store import sources as source_store
from dbembed.store.collections import ensure_collection
from dbembed.store.migrate import migrate


def _queue(conn: psycopg.Connection, cid: int, sizes: list[int]) -> None:
    found = [FoundFile(f"/data/f{i:03d}.db", "/data/", size, 1.0, True) for i, size in enumerate(sizes)]
    source_store.upsert_discovered(conn, cid, found, settle_cutoff=1e12)


def test_claims_take_many_small_files_but_big_ones_alone(settings: Any) -> None:
    from dbembed.store.connection import connect

    conn = connect(settings, register_vector=False)
    migrate(conn)
    coll = ensure_collection(conn, "c", "local:test", 4, settings.store)
    mib = 1024 * 1024
    _queue(conn, coll.id, [50 * mib, 3 * mib, 3 * mib, 3 * mib] + [4096] * 100)
    take = lambda: source_store.claim(conn, coll.id, ["/data/"], "w1", 60, None, limit=64, max_bytes=8 * mib)  # noqa: E731
    first = take()
    assert [c.seen_size for c in first] == [50 * mib]  # the biggest alone (the first is always taken)
    second = take()
    assert [c.seen_size for c in second] == [3 * mib, 3 * mib]  # 6 MiB; a third would pass 8 MiB
    third = take()
    assert third[0].seen_size == 3 * mib and len(third) == 64  # 3 MiB + 63 small files: the count limit
    rest = take()
    assert len(rest) == 37 and {c.seen_size for c in rest} == {4096}
    assert take() == []
    leased = conn.execute(
        "SELECT count(*) FROM dbembed.sources WHERE lease_owner = 'w1' AND status = 'leased'"
    ).fetchone()
    assert leased == (104,)
    conn.close()


def test_fair_share_claims_leave_work_for_other_workers(settings: Any) -> None:
    from dbembed.store.connection import connect

    conn = connect(settings, register_vector=False)
    migrate(conn)
    coll = ensure_collection(conn, "fair", "local:test", 4, settings)
    _queue(conn, coll.id, [4096] * 10)

    def take(owner: str) -> int:
        got = source_store.claim(conn, coll.id, ["/data/"], owner, 60, None, limit=64, fair_share=True)
        return len(got)

    assert take("w1") == 5  # alone: half of the 10 pending (room for a worker that starts later)
    assert take("w2") == 2  # w1 is live: 5 pending over w1, w2 and one more
    assert take("w1") == 1  # 3 pending / 3
    assert take("w3") == 1  # 2 pending / (w1, w2, w3 + 1), at least one
    assert take("w1") == 1 and take("w2") == 0  # the last one; then nothing is left
    conn.close()


def test_a_second_process_finds_work_on_a_tree_of_a_few_small_files(settings: Any, tmp_path: Path) -> None:
    """A first ``dbembed run`` process claims only its share of eight small files (it dies right after its
    first claim, holding them); a second real process then finds the rest queued and finishes the tree."""
    import os
    import subprocess
    import sys

    from tests.helpers import make_tree

    root = tmp_path / "few"
    make_tree(root, files=8, rows=20)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "dbembed.cli.main", "run", str(root), "--database-url", settings.database_url,
           "--data-dir", str(tmp_path / "d"), "--settle", "0", "--no-sidecar", "--json"]  # fmt: skip
    first = subprocess.run(cmd, env={**env, "DBEMBED_CRASH_AT": "after_claim:1"}, capture_output=True, timeout=300)
    assert first.returncode == -9, first.stderr.decode()[-1500:]
    with psycopg.connect(settings.database_url) as conn:
        states = dict(conn.execute("SELECT status, count(*) FROM dbembed.sources GROUP BY 1").fetchall())
    assert states == {"leased": 4, "queued": 4}  # half of the pending files: the rest is for others
    second = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    assert second.returncode == 0, second.stderr.decode()[-1500:]
    with psycopg.connect(settings.database_url) as conn:
        done = conn.execute("SELECT count(*) FROM dbembed.sources WHERE status = 'indexed'").fetchone()
    assert done == (8,)


def test_many_one_row_files_group_commit_and_counts_add_up(
    settings: Any, minilm: Any, tmp_path: Path
) -> None:
    import dbembed.service

    root = tmp_path / "many"
    texts = ["the shipment arrived late", "refund the damaged kettle", "reset my password please"]
    for i in range(150):
        d = root / f"d{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(d / f"f{i:03d}.db")
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, message TEXT)")
        conn.execute("INSERT INTO events VALUES (1, ?)", (texts[i % 3],))
        conn.commit()
        conn.close()
    dbembed.service.default_providers.put(minilm, settings)
    s = dbembed.index([root], settings)
    assert (s.files_ok, s.rows, s.chunks, s.texts_embedded) == (150, 150, 150, 3)
    assert s.texts_reused == 147
    with psycopg.connect(settings.database_url) as conn:
        # A commit is a transaction id (xmin of the rows it wrote), not a time: each file records its
        # own finish time and duration.
        commits = conn.execute(
            "SELECT count(*), min((meta ->> 'group')::int), max((meta ->> 'group')::int), min(chunks),"
            " max(chunks), min(processed_at), max(processed_at), sum(duration_s), count(DISTINCT duration_s)"
            " FROM dbembed.sources WHERE status = 'indexed' GROUP BY xmin::text ORDER BY min(processed_at)"
        ).fetchall()
    # Group transactions of up to 64 files; each file knows its group and chunk.
    assert sum(c[0] for c in commits) == 150 and len(commits) <= 10
    # (A claim of one file, near the end, is a transaction of its own: no group.)
    groups = [(n, lo, hi) for n, lo, hi, *_ in commits]
    assert all(n == lo == hi <= 64 or (n, lo) == (1, None) for n, lo, hi in groups), groups
    assert {(c[3], c[4]) for c in commits} == {(1, 1)}
    # Commits run one after another: a group's files are recorded after its work, so the time between
    # two commits holds the later group's whole work, which its files' durations add up to (not each
    # file claiming the group's time); a group's files do not all share one duration.
    for before, after in itertools.pairwise(commits):
        if after[1] is None:  # a one-file commit: its file may have been read ahead, during the one before
            continue
        assert (after[5] - before[6]).total_seconds() >= after[7] * 0.999, (before, after)
    assert all(c[8] > 1 for c in commits if c[0] > 1), commits  # own times, not one shared figure
    again = dbembed.index([root], settings)
    assert (again.files_ok, again.files_skipped, again.texts_embedded) == (0, 150, 0)


def _one_row_db(path: Path, key: object, text: str, table: str = "events") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute(f'CREATE TABLE "{table}" (id TEXT PRIMARY KEY, message TEXT)')
    conn.execute(f'INSERT INTO "{table}" VALUES (?, ?)', (key, text))
    conn.commit()
    conn.close()


def test_a_write_fault_in_a_group_fails_only_its_file(settings: Any, minilm: Any, tmp_path: Path) -> None:
    """A table name too long for the chunk table's unique index makes the group's COPY fail: the group
    rolls back and its files are redone one by one, so only the file at fault fails."""
    import secrets

    import dbembed.service

    root = tmp_path / "g"
    for i in range(6):
        _one_row_db(root / f"f{i}.db", f"k{i}", f"parcel {i} was left at the door")
    _one_row_db(
        root / "huge_key.db", "k", "a row whose table name no btree can hold", secrets.token_hex(4000)
    )
    dbembed.service.default_providers.put(minilm, settings)
    s = dbembed.index([root], settings)
    assert (s.files_ok, s.files_failed, s.chunks) == (6, 1, 6)
    (fail,) = s.failures
    assert fail["file"].endswith("huge_key.db") and "ProgramLimitExceeded" in fail["error"]
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT path, status, chunks, meta ->> 'group' FROM dbembed.sources ORDER BY path"
        ).fetchall()
    good = [(r[1], r[2]) for r in rows if not r[0].endswith("huge_key.db")]
    assert good == [("indexed", 1)] * 6
    # The faulty file's group (it is the biggest file, so in the first claim) rolled back and its other
    # files committed one by one (no group in their meta); later claims were grouped again.
    alone = [r for r in rows if r[3] is None and not r[0].endswith("huge_key.db")]
    assert len(alone) >= 2 and any(r[3] is not None for r in rows)


def test_a_kill_inside_a_group_leaves_no_file_half_written(settings: Any, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = tmp_path / "k"
    for i in range(8):
        _one_row_db(root / f"f{i}.db", f"k{i}", f"order {i} shipped twice")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DBEMBED_CRASH_AT": "after_copy:3"}
    cmd = [sys.executable, "-m", "dbembed.cli.main", "run", str(root), "--database-url", settings.database_url,
           "--data-dir", str(tmp_path / "d"), "--settle", "0", "--no-sidecar", "--json"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    with psycopg.connect(settings.database_url) as conn:
        (cid,) = conn.execute("SELECT id FROM dbembed.collections").fetchone()  # type: ignore[misc]
        chunks = conn.execute(f"SELECT count(*) FROM dbembed.chunks_{int(cid)}").fetchone()
        indexed = conn.execute("SELECT count(*) FROM dbembed.sources WHERE status = 'indexed'").fetchone()
    assert (chunks, indexed) == ((0,), (0,))  # killed after the group's COPY: nothing of it committed
    env.pop("DBEMBED_CRASH_AT")
    again = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    with psycopg.connect(settings.database_url) as conn:
        state = conn.execute(
            "SELECT count(*), sum(chunks) FROM dbembed.sources WHERE status = 'indexed'"
        ).fetchone()
    assert state == (8, 8)
