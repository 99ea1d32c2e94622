"""Workloads of the speed section: the data each tool indexes, and the one-row edit.

* short texts: one table ``Track(TrackId, Name, Composer)``, about 10 words a row, every row distinct
  (like the Chinook file of the issue);
* the generated tree (``dbembed.generate``: 500 files x 40 rows over the four schemas);
* many one-row files whose texts cycle through 50 sentences (a load test's small databases).
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
import time
from pathlib import Path

WORDS = [
    "love",
    "night",
    "river",
    "fire",
    "heart",
    "dream",
    "blue",
    "road",
    "home",
    "rain",
    "summer",
    "light",
    "shadow",
    "gold",
    "city",
    "song",
    "dance",
    "wild",
    "angel",
    "storm",
    "moon",
    "sun",
    "king",
    "queen",
    "street",
    "fever",
    "rock",
    "ocean",
    "ghost",
    "train",
    "morning",
]
FIRST = [
    "John",
    "Paul",
    "Maria",
    "Ken",
    "Yuki",
    "Anna",
    "Lee",
    "Carlos",
    "Sofia",
    "Omar",
    "Ivan",
    "Grace",
    "Hiro",
    "Nina",
    "Tom",
    "Eva",
]
LAST = [
    "Smith",
    "Young",
    "Garcia",
    "Tanaka",
    "Kim",
    "Müller",
    "Rossi",
    "Silva",
    "Brown",
    "Novak",
    "Sato",
    "Jones",
    "Dubois",
    "Berg",
]


def age(paths: list[Path] | Path, seconds: float = 300) -> None:
    """Set mtimes in the past, so a run with ``--settle 0`` never sees a file as still being written."""
    old = time.time() - seconds
    for p in [paths] if isinstance(paths, Path) else paths:
        os.utime(p, (old, old))


def make_short_db(path: Path, rows: int, seed: int = 15) -> Path:
    """``rows`` distinct short rows in ``Track(TrackId, Name, Composer)``."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE Track (TrackId INTEGER PRIMARY KEY, Name TEXT NOT NULL, Composer TEXT)")
    data = []
    for i in range(rows):
        title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6))).title()
        composers = ", ".join(f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(rng.randint(1, 2)))
        data.append((i + 1, f"{title} ({i})", composers))
    conn.executemany("INSERT INTO Track VALUES (?, ?, ?)", data)
    conn.commit()
    conn.close()
    age(path)
    return path


def make_tree(root: Path, files: int = 500, rows: int = 40) -> Path:
    """The generated tree (seed 3, dup-share 0.3, no WAL files), as the pipeline section uses it."""
    from dbembed.generate import generate

    generate(root, files=files, rows=rows, seed=3, dup_share=0.3, wal_share=0.0)
    age([p for p in root.rglob("*") if p.is_file()])
    return root


def small_file_texts(distinct: int = 50) -> list[str]:
    rng = random.Random(7)
    return [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(distinct)]


def make_small_files(root: Path, n: int, distinct: int = 50) -> Path:
    """``n`` one-row databases ``events(id, message)`` in 100 folders; texts cycle through ``distinct``."""
    blobs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(small_file_texts(distinct)):
            p = Path(tmp) / f"t{i}.db"
            conn = sqlite3.connect(p)
            conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, message TEXT)")
            conn.execute("INSERT INTO events VALUES (1, ?)", (text,))
            conn.commit()
            conn.close()
            blobs.append(p.read_bytes())
    root.mkdir(parents=True, exist_ok=True)
    old = time.time() - 300
    for i in range(n):
        d = root / f"d{i % 100:03d}"
        d.mkdir(exist_ok=True)
        p = d / f"f{i:05d}.db"
        p.write_bytes(blobs[i % distinct])
        os.utime(p, (old, old))
    return root


def edit_one_row(db: Path, table: str, column: str, key: int = 1) -> None:
    """Append to one column of one row; the file's mtime is then set in the past (settled)."""
    conn = sqlite3.connect(db)
    conn.execute(f'UPDATE "{table}" SET "{column}" = "{column}" || \' (live)\' WHERE rowid = ?', (key,))
    conn.commit()
    conn.close()
    age(db, 120)


def find_editable(root: Path) -> tuple[Path, str, str, int]:
    """(file relative to ``root``, table, widest TEXT column, rowid) of the first editable row under ``root``."""
    for db in sorted(root.rglob("*.db")):
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            tables = conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND sql NOT LIKE '%WITHOUT ROWID%'"
                " AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
            for (table,) in tables:
                info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
                cols = [r[1] for r in info if "TEXT" in (r[2] or "").upper() and not r[5]]
                first = conn.execute(f'SELECT rowid FROM "{table}" LIMIT 1').fetchone()
                if cols and first:
                    # the longest text column: a prose column every document format keeps (the last
                    # TEXT column can be a timestamp, which documents leave out: no text would change)
                    widest = max(
                        cols,
                        key=lambda c: (
                            conn.execute(f'SELECT avg(length("{c}")) FROM "{table}"').fetchone()[0] or 0
                        ),
                    )
                    return db.relative_to(root), table, widest, int(first[0])
        finally:
            conn.close()
    raise RuntimeError(f"no editable row under {root}")
