"""The per-file listing behind ``dbembed files``, ``GET /v1/files`` and the web page.

One row per source file: status, rows, chunks, what was rejected below the file level, when
a change was last seen, when it was last indexed, how long that took, and the error.  Pages
are keyset pages (``WHERE (sort key, id) > (last sort key, last id)``), never ``OFFSET``, so
page 1,000 of a 100k-file tree costs what page 1 costs; every sort key has an index
(migration 0004).  Functions take a psycopg connection so that any transport can reuse them.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dbembed.errors import InvalidInput, echo, in_range
from dbembed.store.sources import STATUSES

if TYPE_CHECKING:
    import psycopg

# sort name -> SQL expression that is never NULL.  Each has an index in 0004 (same expression), so a
# keyset page is an index range scan; CASTS keeps the cursor value's type equal to the column's.
SORTS: dict[str, str] = {
    "path": "s.path",
    "last_indexed": "coalesce(s.processed_at, '-infinity'::timestamptz)",
    "last_change": "coalesce(s.seen_mtime, -1)",
    "duration": "coalesce(s.duration_s, -1)",
    "rows": "coalesce(s.rows, -1)",
    "chunks": "coalesce(s.chunks, -1)",
    "size": "coalesce(s.seen_size, -1)",
}
CASTS = {"path": "text", "last_indexed": "timestamptz", "last_change": "float8", "duration": "float8",
         "rows": "bigint", "chunks": "bigint", "size": "bigint"}  # fmt: skip
COLUMNS = (
    "id", "collection", "path", "status", "rows", "chunks", "rejected_tables", "rejected_rows",
    "rejected_chunks", "tables", "size", "last_change", "last_indexed", "duration_s", "attempts",
    "run_id", "model", "error",
)  # fmt: skip
_SELECT = """s.id, c.name, s.path, s.status, s.rows, s.chunks, s.rejected_tables, s.rejected_rows,
    s.rejected_chunks, s.tables, s.seen_size,
    CASE WHEN s.seen_mtime IS NULL THEN NULL ELSE to_timestamp(s.seen_mtime) END,
    s.processed_at, s.duration_s, s.attempts, s.run_id, s.model, s.error"""


@dataclass(frozen=True)
class FileRejection:
    """One thing a file's latest index rejected: ``level`` (table, row or chunk), where, and why."""

    level: str
    table: str | None
    row_key: str | None
    chunk_index: int | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FileItem:
    """One file of the listing (one ``dbembed.sources`` row): counts of what its latest index holds
    and rejected, ``size`` in bytes, ``last_change`` (its mtime when last seen) and ``last_indexed``
    as datetimes, ``duration_s`` seconds of its latest index, and ``rejections`` when asked for."""

    id: int
    collection: str
    path: str
    status: str
    rows: int | None
    chunks: int | None
    rejected_tables: int
    rejected_rows: int
    rejected_chunks: int
    tables: int | None
    size: int | None  # bytes
    last_change: datetime | None
    last_indexed: datetime | None
    duration_s: float | None
    attempts: int
    run_id: int | None
    model: str | None
    error: str | None
    rejections: tuple[FileRejection, ...] | None = None  # None: not asked for

    def as_dict(self) -> dict[str, Any]:
        """``COLUMNS`` as keys (plus ``rejections`` when listed), values as stored."""
        out = {name: getattr(self, name) for name in COLUMNS}
        if self.rejections is not None:
            out["rejections"] = [r.as_dict() for r in self.rejections]
        return out


