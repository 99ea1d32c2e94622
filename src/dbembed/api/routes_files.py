"""File-index endpoints: semantic search over the indexed SQLite rows, files and runs status.

The file index is shared by all tenants (it indexes files, not people); any valid key
may search it.  Search calls ``dbembed.api_lib.search``; the import is guarded so the
API still serves chat when the file index code is not installed (HTTP 503 then).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from dbembed.api.auth import principal, state
from dbembed.chat.history import decode_cursor, encode_cursor
from dbembed.chat.scope import InvalidInput, check_text

router = APIRouter(prefix="/v1", tags=["files"], dependencies=[Depends(principal)])

HIT_FIELDS = ("score", "path", "table", "row_key", "chunk_no", "text")
STATUSES = ("queued", "leased", "indexed", "failed", "pending", "missing")


def _hit(hit: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(hit) and not isinstance(hit, type):
        data = dataclasses.asdict(hit)
    elif isinstance(hit, dict):
        data = dict(hit)
    else:
        data = {f: getattr(hit, f, None) for f in HIT_FIELDS}
    return {k: v for k, v in data.items() if k not in ("vector", "embedding")}


@router.get("/search")
def search_files(
    request: Request,
    q: Annotated[str, Query(min_length=1, description="Search text.")],
    k: Annotated[int, Query(ge=1)] = 10,
    file: Annotated[str | None, Query(max_length=4096, description="Only this file (path or glob).")] = None,
    table: Annotated[str | None, Query(max_length=512, description="Only this SQLite table.")] = None,
) -> dict[str, Any]:
    """Semantic search over the file index."""
    st = state(request)
    check_text(q, "query", st.settings.max_text_chars, allow_empty=False)
    for value, what in ((file, "file"), (table, "table")):
        if value is not None:
            check_text(value, what, 4096)
    if k > st.settings.max_k:
        raise InvalidInput(f"k must be between 1 and {st.settings.max_k}")
    try:
        from dbembed.api_lib import search  # type: ignore[import-not-found]
    except ImportError as exc:
        raise HTTPException(503, f"file index search is not available in this installation ({exc})") from exc
    hits = search(q, k, file=file, table=table, settings=st.settings)
    st.metrics.count("file_searches")
    return {"items": [_hit(h) for h in hits]}


@router.get("/files")
def list_files(
    request: Request,
    status: Annotated[str | None, Query(description="Only files with this status.")] = None,
    limit: Annotated[int, Query(ge=1)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Indexed files and their status (newest id first)."""
    st = state(request)
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
    if limit > st.settings.max_page_size:
        raise InvalidInput(f"limit must be between 1 and {st.settings.max_page_size}")
    before = decode_cursor(cursor, 1)
    with st.connection() as conn:
        rows = conn.execute(
            """SELECT s.id, c.name, s.path, s.status, s.error, s.size, s.tables, s.rows, s.chunks, s.model,
                      s.processed_at, s.duration_s, s.attempts, s.run_id
                 FROM dbembed.sources s JOIN dbembed.collections c ON c.id = s.collection_id
                WHERE (%(status)s::text IS NULL OR s.status = %(status)s::text)
                  AND (%(before)s::bigint IS NULL OR s.id < %(before)s::bigint)
                ORDER BY s.id DESC LIMIT %(n)s""",
            {"status": status, "before": int(before[0]) if before else None, "n": limit + 1},
        ).fetchall()
    cols = ("id", "collection", "path", "status", "error", "size", "tables", "rows", "chunks", "model",
            "processed_at", "duration_s", "attempts", "run_id")  # fmt: skip
    items = [dict(zip(cols, r, strict=True)) for r in rows[:limit]]
    return {"items": items, "next_cursor": encode_cursor([items[-1]["id"]]) if len(rows) > limit else None}


@router.get("/runs")
def list_runs(
    request: Request,
    limit: Annotated[int, Query(ge=1)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Indexing runs, newest first, with their counters."""
    st = state(request)
    if limit > st.settings.max_page_size:
        raise InvalidInput(f"limit must be between 1 and {st.settings.max_page_size}")
    before = decode_cursor(cursor, 1)
    with st.connection() as conn:
        rows = conn.execute(
            """SELECT r.id, c.name, r.worker, r.status, r.started_at, r.finished_at, r.files_ok, r.files_failed,
                      r.files_skipped, r.files_pending, r.files_missing, r.rows, r.chunks, r.seconds, r.error
                 FROM dbembed.runs r LEFT JOIN dbembed.collections c ON c.id = r.collection_id
                WHERE %(before)s::bigint IS NULL OR r.id < %(before)s::bigint
                ORDER BY r.id DESC LIMIT %(n)s""",
            {"before": int(before[0]) if before else None, "n": limit + 1},
        ).fetchall()
    cols = ("id", "collection", "worker", "status", "started_at", "finished_at", "files_ok", "files_failed",
            "files_skipped", "files_pending", "files_missing", "rows", "chunks", "seconds", "error")  # fmt: skip
    items = [dict(zip(cols, r, strict=True)) for r in rows[:limit]]
    return {"items": items, "next_cursor": encode_cursor([items[-1]["id"]]) if len(rows) > limit else None}
