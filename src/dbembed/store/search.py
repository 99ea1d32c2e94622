"""Nearest-neighbour search over one collection's chunks.

Uses the HNSW index (inner product on normalized vectors = cosine).  With file
or table filters, pgvector's iterative index scan (0.8+) keeps scanning until
enough rows pass the filter; results are re-sorted because ``relaxed_order``
may return them slightly out of order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dbembed.store.connection import parse_version

if TYPE_CHECKING:
    import psycopg

    from dbembed.store.collections import Collection


@dataclass(frozen=True)
class Hit:
    score: float  # cosine similarity, 1 = identical
    path: str
    table: str
    row_key: str
    chunk_no: int
    text: str
    metadata: dict[str, Any] | None
    source_id: int
    chunk_id: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def vector_text(vec: np.ndarray) -> str:
    """pgvector's text form; cast in SQL to the collection's column type."""
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vec, dtype=np.float32)) + "]"


def glob_to_like(pattern: str) -> str:
    """Shell glob -> SQL LIKE pattern (``*`` -> ``%``, ``?`` -> ``_``, LIKE metacharacters escaped)."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _iterative_scan_supported(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    return row is not None and parse_version(str(row[0])) >= (0, 8, 0)


def search_chunks(
    conn: psycopg.Connection,
    coll: Collection,
    query_vector: np.ndarray,
    k: int = 10,
    *,
    file: str | None = None,
    table: str | None = None,
    ef_search: int = 100,
    exact: bool = False,
) -> list[Hit]:
    """Top-k chunks by cosine similarity, optionally only from files matching a glob / one table."""
    where: list[str] = []
    params: dict[str, Any] = {"q": vector_text(query_vector), "k": int(k)}
    if file:
        like = glob_to_like(file)
        if "/" not in file and not file.startswith("s3:"):
            like = "%/" + like  # a bare name matches the file name in any folder
        elif not file.startswith("/") and not file.startswith("s3:"):
            like = "%" + like
        params["like"] = like
        where.append(
            "c.source_id = ANY(ARRAY(SELECT id FROM dbembed.sources WHERE collection_id = %(cid)s"
            " AND path LIKE %(like)s))"
        )
        params["cid"] = coll.id
    if table:
        where.append("c.table_name = %(table)s")
        params["table"] = table
    where_sql = ("WHERE " + " AND ".join(where)) if where else ""
    sql = f"""
        WITH hits AS MATERIALIZED (
            SELECT c.id, c.source_id, c.table_name, c.row_key, c.chunk_no, c.text, c.metadata,
                   c.embedding <#> %(q)s::{coll.column_type} AS d
            FROM {coll.table} c {where_sql}
            ORDER BY c.embedding <#> %(q)s::{coll.column_type}
            LIMIT %(k)s)
        SELECT h.id, h.source_id, s.path, h.table_name, h.row_key, h.chunk_no, h.text, h.metadata, h.d
        FROM hits h JOIN dbembed.sources s ON s.id = h.source_id
        ORDER BY h.d, h.id"""
    with conn.transaction():
        conn.execute(f"SET LOCAL hnsw.ef_search = {max(int(ef_search), int(k))}")
        if exact:
            conn.execute("SET LOCAL enable_indexscan = off")
        elif where and _iterative_scan_supported(conn):
            conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        rows = conn.execute(sql, params, binary=False).fetchall()  # type: ignore[arg-type]
    return [
        Hit(
            score=float(-d),
            path=path,
            table=tname,
            row_key=rk,
            chunk_no=int(cn),
            text=text,
            metadata=meta,
            source_id=int(sid),
            chunk_id=int(cid),
        )
        for cid, sid, path, tname, rk, cn, text, meta, d in rows
    ]
