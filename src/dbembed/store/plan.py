"""Read-only queries for ``dbembed run --dry-run``: what the index holds, and how fast earlier
runs embedded on this machine and backend.  Nothing here writes (a dry run leaves no trace)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from dbembed.store.collections import Collection


@dataclass(frozen=True)
class KnownSource:
    id: int
    status: str
    size: int | None  # as indexed
    mtime: float | None
    seen_size: int | None
    seen_mtime: float | None
    content_hash: str | None
    rows: int | None
    chunks: int | None
    meta: dict[str, Any]


def schema_exists(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('dbembed.sources') IS NOT NULL").fetchone()
    return bool(row and row[0])


def known_sources(conn: psycopg.Connection, collection_id: int, roots: Sequence[str]) -> dict[str, KnownSource]:
    """path -> what the index recorded, for every file under the roots."""
    rows = conn.execute(
        """SELECT path, id, status, size, mtime, seen_size, seen_mtime, content_hash, rows, chunks, meta
           FROM dbembed.sources WHERE collection_id = %s
             AND EXISTS (SELECT 1 FROM unnest(%s::text[]) r WHERE starts_with(path, r))""",
        (collection_id, list(roots)),
    ).fetchall()
    return {
        p: KnownSource(int(i), st, sz, mt, ssz, smt, ch, nr, nc, meta or {})
        for p, i, st, sz, mt, ssz, smt, ch, nr, nc, meta in rows
    }


def known_hashes(conn: psycopg.Connection, coll: Collection, hashes: Sequence[bytes]) -> set[bytes]:
    """The content hashes among ``hashes`` that the collection already holds a vector for
    (a run reuses those instead of embedding them)."""
    if not hashes:
        return set()
    rows = conn.execute(
        f"SELECT DISTINCT content_hash FROM {coll.table} WHERE content_hash = ANY(%s)", (list(hashes),)
    ).fetchall()
    return {bytes(r[0]) for r in rows}


def throughput_history(
    conn: psycopg.Connection, machine: str, backend: str, limit: int = 5
) -> list[dict[str, float]]:
    """The latest finished runs recorded with this machine and backend that embedded something:
    ``texts`` embedded, ``rows`` read, ``tokens`` (all providers), ``embed_s`` (seconds in the model),
    ``seconds`` (the whole run)."""
    rows = conn.execute(
        """SELECT r.texts_embedded, r.rows,
                  coalesce((SELECT sum((u.value ->> 'tokens')::float8) FROM jsonb_each(r.usage) u), 0),
                  coalesce((r.stats -> 'stage_s' ->> 'embed')::float8, 0), coalesce(r.seconds, 0)
           FROM dbembed.runs r
           WHERE r.stats ->> 'machine' = %s AND r.stats ->> 'backend' = %s AND r.texts_embedded > 0
             AND r.status IN ('ok', 'partial')
           ORDER BY r.id DESC LIMIT %s""",
        (machine, backend, limit),
    ).fetchall()
    return [
        {"texts": float(t), "rows": float(r), "tokens": float(k), "embed_s": float(e), "seconds": float(s)}
        for t, r, k, e, s in rows
    ]


def queued_files(conn: psycopg.Connection, collection_id: int, roots: Sequence[str]) -> list[tuple[str, int | None]]:
    """(path, size) of the files under the roots that a run is about to index, largest first."""
    rows = conn.execute(
        """SELECT path, seen_size FROM dbembed.sources
           WHERE collection_id = %s AND status IN ('queued', 'leased')
             AND EXISTS (SELECT 1 FROM unnest(%s::text[]) r WHERE starts_with(path, r))
           ORDER BY seen_size DESC NULLS LAST, id""",
        (collection_id, list(roots)),
    ).fetchall()
    return [(str(p), None if sz is None else int(sz)) for p, sz in rows]
