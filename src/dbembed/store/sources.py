"""The per-file record and the work queue, both in ``dbembed.sources``.

Many ``dbembed run`` processes on many machines share one index with no
coordinator: each one upserts what it discovered, then claims queued files
with ``FOR UPDATE SKIP LOCKED`` and a lease it keeps alive with heartbeats.  A
worker that dies stops heartbeating; its lease expires and another worker takes
the file over.  A file's write transaction re-checks the lease (fencing), so a
worker that lost its lease can never overwrite the new owner's work.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbembed.errors import LeaseLost

if TYPE_CHECKING:
    import psycopg

    from dbembed.discover import FoundFile

STATUSES = ("queued", "leased", "indexed", "failed", "pending", "missing")


@dataclass(frozen=True)
class Claim:
    id: int
    path: str
    seen_size: int | None
    seen_mtime: float | None
    size: int | None  # as of the last successful index
    mtime: float | None
    content_hash: str | None
    meta: dict[str, Any]


def upsert_discovered(
    conn: psycopg.Connection, collection_id: int, found: Sequence[FoundFile], settle_cutoff: float
) -> None:
    """Record what discovery saw and decide each file's queue state.

    ``settle_cutoff``: files modified after this epoch time are still being written -> ``pending``.
    Unchanged indexed files stay ``indexed`` (a rerun costs a stat per file and this one statement);
    unchanged failed files stay ``failed`` unless their failure was transient (``meta.retryable``).
    """
    if not found:
        return
    paths = [f.path for f in found]
    sizes = [f.size for f in found]
    mtimes = [f.mtime for f in found]
    etags = [f.etag for f in found]
    conn.execute(
        """
        INSERT INTO dbembed.sources AS s (collection_id, path, seen_size, seen_mtime, seen_at, status, meta)
        SELECT %(cid)s, t.p, t.sz, t.mt, clock_timestamp(),
               CASE WHEN t.mt > %(cutoff)s THEN 'pending' ELSE 'queued' END,
               CASE WHEN t.et IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('etag', t.et) END
        FROM unnest(%(paths)s::text[], %(sizes)s::bigint[], %(mtimes)s::float8[], %(etags)s::text[])
             AS t(p, sz, mt, et)
        ON CONFLICT (collection_id, path) DO UPDATE SET
            -- The time of this write, never older than what another worker already wrote: a
            -- concurrent discovery whose statement began earlier but waited on our row locks must
            -- not make a file look unseen since our discovery started (see vanished()).
            seen_at = greatest(s.seen_at, clock_timestamp()),
            seen_size = EXCLUDED.seen_size,
            seen_mtime = EXCLUDED.seen_mtime,
            meta = s.meta || EXCLUDED.meta,
            status = CASE
                WHEN s.status IN ('leased', 'queued') THEN s.status
                WHEN s.status = 'indexed' AND s.size = EXCLUDED.seen_size
                     AND s.mtime = EXCLUDED.seen_mtime THEN 'indexed'
                WHEN s.status = 'failed' AND s.seen_size IS NOT DISTINCT FROM EXCLUDED.seen_size
                     AND s.seen_mtime IS NOT DISTINCT FROM EXCLUDED.seen_mtime
                     AND coalesce((s.meta ->> 'retryable')::boolean, false) = false THEN 'failed'
                WHEN EXCLUDED.seen_mtime > %(cutoff)s THEN 'pending'
                ELSE 'queued' END
        """,
        {
            "cid": collection_id,
            "cutoff": settle_cutoff,
            "paths": paths,
            "sizes": sizes,
            "mtimes": mtimes,
            "etags": etags,
        },
    )


def requeue(conn: psycopg.Connection, collection_id: int, ids: Sequence[int]) -> None:
    if ids:
        conn.execute(
            "UPDATE dbembed.sources SET status = 'queued' WHERE collection_id = %s AND id = ANY(%s)"
            " AND status IN ('indexed', 'failed', 'pending')",
            (collection_id, list(ids)),
        )


def requeue_stale_settings(
    conn: psycopg.Connection, collection_id: int, roots: Sequence[str], read_fp: str
) -> int:
    """Queue indexed files under the roots that were read with other document settings
    (``meta.read_fp``, see ``dbembed.run.reading.read_fingerprint``): e.g. a rerun with ``--views``."""
    cur = conn.execute(
        """UPDATE dbembed.sources SET status = 'queued'
           WHERE collection_id = %s AND status = 'indexed' AND meta ->> 'read_fp' IS DISTINCT FROM %s
             AND EXISTS (SELECT 1 FROM unnest(%s::text[]) r WHERE starts_with(path, r))""",
        (collection_id, read_fp, list(roots)),
    )
    return cur.rowcount or 0


def indexed_under(
    conn: psycopg.Connection, collection_id: int, roots: Sequence[str]
) -> list[tuple[int, str, str]]:
    """(id, path, content_hash) of indexed files under the roots (for --verify)."""
    rows = conn.execute(
        """SELECT id, path, coalesce(content_hash, '') FROM dbembed.sources
           WHERE collection_id = %s AND status = 'indexed'
             AND EXISTS (SELECT 1 FROM unnest(%s::text[]) r WHERE starts_with(path, r))""",
        (collection_id, list(roots)),
    ).fetchall()
    return [(int(a), str(b), str(c)) for a, b, c in rows]


def vanished(
    conn: psycopg.Connection, collection_id: int, roots: Sequence[str], discovery_started: Any
) -> list[int]:
    """Files under these roots that this discovery did not see (and nobody is working on)."""
    rows = conn.execute(
        """SELECT id FROM dbembed.sources
           WHERE collection_id = %s AND status NOT IN ('missing', 'leased')
             AND (seen_at IS NULL OR seen_at < %s)
             AND EXISTS (SELECT 1 FROM unnest(%s::text[]) r WHERE starts_with(path, r))""",
        (collection_id, discovery_started, list(roots)),
    ).fetchall()
    return [int(r[0]) for r in rows]


def claim(
    conn: psycopg.Connection,
    collection_id: int,
    roots: Sequence[str],
    owner: str,
    lease_s: float,
    run_id: int | None,
    limit: int = 1,
    max_bytes: int | None = None,
    *,
    fair_share: bool = False,
) -> list[Claim]:
    """Lease up to ``limit`` queued (or abandoned: lease expired) files, largest first.

    With ``max_bytes``, the batch stops before the files' sizes add up to more than that (the
    first file is always taken): many small files cost one claim, while big files are still
    handed out one at a time so that other workers share them.

    With ``fair_share``, a claim also takes at most its share of the pending files: pending divided
    by the live workers (those holding unexpired leases under this collection, this one included)
    plus one, so that a worker that starts a moment later still finds work on a small tree.
    """
    rows = conn.execute(
        """
        WITH live AS (
            SELECT count(DISTINCT lease_owner) AS n FROM dbembed.sources
            WHERE collection_id = %(cid)s AND status = 'leased' AND lease_expires >= now()
              AND lease_owner <> %(owner)s),
        pending AS (
            SELECT count(*) AS n FROM (
                SELECT 1 FROM dbembed.sources
                WHERE collection_id = %(cid)s
                  AND (status = 'queued' OR (status = 'leased' AND lease_expires < now()))
                  AND EXISTS (SELECT 1 FROM unnest(%(roots)s::text[]) r WHERE starts_with(path, r))
                LIMIT %(probe)s) p
            WHERE %(fair)s)
        UPDATE dbembed.sources s
        SET status = 'leased', lease_owner = %(owner)s,
            lease_expires = now() + make_interval(secs => %(lease)s),
            attempts = s.attempts + 1, run_id = %(run)s
        WHERE s.id IN (
            SELECT id FROM (
                SELECT id, row_number() OVER w AS n, sum(coalesce(seen_size, 0)) OVER w AS total
                FROM (
                    SELECT id, seen_size FROM dbembed.sources
                    WHERE collection_id = %(cid)s
                      AND (status = 'queued' OR (status = 'leased' AND lease_expires < now()))
                      AND EXISTS (SELECT 1 FROM unnest(%(roots)s::text[]) r WHERE starts_with(path, r))
                    ORDER BY seen_size DESC NULLS LAST, id
                    LIMIT (SELECT CASE WHEN %(fair)s
                                  THEN least(%(limit)s, greatest(1, ceil(pending.n / (live.n + 2.0))))::int
                                  ELSE %(limit)s END
                           FROM live, pending)
                    FOR UPDATE SKIP LOCKED) c
                WINDOW w AS (ORDER BY seen_size DESC NULLS LAST, id)) b
            WHERE n = 1 OR %(max_bytes)s::bigint IS NULL OR total <= %(max_bytes)s::bigint)
        RETURNING s.id, s.path, s.seen_size, s.seen_mtime, s.size, s.mtime, s.content_hash, s.meta
        """,
        {
            "owner": owner,
            "lease": lease_s,
            "run": run_id,
            "cid": collection_id,
            "roots": list(roots),
            "limit": limit,
            "max_bytes": max_bytes,
            "fair": fair_share,
            "probe": limit * 64,
        },
    ).fetchall()
    claims = [Claim(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7] or {}) for r in rows]
    claims.sort(key=lambda c: (-(c.seen_size or 0), c.id))  # RETURNING has no order of its own
    return claims


def heartbeat(conn: psycopg.Connection, owner: str, lease_s: float) -> int:
    """Extend our leases.  SKIP LOCKED: a row locked by our own file transaction needs no extension
    (nobody can steal a row we hold locked) and must not block the heartbeat."""
    cur = conn.execute(
        """UPDATE dbembed.sources SET lease_expires = now() + make_interval(secs => %s)
           WHERE id IN (SELECT id FROM dbembed.sources WHERE lease_owner = %s AND status = 'leased'
                        FOR UPDATE SKIP LOCKED)""",
        (lease_s, owner),
    )
    return cur.rowcount or 0


def lock_lease(conn: psycopg.Connection, source_id: int, owner: str) -> None:
    """Inside the file transaction: lock our source row and check we still hold the lease."""
    holder = lock_leases(conn, [source_id]).get(source_id)
    if holder != owner:
        raise LeaseLost(f"lease on source {source_id} was taken over by {holder or 'nobody'}")


def lock_leases(conn: psycopg.Connection, source_ids: Sequence[int]) -> dict[int, str | None]:
    """Inside a file (or group) transaction: lock these source rows (in id order, so two workers
    never deadlock) and return ``{id: lease owner}`` (a file whose lease is not ours is not ours to write)."""
    rows = conn.execute(
        "SELECT id, lease_owner FROM dbembed.sources WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
        (list(source_ids),),
    ).fetchall()
    return {int(sid): lo for sid, lo in rows}


@dataclass(frozen=True)
class IndexedFile:
    """What a successful index of one file records in its ``dbembed.sources`` row."""

    source_id: int
    size: int | None  # bytes, as read
    mtime: float | None  # epoch seconds, as read
    tables: int
    rows: int  # rows read
    chunks: int  # chunks the file holds in the index afterwards
    model: str
    duration_s: float
    run_id: int | None
    error: str | None = None  # the note of a partly rejected file (None: nothing was rejected)
    content_hash: str | None = None  # --verify: the file's BLAKE2b (None keeps the stored one)
    meta: dict[str, Any] = field(default_factory=dict)  # merged into ``meta``


def mark_indexed(conn: psycopg.Connection, owner: str, files: Sequence[IndexedFile]) -> None:
    """Record files as indexed in one statement (inside their transaction, which must hold the lease:
    raises ``LeaseLost`` when a row's lease moved on, and the caller rolls back).  ``processed_at`` is
    the moment of this statement (``clock_timestamp()``), after the files' work, not the transaction's
    start; rows committed together share their transaction id (``xmin``), not their time."""
    if not files:
        return
    cur = conn.execute(
        """UPDATE dbembed.sources s SET status = 'indexed', error = f.error, size = f.size, mtime = f.mtime,
               seen_size = f.size, seen_mtime = f.mtime,
               content_hash = coalesce(f.content_hash, s.content_hash), tables = f.tables, rows = f.rows,
               chunks = f.chunks, model = f.model, processed_at = clock_timestamp(), duration_s = f.duration_s,
               run_id = %(run_id)s, lease_owner = NULL, lease_expires = NULL,
               meta = (s.meta - 'retryable') || f.meta
           FROM unnest(%(ids)s::bigint[], %(errors)s::text[], %(sizes)s::bigint[], %(mtimes)s::float8[],
                       %(hashes)s::text[], %(tables)s::int[], %(rows)s::bigint[], %(chunks)s::bigint[],
                       %(models)s::text[], %(durations)s::float8[], %(metas)s::jsonb[])
                AS f(id, error, size, mtime, content_hash, tables, rows, chunks, model, duration_s, meta)
           WHERE s.id = f.id AND s.lease_owner = %(owner)s""",
        {
            "run_id": files[0].run_id,
            "owner": owner,
            "ids": [f.source_id for f in files],
            "errors": [f.error for f in files],
            "sizes": [f.size for f in files],
            "mtimes": [f.mtime for f in files],
            "hashes": [f.content_hash for f in files],
            "tables": [f.tables for f in files],
            "rows": [f.rows for f in files],
            "chunks": [f.chunks for f in files],
            "models": [f.model for f in files],
            "durations": [f.duration_s for f in files],
            "metas": [json.dumps(f.meta) for f in files],
        },
    )
    if cur.rowcount != len(files):
        raise LeaseLost(f"a lease on sources {[f.source_id for f in files]} was lost before commit")


def mark_failed(
    conn: psycopg.Connection,
    source_id: int,
    owner: str,
    error: str,
    *,
    seen_size: int | None,
    seen_mtime: float | None,
    retryable: bool,
    duration_s: float,
    run_id: int | None,
) -> bool:
    """Record a failure; the file's previously indexed chunks are left as they were."""
    cur = conn.execute(
        """UPDATE dbembed.sources SET status = 'failed', error = %s, seen_size = %s, seen_mtime = %s,
               processed_at = clock_timestamp(), duration_s = %s, run_id = %s, lease_owner = NULL, lease_expires = NULL,
               meta = meta || jsonb_build_object('retryable', %s::boolean)
           WHERE id = %s AND lease_owner = %s""",
        (error[:2000], seen_size, seen_mtime, duration_s, run_id, retryable, source_id, owner),
    )
    return cur.rowcount == 1


def release(conn: psycopg.Connection, source_id: int, owner: str, status: str = "queued") -> None:
    """Give a claimed file back (still being written -> pending; interrupted -> queued)."""
    conn.execute(
        """UPDATE dbembed.sources SET status = %s, lease_owner = NULL, lease_expires = NULL
           WHERE id = %s AND lease_owner = %s""",
        (status, source_id, owner),
    )


def release_all(conn: psycopg.Connection, owner: str) -> None:
    conn.execute(
        """UPDATE dbembed.sources SET status = 'queued', lease_owner = NULL, lease_expires = NULL
           WHERE lease_owner = %s AND status = 'leased'""",
        (owner,),
    )


def retry_failed(conn: psycopg.Connection, collection_id: int, paths: Sequence[str] | None = None) -> int:
    if paths:
        cur = conn.execute(
            "UPDATE dbembed.sources SET status = 'queued' WHERE collection_id = %s AND status = 'failed'"
            " AND path = ANY(%s)",
            (collection_id, list(paths)),
        )
    else:
        cur = conn.execute(
            "UPDATE dbembed.sources SET status = 'queued' WHERE collection_id = %s AND status = 'failed'",
            (collection_id,),
        )
    return cur.rowcount or 0


def lease_owners_on_host(conn: psycopg.Connection, collection_id: int, host: str) -> list[str]:
    """Owners (``host:pid:tag``) of this host holding leases in the collection."""
    rows = conn.execute(
        "SELECT DISTINCT lease_owner FROM dbembed.sources WHERE collection_id = %s AND status = 'leased'"
        " AND lease_owner LIKE %s",
        (collection_id, host.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ":%"),
    ).fetchall()
    return [str(r[0]) for r in rows]


def expire_leases(conn: psycopg.Connection, owner: str) -> None:
    """Expire every lease of ``owner`` now (a dead process of this host): others take its files over."""
    conn.execute(
        "UPDATE dbembed.sources SET lease_expires = now() - interval '1 second' WHERE lease_owner = %s",
        (owner,),
    )


def count_under(
    conn: psycopg.Connection, collection_id: int, roots: Sequence[str], statuses: Sequence[str]
) -> int:
    """Files under the roots in one of these statuses."""
    row = conn.execute(
        """SELECT count(*) FROM dbembed.sources WHERE collection_id = %s AND status = ANY(%s)
           AND EXISTS (SELECT 1 FROM unnest(%s::text[]) r WHERE starts_with(path, r))""",
        (collection_id, list(statuses), list(roots)),
    ).fetchone()
    return int(row[0]) if row else 0


def mark_missing(conn: psycopg.Connection, source_id: int, *, keep_chunks: bool) -> None:
    """Record a file as gone from the tree (its chunks are deleted by the caller unless kept)."""
    conn.execute(
        "UPDATE dbembed.sources SET status = 'missing', error = NULL,"
        " chunks = CASE WHEN %s THEN chunks ELSE 0 END, processed_at = now() WHERE id = %s",
        (keep_chunks, source_id),
    )


def requeue_under(conn: psycopg.Connection, collection_id: int, roots: Sequence[str]) -> int:
    """``--force``: queue every indexed or failed file under the roots again; returns how many."""
    cur = conn.execute(
        """UPDATE dbembed.sources SET status = 'queued' WHERE collection_id = %s
           AND status IN ('indexed', 'failed')
           AND EXISTS (SELECT 1 FROM unnest(%s::text[]) r WHERE starts_with(path, r))""",
        (collection_id, list(roots)),
    )
    return cur.rowcount or 0
