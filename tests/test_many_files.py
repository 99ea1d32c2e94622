"""Many small files cost little each: batched claims (bounded by bytes), counters flushed in batches,
and every file still committed on its own (a run over many one-row files, then a no-op rerun)."""

from __future__ import annotations

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


def test_many_one_row_files_each_commit_and_counts_add_up(settings: Any, minilm: Any, tmp_path: Path) -> None:
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
        per_file = conn.execute(
            "SELECT count(DISTINCT processed_at), min(chunks), max(chunks) FROM dbembed.sources WHERE status = 'indexed'"
        ).fetchone()
    assert per_file == (150, 1, 1)  # one commit (one processed_at) per file, each knows its chunk
    again = dbembed.index([root], settings)
    assert (again.files_ok, again.files_skipped, again.texts_embedded) == (0, 150, 0)
