"""The speed benchmark's workloads: the data every tool indexes, and the one-row edit it times."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from benchmarks.speed_data import find_editable, make_short_db, make_small_files, small_file_texts
from benchmarks.speed_tools import Workload, med


def _rows(db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT * FROM events").fetchall()
    finally:
        conn.close()


def test_small_files_cycle_through_distinct_texts(tmp_path: Path) -> None:
    root = make_small_files(tmp_path / "small", 120, distinct=50)
    files = sorted(root.rglob("*.db"))
    assert len(files) == 120
    assert len({f.parent for f in files}) == 100
    texts = [_rows(f)[0][1] for f in files]
    assert all(len(_rows(f)) == 1 for f in files)
    assert set(texts) == set(small_file_texts(50))
    assert all(f.stat().st_mtime < time.time() - 200 for f in files)  # settled for --settle 0


def test_short_db_rows_are_distinct_and_short(tmp_path: Path) -> None:
    db = make_short_db(tmp_path / "s" / "tracks.db", 300)
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT Name, Composer FROM Track").fetchall()
    conn.close()
    assert len(rows) == 300 == len(set(rows))
    assert max(len(f"{n} {c}".split()) for n, c in rows) <= 14


def test_workload_edit_changes_exactly_one_document(tmp_path: Path) -> None:
    root = make_short_db(tmp_path / "s" / "tracks.db", 40).parent
    w = Workload("short", root)
    assert len(w.docs) == 40
    assert find_editable(root) == (Path("tracks.db"), "Track", "Name", 1)  # the widest text column
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    edited = w.edit(copy)
    assert edited == copy / "tracks.db"
    after = Workload("after", copy).docs
    changed = [(a.text, b.text) for a, b in zip(w.docs, after, strict=True) if a.text != b.text]
    assert len(changed) == 1
    assert "(live)" in changed[0][1]
    assert edited.stat().st_mtime < time.time() - 60
    # the pristine data is untouched
    assert Workload("again", root).docs == w.docs


def test_tree_edit_changes_a_document_not_a_left_out_column(tmp_path: Path) -> None:
    """On the generated tree the last TEXT column can be a timestamp that documents leave out: the
    edit must change a column the documents hold, or the "one-row edit" embeds nothing."""
    root = tmp_path / "tree"
    root.mkdir()
    conn = sqlite3.connect(root / "products-0001.db")
    conn.execute(
        "CREATE TABLE product_reviews (review_id INTEGER PRIMARY KEY, title TEXT, review_text TEXT, reviewed_at TEXT)"
    )
    conn.executemany(
        "INSERT INTO product_reviews VALUES (?, ?, ?, ?)",
        [(i, f"title {i}", f"a long review text number {i} about the orange one", f"2024-03-{i:02d}T12:39:51Z")
         for i in range(1, 6)],
    )  # fmt: skip
    conn.commit()
    conn.close()
    w = Workload("tree", root)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    w.edit(copy)
    after = Workload("after", copy).docs
    changed = [b.text for a, b in zip(w.docs, after, strict=True) if a.text != b.text]
    assert len(changed) == 1 and "(live)" in changed[0]


def test_medians_of_rounds() -> None:
    assert med([3.0, 1.0, 2.0]) == 2.0
    assert med([]) != med([])  # NaN: a tool that did not run shows as nan, never as 0
