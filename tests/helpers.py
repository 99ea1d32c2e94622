"""Small builders for real SQLite files used across the pipeline tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

PLANTED = "The package arrived crushed and the customer asks for a refund for the damaged order."

TOPICS = [
    "How do I reset my password on the mobile app?",
    "The invoice total does not match the quoted price.",
    "Shipping to Osaka took two weeks longer than promised.",
    "Please cancel my subscription before the next billing cycle.",
    "The blender makes a loud grinding noise on the highest speed.",
    "Can I change the delivery address after the order shipped?",
    "The hiking boots run half a size small.",
    "My coupon code was rejected at checkout.",
    "The laptop battery drains within an hour.",
    "注文した商品がまだ届いていません。配送状況を教えてください。",
    "返品の手続き方法を知りたいです。",
    "The concert tickets were charged twice on my credit card.",
]


def make_db(path: Path, tickets: list[tuple[int, str, str]], *, wal: bool = False) -> Path:
    """A small support database: tickets(id, subject, body, priority) + a numbers-only table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE tickets (id INTEGER PRIMARY KEY, subject TEXT, body TEXT, priority INTEGER)")
    conn.execute("CREATE TABLE metrics (id INTEGER PRIMARY KEY, value REAL, count INTEGER)")
    conn.executemany("INSERT INTO tickets VALUES (?, ?, ?, 1)", tickets)
    conn.executemany("INSERT INTO metrics VALUES (?, ?, ?)", [(i, i * 0.5, i) for i in range(20)])
    conn.commit()
    conn.close()
    return path


def tickets_for(seed: int, n: int = 12) -> list[tuple[int, str, str]]:
    return [(i + 1, f"Ticket {seed}-{i}", TOPICS[(seed + i) % len(TOPICS)]) for i in range(n)]


def make_tree(root: Path, files: int = 4, rows: int = 12) -> list[Path]:
    """Several databases in nested folders; file 0 holds the planted row."""
    paths = []
    for i in range(files):
        sub = root / f"host{i % 2}" / f"day{i}"
        tickets = tickets_for(i, rows)
        if i == 0:
            tickets.append((999, "Damaged delivery", PLANTED))
        paths.append(make_db(sub / f"load_{i}.db", tickets))
    return paths


def index_state(database_url: str) -> list[tuple[Any, ...]]:
    """Everything that defines the index's content, independent of ids and timing."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        out: list[tuple[Any, ...]] = []
        colls = conn.execute("SELECT id, name FROM dbembed.collections ORDER BY id").fetchall()
        for cid, name in colls:
            rows = conn.execute(
                f"""SELECT s.path, c.table_name, c.row_key, c.chunk_no, c.content_hash, c.text
                    FROM dbembed.chunks_{int(cid)} c JOIN dbembed.sources s ON s.id = c.source_id
                    ORDER BY 1, 2, 3, 4"""
            ).fetchall()
            out.extend((name, *r) for r in rows)
        return out
