"""Session advisory locks: at most one holder per key across processes and machines (the
scheduler's "one run at a time").  A lock dies with its connection, so nothing goes stale."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg


def try_lock(conn: psycopg.Connection, key: int) -> bool:
    """Take the session advisory lock ``key`` (signed 64-bit) if free; True when this session holds it."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


def unlock(conn: psycopg.Connection, key: int) -> None:
    """Release the session advisory lock ``key`` held by this session."""
    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