@dataclass(frozen=True)
class FileQuery:
    """What to list.  ``glob``: a shell glob on the path (a bare name matches in any folder);
    ``since``: files indexed, or seen changed, at or after this time; ``sort``: a key of ``SORTS``."""

    collection_id: int | None = None
    status: str | None = None
    glob: str | None = None
    since: datetime | None = None
    sort: str = "path"
    descending: bool = False
    limit: int = 100
    rejected: bool = False  # only files whose latest index rejected a table, row or chunk

    def check(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise InvalidInput(f"status: must be one of {', '.join(STATUSES)} (got {echo(self.status)})", "status")
        if self.sort not in SORTS:
            raise InvalidInput(f"sort: must be one of {', '.join(SORTS)} (got {echo(self.sort)})", "sort")
        in_range("limit", self.limit, 1, 10_000)


def path_like(glob: str) -> str:
    """The LIKE pattern ``dbembed search --file`` uses: a bare name matches in any folder."""
    from dbembed.store.search import glob_to_like  # here: store.search loads numpy, the CLI loads this

    like = glob_to_like(glob)
    if "/" not in glob and not glob.startswith("s3:"):
        return "%/" + like
    if not glob.startswith("/") and not glob.startswith("s3:"):
        return "%" + like
    return like


def encode_cursor(sort_value: Any, last_id: int) -> str:
    value = sort_value.isoformat() if isinstance(sort_value, datetime) else sort_value
    raw = json.dumps([value, int(last_id)], ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, int]:
    try:
        value, last_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return value, int(last_id)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor: invalid cursor (pass back the next_cursor of the previous page)", "cursor") from exc


def _where(q: FileQuery) -> tuple[list[str], dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    if q.collection_id is not None:
        where.append("s.collection_id = %(cid)s")
        params["cid"] = q.collection_id
    if q.status is not None:
        where.append("s.status = %(status)s")
        params["status"] = q.status
    if q.glob:
        where.append("s.path LIKE %(like)s")
        params["like"] = path_like(q.glob)
    if q.rejected:
        where.append("s.rejected_tables + s.rejected_rows + s.rejected_chunks > 0")
    if q.since is not None:
        where.append("(s.processed_at >= %(since)s OR s.seen_mtime >= extract(epoch FROM %(since)s))")
        params["since"] = q.since
    return where, params


def list_files(
    conn: psycopg.Connection, q: FileQuery, cursor: str | None = None
) -> tuple[list[FileItem], str | None]:
    """One page of files: ``(items, next_cursor)``; ``next_cursor`` is None on the last page.
    Raises ``InvalidInput`` for a bad filter or cursor."""
    q.check()
    key = SORTS[q.sort]
    where, params = _where(q)
    if cursor:
        value, last_id = decode_cursor(cursor)
        op = "<" if q.descending else ">"
        cast = CASTS[q.sort]
        where.append(f"({key}, s.id) {op} (%(after)s::{cast}, %(after_id)s)")
        params.update(after=value, after_id=last_id)
    direction = "DESC" if q.descending else "ASC"
    sql = (
        # A timestamp key travels as text ('-infinity' has no Python datetime).
        f"SELECT {_SELECT}, {key if CASTS[q.sort] != 'timestamptz' else f'({key})::text'} AS sort_key"
        " FROM dbembed.sources s"
        " JOIN dbembed.collections c ON c.id = s.collection_id"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY {key} {direction}, s.id {direction} LIMIT %(n)s"
    )
    params["n"] = q.limit + 1
    rows = conn.execute(sql, params).fetchall()  # type: ignore[arg-type]
    items = [FileItem(*r[:-1]) for r in rows[: q.limit]]
    nxt = None
    if len(rows) > q.limit:
        last = rows[q.limit - 1]
        nxt = encode_cursor(last[-1], last[0])
    return items, nxt


def count_files(conn: psycopg.Connection, q: FileQuery) -> dict[str, int]:
    """How many files match the filters (all but status), by status: ``{"indexed": 3, ...}``."""
    where, params = _where(FileQuery(q.collection_id, None, q.glob, q.since, rejected=q.rejected))
    rows = conn.execute(
        "SELECT s.status, count(*) FROM dbembed.sources s"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " GROUP BY s.status",
        params,
    ).fetchall()
    return {str(st): int(n) for st, n in rows}


def rejections(conn: psycopg.Connection, source_ids: list[int], per_file: int = 20) -> dict[int, list[FileRejection]]:
    """What each file's latest index rejected (level table/row/chunk, where, why): at most
    ``per_file`` items per source id, in the order they were recorded."""
    cur = conn.execute(
        """SELECT source_id, level, table_name, row_key, chunk_index, reason FROM (
               SELECT *, row_number() OVER (PARTITION BY source_id ORDER BY id) AS n
               FROM dbembed.rejections WHERE source_id = ANY(%s)) r
           WHERE n <= %s ORDER BY source_id, id""",
        (source_ids, per_file),
    )
    out: dict[int, list[FileRejection]] = {}
    for sid, level, table, key, chunk, reason in cur.fetchall():
        out.setdefault(int(sid), []).append(FileRejection(level, table, key, chunk, reason))
    return out


def collection_overview(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every collection with its files by status and what its indexed files hold: ``name``,
    ``model``, ``dimensions``, ``vector_type``, ``files`` ({status: n}), ``rows``, ``chunks``,
    ``rejected_rows``, ``rejected_chunks``."""
    cur = conn.execute(
        """SELECT c.id, c.name, c.model, c.dimensions, c.vector_type,
                  coalesce((SELECT jsonb_object_agg(status, n) FROM (SELECT status, count(*) AS n
                            FROM dbembed.sources WHERE collection_id = c.id GROUP BY status) g), '{}'::jsonb),
                  coalesce(t.rows, 0), coalesce(t.chunks, 0), coalesce(t.rej_rows, 0), coalesce(t.rej_chunks, 0)
           FROM dbembed.collections c
           LEFT JOIN LATERAL (SELECT sum(rows) AS rows, sum(chunks) AS chunks, sum(rejected_rows) AS rej_rows,
                                     sum(rejected_chunks) AS rej_chunks
                              FROM dbembed.sources WHERE collection_id = c.id AND status = 'indexed') t ON true
           ORDER BY c.id"""
    )
    keys = ("id", "name", "model", "dimensions", "vector_type", "files", "rows", "chunks", "rejected_rows",
            "rejected_chunks")  # fmt: skip
    out = []
    for r in cur.fetchall():
        item = dict(zip(keys, r, strict=True))
        for k in ("rows", "chunks", "rejected_rows", "rejected_chunks"):
            item[k] = int(item[k])
        item["files"] = {str(k): int(v) for k, v in (item["files"] or {}).items()}
        out.append(item)
    return out


@dataclass(frozen=True)
class FilePage:
    """One page of the per-file listing: ``items`` (:class:`FileItem`), ``next_cursor`` (None on the
    last page) and ``counts`` by status over every file matching the filters."""

    items: tuple[FileItem, ...]
    next_cursor: str | None
    counts: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``dbembed files --json`` and ``GET /v1/files``."""
        return {"items": [f.as_dict() for f in self.items], "next_cursor": self.next_cursor, "counts": self.counts}


def parse_since(text: str | datetime | None, what: str = "since") -> datetime | None:
    """The one parser of time bounds (``since``, ``until``) on every surface: an aware datetime,
    or None for None.  Takes an ISO 8601 date or date-time (UTC unless it names an offset), an age
    back from now (``90s``, ``15m``, ``2h``, ``7d``, ``2w``; decimals allowed) or a ``datetime``
    (naive means UTC).  Raises ``InvalidInput`` whose ``field`` is ``what`` (the surface renames it:
    the flag ``--since``, the query parameter ``since``), message ``what: ... (got VALUE)``."""
    if text is None:
        return None
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=UTC)
    if not isinstance(text, str):
        raise InvalidInput(f"{what}: must be an ISO 8601 date/time or an age such as 2h (got {echo(text)})", what)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    try:
        if m:
            unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
            return datetime.now(UTC) - timedelta(seconds=float(m.group(1)) * unit)
        when = datetime.fromisoformat(text.strip())
    except (OverflowError, ValueError):
        raise InvalidInput(
            f"{what}: give an ISO 8601 date/time (2026-11-30, 2026-11-30T14:00, 2026-11-30T14:00+01:00)"
            f" or an age back from now (90s, 15m, 2h, 7d, 2w) (got {echo(text)})",
            what,
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
