"""Run records: one row per ``dbembed run`` invocation, updated as its workers finish files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dbembed.store.paging import Page, decode_cursor, encode_cursor

if TYPE_CHECKING:
    import psycopg

COUNTERS = (
    "files_ok",
    "files_failed",
    "files_skipped",
    "files_pending",
    "files_missing",
    "rows",
    "chunks",
    "texts_embedded",
    "texts_reused",
)


def start_run(conn: psycopg.Connection, collection_id: int, worker: str, roots: list[str]) -> int:
    row = conn.execute(
        "INSERT INTO dbembed.runs (collection_id, worker, roots) VALUES (%s, %s, %s) RETURNING id",
        (collection_id, worker, roots),
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_counts(conn: psycopg.Connection, run_id: int, counts: dict[str, int]) -> None:
    """Add to the run's counters atomically (several worker processes share one run)."""
    sets = [f"{k} = {k} + %({k})s" for k in COUNTERS if counts.get(k)]
    if not sets:
        return
    conn.execute(
        f"UPDATE dbembed.runs SET {', '.join(sets)}, heartbeat_at = now() WHERE id = %(id)s",
        {**counts, "id": run_id},
    )


def merge_usage(conn: psycopg.Connection, run_id: int, provider: str, usage: dict[str, float]) -> None:
    """Add one worker's provider usage into runs.usage[provider] (key-wise sum)."""
    conn.execute(
        """UPDATE dbembed.runs r SET usage = r.usage || jsonb_build_object(%(p)s::text, (
               SELECT jsonb_object_agg(k, coalesce((r.usage -> %(p)s ->> k)::float8, 0) + v::float8)
               FROM jsonb_each_text(%(u)s::jsonb) AS e(k, v)))
           WHERE id = %(id)s""",
        {"p": provider, "u": json.dumps(usage), "id": run_id},
    )


def note_runtime(conn: psycopg.Connection, run_id: int, runtime: str) -> None:
    """Record which inference runtime embedded this run (e.g. ``openvino bf16``) in runs.stats."""
    conn.execute(
        "UPDATE dbembed.runs SET stats = stats || jsonb_build_object('runtime', %s::text) WHERE id = %s",
        (runtime, run_id),
    )


def merge_stages(conn: psycopg.Connection, run_id: int, stage_s: dict[str, float]) -> None:
    """Add one worker's per-stage seconds into runs.stats.stage_s."""
    if not stage_s:
        return
    conn.execute(
        """UPDATE dbembed.runs r SET stats = r.stats || jsonb_build_object('stage_s', coalesce(r.stats -> 'stage_s',
               '{}'::jsonb) || (SELECT jsonb_object_agg(k, coalesce((r.stats -> 'stage_s' ->> k)::float8, 0)
               + v::float8) FROM jsonb_each_text(%(s)s::jsonb) AS e(k, v)))
           WHERE id = %(id)s""",
        {"s": json.dumps(stage_s), "id": run_id},
    )


def finish_run(
    conn: psycopg.Connection,
    run_id: int,
    status: str,
    seconds: float,
    stats: dict[str, Any],
    error: str | None = None,
) -> None:
    conn.execute(
        """UPDATE dbembed.runs SET finished_at = now(), status = %s, seconds = %s,
               stats = stats || %s::jsonb, error = %s WHERE id = %s""",
        (status, seconds, json.dumps(stats), error, run_id),
    )


def beat(conn: psycopg.Connection, run_id: int) -> None:
    """The run's heartbeat: it is alive (see ``mark_abandoned``)."""
    conn.execute("UPDATE dbembed.runs SET heartbeat_at = now() WHERE id = %s", (run_id,))


def mark_abandoned(conn: psycopg.Connection, after_s: float) -> int:
    """Runs still ``running`` whose heartbeat stopped ``after_s`` seconds ago died with their
    worker (killed, machine gone): record them as ``abandoned``."""
    cur = conn.execute(
        "UPDATE dbembed.runs SET status = 'abandoned', finished_at = coalesce(finished_at, heartbeat_at),"
        " error = coalesce(error, 'the worker stopped (no heartbeat since ' || heartbeat_at || ')')"
        " WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => %s)",
        (after_s,),
    )
    return cur.rowcount or 0


def get_run(conn: psycopg.Connection, run_id: int) -> dict[str, Any]:
    cur = conn.execute("SELECT * FROM dbembed.runs WHERE id = %s", (run_id,))
    row = cur.fetchone()
    assert cur.description is not None and row is not None
    return {d.name: v for d, v in zip(cur.description, row, strict=True)}


