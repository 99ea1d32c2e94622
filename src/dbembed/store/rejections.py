"""What a run rejected below the file level (migration 0003): tables, rows and chunks, with reasons.

A file's rejections describe its latest successful index: they are replaced inside the file's
transaction (``replace``), so they commit or roll back with its chunks.  ``status``, ``files``,
the HTTP API and the web page read them back with :func:`for_sources` / :func:`summary`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    import psycopg

Level = Literal["table", "row", "chunk"]
MAX_LISTED = 1000  # per file and level; the counters in dbembed.sources hold the full numbers


@dataclass(frozen=True)
class Rejection:
    level: Level
    reason: str
    table_name: str | None = None
    row_key: str | None = None
    chunk_index: int | None = None


@dataclass(frozen=True)
class FileRejections:
    """One file's rejections: the listed ``items`` (capped) and the full ``counts`` per level."""

    source_id: int
    items: Sequence[Rejection]
    counts: dict[str, int]


def replace(
    conn: psycopg.Connection,
    source_id: int,
    run_id: int | None,
    items: Sequence[Rejection],
    counts: dict[str, int],
) -> None:
    """Inside the file's transaction: forget the file's previous rejections, record these.

    ``counts`` holds the full numbers per level (``items`` may be capped at ``MAX_LISTED``)."""
    replace_files(conn, run_id, [FileRejections(source_id, items, counts)])


def replace_files(conn: psycopg.Connection, run_id: int | None, files: Sequence[FileRejections]) -> None:
    """``replace`` for several files in three statements (inside their transaction)."""
    if not files:
        return
    ids = [f.source_id for f in files]
    conn.execute("DELETE FROM dbembed.rejections WHERE source_id = ANY(%s)", (ids,))
    conn.execute(
        """UPDATE dbembed.sources s SET rejected_tables = r.t, rejected_rows = r.r, rejected_chunks = r.c
           FROM unnest(%s::bigint[], %s::int[], %s::int[], %s::int[]) AS r(id, t, r, c) WHERE s.id = r.id""",
        (
            ids,
            [f.counts.get("table", 0) for f in files],
            [f.counts.get("row", 0) for f in files],
            [f.counts.get("chunk", 0) for f in files],
        ),
    )
    rows = [
        (f.source_id, run_id, r.level, r.table_name, r.row_key, r.chunk_index, r.reason[:2000])
        for f in files
        for r in f.items
    ]
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dbembed.rejections (source_id, run_id, level, table_name, row_key, chunk_index, reason)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            rows,
        )


def requeue_rejected_chunks(conn: psycopg.Connection, collection_id: int, roots: Sequence[str]) -> int:
    """Indexed files with chunks the provider rejected go back to the queue: a rejection may be
    transient (a throttled or flaky provider), so the next run retries those chunks."""
    cur = conn.execute(
        """UPDATE dbembed.sources SET status = 'queued' WHERE collection_id = %s AND status = 'indexed'
           AND rejected_chunks > 0
           AND EXISTS (SELECT 1 FROM unnest(%s::text[]) r WHERE starts_with(path, r))""",
        (collection_id, list(roots)),
    )
    return cur.rowcount or 0


def summary(
    conn: psycopg.Connection, collection_id: int, limit: int = 50, per_file: int = 20
) -> dict[str, Any]:
    """Totals over the collection and, per file with rejections, its counts and listed reasons."""
    row = conn.execute(
        "SELECT coalesce(sum(rejected_tables), 0), coalesce(sum(rejected_rows), 0),"
        " coalesce(sum(rejected_chunks), 0), count(*) FILTER (WHERE rejected_tables + rejected_rows"
        " + rejected_chunks > 0) FROM dbembed.sources WHERE collection_id = %s",
        (collection_id,),
    ).fetchone()
    assert row is not None
    files = conn.execute(
        """SELECT id, path, rejected_tables, rejected_rows, rejected_chunks FROM dbembed.sources
           WHERE collection_id = %s AND rejected_tables + rejected_rows + rejected_chunks > 0
           ORDER BY path LIMIT %s""",
        (collection_id, limit),
    ).fetchall()
    listed = for_sources(conn, [f[0] for f in files], per_file)
    return {
        "tables": int(row[0]),
        "rows": int(row[1]),
        "chunks": int(row[2]),
        "files": int(row[3]),
        "by_file": [
            {"file": path, "tables": t, "rows": r, "chunks": c, "items": listed.get(sid, [])}
            for sid, path, t, r, c in files
        ],
    }


def for_sources(
    conn: psycopg.Connection, source_ids: Sequence[int], per_file: int = 20
) -> dict[int, list[dict[str, Any]]]:
    """Up to ``per_file`` rejections of each source (tables first, then rows, then chunks)."""
    if not source_ids:
        return {}
    rows = conn.execute(
        """SELECT source_id, level, table_name, row_key, chunk_index, reason FROM (
               SELECT *, row_number() OVER (PARTITION BY source_id ORDER BY
                   array_position(ARRAY['table', 'row', 'chunk'], level), table_name, row_key, chunk_index) AS n
               FROM dbembed.rejections WHERE source_id = ANY(%s)) x
           WHERE n <= %s ORDER BY source_id, n""",
        (list(source_ids), per_file),
    ).fetchall()
    out: dict[int, list[dict[str, Any]]] = {}
    for sid, level, table, key, chunk, reason in rows:
        out.setdefault(sid, []).append(
            {"level": level, "table": table, "row_key": key, "chunk_index": chunk, "reason": reason}
        )
    return out
