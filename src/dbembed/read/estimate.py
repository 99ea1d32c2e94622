"""Cheap row counts of a SQLite file, so that a run's progress has an ETA before it starts.

``count_rows`` asks SQLite for ``max(rowid)`` of every table that may hold text (a B-tree seek, not a
scan; an upper bound that equals the row count for append-only tables), counts tables below 100k
rowids exactly, and counts WITHOUT ROWID tables up to 100k rows.  Other people's SQLite files are
opened read-only with a short busy timeout and never written; any error gives None.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

from dbembed.read.introspect import quote_ident
from dbembed.read.snapshot import ro_uri

EXACT_BELOW = 100_000  # tables up to this max(rowid) are counted exactly (a fast scan)
BUDGET_S = 0.5  # SQLite time per file before the estimate falls back to the file's size


def count_rows(local: Path) -> int | None:
    """Estimated rows of the SQLite file at ``local`` (an ``os`` path), or None when it cannot be
    read cheaply (not a regular file, unreadable, corrupt, slower than ``BUDGET_S``, or a -wal
    without its -shm, whose rows only a recovery that writes could see)."""
    try:
        if not stat.S_ISREG(os.stat(local).st_mode):  # a FIFO named *.db would block the open forever
            return None
        uri = ro_uri(local)
        wal = Path(os.fsdecode(local) + "-wal")
        if not Path(os.fsdecode(local) + "-shm").exists():
            if wal.exists() and wal.stat().st_size > 0:
                # Rows a crashed writer left only in its -wal: an immutable read would not see them
                # (and any other read would write next to the file), so the count is not known.
                return None
            # Without a -shm even a read-only open of a WAL file creates one next to it (and a crashed
            # writer leaves a -wal without it): read the main file as immutable, never touching it.
            uri += "&immutable=1"
        conn = sqlite3.connect(uri, uri=True, timeout=0.2)
    except (sqlite3.Error, OSError, ValueError):
        return None
    deadline = time.monotonic() + BUDGET_S
    # A corrupt or huge file must not stall the run before it starts: give up after BUDGET_S.
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        tables = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        total = 0
        for name, sql in tables:
            if not _may_hold_text(conn, name):
                continue  # numbers-only tables give no documents (dbembed.read skips them)
            if sql and "WITHOUT ROWID" in str(sql).upper():
                total += _without_rowid_estimate(conn, name)
                continue
            row = conn.execute(f"SELECT max(rowid) FROM {quote_ident(name)}").fetchone()
            value = row[0] if row else 0
            # A column may be named rowid and hold anything (text, a float): only an integer counts.
            top = value if isinstance(value, int) and value > 0 else 0
            if top <= EXACT_BELOW:  # small tables: count them (rowids may be sparse)
                row = conn.execute(f"SELECT count(*) FROM {quote_ident(name)}").fetchone()
                top = int(row[0] or 0) if row else 0
            total += top
        return total
    except (sqlite3.Error, ValueError, TypeError, OverflowError):
        return None
    finally:
        conn.close()


def _may_hold_text(conn: sqlite3.Connection, name: str) -> bool:
    """False only when every column is declared numeric (INT, REAL, FLOA, DOUB, NUMERIC, DECIMAL,
    BOOL, DATE...): such a table has no text to embed.  Untyped or text-like columns may hold text."""
    numeric = ("INT", "REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL", "BOOL", "DATE", "TIME")
    cols = conn.execute(f"PRAGMA table_info({quote_ident(name)})").fetchall()
    return not cols or any(not any(n in str(c[2]).upper() for n in numeric) for c in cols)


def _without_rowid_estimate(conn: sqlite3.Connection, name: str) -> int:
    """Rows of a WITHOUT ROWID table from its page count (dbstat when compiled in), else a count
    capped at 100k rows (such tables are rare and usually small)."""
    try:
        row = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM " + quote_ident(name) + " LIMIT 100000)"
        ).fetchone()
        return int(row[0]) if row else 0
    except sqlite3.Error:
        return 0