def recent_runs(
    conn: psycopg.Connection, collection_id: int | None, limit: int = 10, abandoned_after_s: float = 90.0
) -> list[dict[str, Any]]:
    """Newest runs first; a ``running`` run without a heartbeat for ``abandoned_after_s`` shows as
    ``abandoned`` (its worker died)."""
    cur = conn.execute(
        """SELECT id, worker, started_at, finished_at,
                  CASE WHEN status = 'running' AND heartbeat_at < now() - make_interval(secs => %s)
                       THEN 'abandoned' ELSE status END AS status,
                  files_ok, files_failed, files_skipped,
                  files_pending, files_missing, rows, chunks, texts_embedded, texts_reused, seconds, usage, error,
                  stats ->> 'runtime' AS runtime,
                  coalesce((stats ->> 'files_still_failed')::int, 0) AS files_still_failed
           FROM dbembed.runs WHERE %s::int IS NULL OR collection_id = %s
           ORDER BY id DESC LIMIT %s""",
        (abandoned_after_s, collection_id, collection_id, limit),
    )
    assert cur.description is not None
    names = [d.name for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def page_runs(
    conn: psycopg.Connection, limit: int, before_id: int | None = None, abandoned_after_s: float = 90.0
) -> list[dict[str, Any]]:
    """Runs of every collection, newest first, ids below ``before_id``: counters, seconds, usage and
    ``chunks_per_s`` (chunks written per second of the run; None while it runs).  A ``running`` run
    without a heartbeat for ``abandoned_after_s`` shows as ``abandoned``, as in :func:`recent_runs`."""
    cur = conn.execute(
        """SELECT r.id, c.name AS collection, r.worker,
                  CASE WHEN r.status = 'running'
                            AND r.heartbeat_at < now() - make_interval(secs => %(abandoned)s::float8)
                       THEN 'abandoned' ELSE r.status END AS status, r.started_at, r.finished_at, r.files_ok,
                  r.files_failed, r.files_skipped, r.files_pending, r.files_missing, r.rows, r.chunks,
                  r.texts_embedded, r.texts_reused, r.seconds, r.error, r.usage,
                  coalesce((r.stats ->> 'files_still_failed')::int, 0) AS files_still_failed,
                  CASE WHEN r.seconds > 0 THEN r.chunks / r.seconds END AS chunks_per_s
             FROM dbembed.runs r LEFT JOIN dbembed.collections c ON c.id = r.collection_id
            WHERE %(before)s::bigint IS NULL OR r.id < %(before)s::bigint
            ORDER BY r.id DESC LIMIT %(n)s""",
        {"before": before_id, "n": limit, "abandoned": abandoned_after_s},
    )
    assert cur.description is not None
    names = [d.name for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def runs_page(
    conn: psycopg.Connection, limit: int, cursor: str | None = None, abandoned_after_s: float = 90.0
) -> Page:
    """One page of :func:`page_runs`, newest first: ``limit`` runs after ``cursor`` (the
    ``next_cursor`` of the previous page; None on the last page).  Raises ``InvalidInput`` for a
    cursor that was not handed out here."""
    before = decode_cursor(cursor, 1)
    items = page_runs(conn, limit + 1, int(before[0]) if before else None, abandoned_after_s)
    nxt = encode_cursor([items[limit - 1]["id"]]) if len(items) > limit else None
    return Page(items[:limit], nxt)


def run_rejections(conn: psycopg.Connection, run_id: int) -> dict[str, int]:
    """What the files indexed by this run rejected below the file level: ``{"files", "tables",
    "rows", "chunks"}`` (counts; details per item in ``dbembed.rejections``)."""
    row = conn.execute(
        """SELECT count(*) FILTER (WHERE rejected_tables + rejected_rows + rejected_chunks > 0),
                  coalesce(sum(rejected_tables), 0), coalesce(sum(rejected_rows), 0),
                  coalesce(sum(rejected_chunks), 0)
           FROM dbembed.sources WHERE run_id = %s AND status = 'indexed'""",
        (run_id,),
    ).fetchone()
    assert row is not None
    return dict(zip(("files", "tables", "rows", "chunks"), (int(v) for v in row), strict=True))


@dataclass(frozen=True)
class RunFailure:
    """A file that failed in a run, with its one-line error ('' when none was recorded)."""

    path: str
    error: str


def run_failures(conn: psycopg.Connection, run_id: int) -> list[RunFailure]:
    """The files this run failed, by path."""
    rows = conn.execute(
        "SELECT path, error FROM dbembed.sources WHERE run_id = %s AND status = 'failed' ORDER BY path",
        (run_id,),
    ).fetchall()
    return [RunFailure(str(p), e or "") for p, e in rows]


def set_skip_counts(
    conn: psycopg.Connection, run_id: int, skipped: int, pending: int, still_failed: int = 0
) -> None:
    """Set (not add) the run's counts known only at its end: files skipped as unchanged, files left
    pending, and files that failed in an earlier run and were not retried (``stats``)."""
    conn.execute(
        "UPDATE dbembed.runs SET files_skipped = %s, files_pending = %s,"
        " stats = stats || jsonb_build_object('files_still_failed', %s::int) WHERE id = %s",
        (skipped, pending, still_failed, run_id),
    )


def clock(conn: psycopg.Connection) -> datetime:
    """The database server's current time (``clock_timestamp()``, not the transaction's start):
    what a discovery's ``seen_at`` stamps are compared with."""
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]
