"""Search over one collection's chunks: vector, lexical, or both fused (hybrid).

- **vector**: nearest neighbours on the HNSW index (inner product on normalized vectors =
  cosine).  With file or table filters, pgvector's iterative index scan (0.8+) keeps
  scanning until enough rows pass the filter; results are re-sorted because
  ``relaxed_order`` may return them slightly out of order.
- **lexical**: rows holding the query's tokens (:mod:`dbembed.text.lexical`, GIN index),
  ranked by the idf-weighted share of the query's tokens they hold (:mod:`dbembed.store.lexical`).
- **hybrid**: both ranked lists (each :func:`candidate_depth` deep, same filters) fused by
  reciprocal rank fusion, ``score = sum 1 / (RRF_K + rank)``.  ``RRF_K = 60`` is the value of
  Cormack, Clarke and Büttcher (SIGIR 2009), who found it near the best across collections:
  a large k flattens the difference between ranks 1 and 5 of one list, so a row both lists
  rank well beats a row only one list ranks first, and neither list's raw scores (cosine
  vs token share, incomparable scales) matter, only the ranks.  Two refinements, chosen on
  ``benchmarks/bench_quality.py`` (see benchmarks/README.md for the numbers):

  * the lexical list keeps only rows holding at least :data:`LEXICAL_KEEP` of the best lexical
    row's score: rows sharing a word or two with the query are noise that would push the
    vector list's answer out of the top k (a paraphrase shares a few common words with
    many rows);
  * equal fused scores (a row first in one list only vs a row first in the other) go to the
    lexical list when its best row holds *every* token of the query (an exact phrase, name
    or code), else to the vector list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from dbembed.store.connection import parse_version
from dbembed.store.lexical import MATCH_SQL, SCORE_SQL, TIEBREAK_SQL, QueryPlan, query_plan, score_sql

if TYPE_CHECKING:
    import psycopg

    from dbembed.store.collections import Collection


MODES = ("hybrid", "vector", "lexical")
RRF_K = 60
LEXICAL_KEEP = 0.5  # hybrid: lexical rows scoring below this share of the best lexical row are dropped
FULL_MATCH = 0.999  # a lexical score this high: the row holds every token of the query
_ASCII_FOLD = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'"


@dataclass(frozen=True)
class Hit:
    score: float  # the mode's score: cosine (vector), token share (lexical), RRF sum (hybrid)
    path: str
    table: str
    row_key: str
    chunk_no: int
    text: str
    metadata: dict[str, Any] | None
    source_id: int
    chunk_id: int
    rank: int = 0  # 1-based position in the returned list (the fused rank in hybrid mode)
    vector_score: float | None = None  # cosine similarity to the query, 1 = identical
    lexical_score: float | None = None  # idf-weighted share of the query's tokens in the chunk, 0..1
    vector_rank: int | None = None  # rank in the vector list (vector, hybrid), None if not in it
    lexical_rank: int | None = None  # rank in the lexical list (lexical, hybrid), None if not in it

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


def set_hnsw_scan(conn: psycopg.Connection, ef_search: int, n: int, *, iterative: bool) -> None:
    """Transaction-local HNSW settings for one search (one round trip, on either transport):
    ``hnsw.ef_search`` at least ``n``; with ``iterative``, pgvector's iterative index scan
    (relaxed order), so a filtered search keeps scanning until ``n`` rows pass the filter."""
    iterate = ", set_config('hnsw.iterative_scan', 'relaxed_order', true)" if iterative else ""
    conn.execute(
        f"SELECT set_config('hnsw.ef_search', %s, true){iterate}", (str(max(int(ef_search), int(n))),)
    )


def rrf(ranked_lists: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: ids ranked by ``sum over lists of 1 / (k + rank)`` (rank from 1),
    best first; ties keep the order in which ids were first seen (earlier list first)."""
    scores: dict[int, float] = {}
    for ranked in ranked_lists:
        for rank, item in enumerate(ranked, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    order = {item: i for i, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def candidate_depth(k: int) -> int:
    """How many rows each list contributes to the fusion: 2k (at least 20).  Deeper lists let
    rows that both lists rank moderately (noise, for a query one side cannot answer) crowd out
    a row that one list ranks first."""
    return max(20, 2 * int(k))


def fuse(
    vector_ids: Sequence[int], lexical: Sequence[tuple[int, float]], k: int = RRF_K
) -> list[tuple[int, float]]:
    """The hybrid ranking: ``vector_ids`` best first, ``lexical`` as (id, lexical score) best
    first; see the module docstring.  Returns (id, fused score), best first."""
    top = lexical[0][1] if lexical else 0.0
    kept = [i for i, score in lexical if score >= LEXICAL_KEEP * top]
    if top >= FULL_MATCH:
        return rrf([kept, list(vector_ids)], k)
    return rrf([list(vector_ids), kept], k)


class Fused(NamedTuple):
    """One hybrid result: the candidate row (the vector list's when both lists hold it), its
    fused score and rank (from 1), its rank in each list and its lexical list score."""

    row: tuple[Any, ...]
    score: float
    rank: int
    vector_rank: int | None
    lexical_rank: int | None
    lexical_score: float | None


def fuse_rows(
    vector_rows: Sequence[tuple[Any, ...]],
    lexical_rows: Sequence[tuple[Any, ...]],
    k: int,
    *,
    lexical_col: int,
) -> list[Fused]:
    """The ``k`` best of two candidate lists (rows whose column 0 is the id, best first;
    ``lexical_col`` is a lexical row's score), fused by :func:`fuse`.  File search and chat
    memory search both rank hybrid results with it."""
    by_id = {int(r[0]): r for r in (*lexical_rows, *vector_rows)}
    vrank = {int(r[0]): i for i, r in enumerate(vector_rows, 1)}
    lexical = [(int(r[0]), float(r[lexical_col])) for r in lexical_rows]
    lrank = {rid: i for i, (rid, _) in enumerate(lexical, 1)}
    lscore = dict(lexical)
    return [
        Fused(by_id[rid], score, i, vrank.get(rid), lrank.get(rid), lscore.get(rid))
        for i, (rid, score) in enumerate(fuse(list(vrank), lexical)[:k], 1)
    ]


def _filters(coll: Collection, file: str | None, table: str | None) -> tuple[list[str], dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
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
        # SQLite names are case-insensitive for ASCII letters only: match them the same way.
        where.append(f"translate(c.table_name, {_ASCII_FOLD}) = translate(%(table)s, {_ASCII_FOLD})")
        params["table"] = table
    return where, params


_COLS = "h.id, h.source_id, s.path, h.table_name, h.row_key, h.chunk_no, h.text, h.metadata"


def _vector_rows(
    conn: psycopg.Connection,
    coll: Collection,
    vec: np.ndarray,
    n: int,
    where: list[str],
    params: dict[str, Any],
    *,
    plan: QueryPlan | None,
    ef_search: int,
    exact: bool,
) -> list[tuple[Any, ...]]:
    """Rows ``(id, source_id, path, table, row_key, chunk_no, text, metadata, cosine, lexical)``."""
    where_sql = ("WHERE " + " AND ".join(where)) if where else ""
    lex = f"(SELECT {score_sql('x')} FROM {coll.table} x WHERE x.id = h.id)"
    params = {**params, "q": vector_text(vec), "n": int(n), **(plan.params() if plan else {})}
    sql = f"""
        WITH hits AS MATERIALIZED (
            SELECT c.id, c.source_id, c.table_name, c.row_key, c.chunk_no, c.text, c.metadata,
                   c.embedding <#> %(q)s::{coll.column_type} AS d
            FROM {coll.table} c {where_sql}
            ORDER BY c.embedding <#> %(q)s::{coll.column_type}
            LIMIT %(n)s)
        SELECT {_COLS}, -h.d, {lex if plan else "NULL::float8"}
        FROM hits h JOIN dbembed.sources s ON s.id = h.source_id
        ORDER BY h.d, h.id"""
    with conn.transaction():
        set_hnsw_scan(
            conn, ef_search, n, iterative=bool(where) and not exact and _iterative_scan_supported(conn)
        )
        if exact:
            conn.execute("SET LOCAL enable_indexscan = off")
        return conn.execute(sql, params, binary=False).fetchall()  # type: ignore[arg-type]


def _lexical_rows(
    conn: psycopg.Connection,
    coll: Collection,
    plan: QueryPlan,
    vec: np.ndarray | None,
    n: int,
    where: list[str],
    params: dict[str, Any],
) -> list[tuple[Any, ...]]:
    """Rows ``(id, source_id, path, table, row_key, chunk_no, text, metadata, cosine, lexical)``."""
    conds = " AND ".join([MATCH_SQL, *where])
    params = {**params, **plan.params(), "n": int(n)}
    cos = "NULL::float8"
    if vec is not None:
        params["q"] = vector_text(vec)
        cos = f"(SELECT -(x.embedding <#> %(q)s::{coll.column_type}) FROM {coll.table} x WHERE x.id = h.id)"
    sql = f"""
        WITH hits AS MATERIALIZED (
            SELECT c.id, c.source_id, c.table_name, c.row_key, c.chunk_no, c.text, c.metadata,
                   {SCORE_SQL} AS ls, {TIEBREAK_SQL} AS tb
            FROM {coll.table} c WHERE {conds}
            ORDER BY ls DESC, tb DESC, c.id
            LIMIT %(n)s)
        SELECT {_COLS}, {cos}, h.ls
        FROM hits h JOIN dbembed.sources s ON s.id = h.source_id
        ORDER BY h.ls DESC, h.tb DESC, h.id"""
    rows = conn.execute(sql, params, binary=False).fetchall()  # type: ignore[arg-type]
    wider = plan.widened()
    if not rows and wider is not None:
        return _lexical_rows(conn, coll, wider, vec, n, where, params)
    return rows


def _hit(row: tuple[Any, ...], score: float, rank: int, vrank: int | None, lrank: int | None) -> Hit:
    cid, sid, path, tname, rk, cn, text, meta, cos, lex = row
    return Hit(
        score=score, path=path, table=tname, row_key=rk, chunk_no=int(cn), text=text, metadata=meta,
        source_id=int(sid), chunk_id=int(cid), rank=rank,
        vector_score=None if cos is None else float(cos), lexical_score=None if lex is None else float(lex),
        vector_rank=vrank, lexical_rank=lrank,
    )  # fmt: skip


def search_chunks(
    conn: psycopg.Connection,
    coll: Collection,
    query_vector: np.ndarray | None,
    k: int = 10,
    *,
    query: str | None = None,
    mode: str = "vector",
    file: str | None = None,
    table: str | None = None,
    ef_search: int = 100,
    exact: bool = False,
) -> list[Hit]:
    """Top-k chunks for a query in ``mode`` (see the module docstring), optionally only from
    files matching a glob / one table (both lists apply the filters).

    ``query_vector`` (the query embedded with the collection's model) is needed for
    ``vector`` and ``hybrid``; ``query`` (the query text) for ``lexical`` and ``hybrid``.
    A query with no lexical token (only punctuation) gives no lexical hits.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
    if mode != "lexical" and query_vector is None:
        raise ValueError(f"mode {mode!r} needs the query vector")
    if mode != "vector" and query is None:
        raise ValueError(f"mode {mode!r} needs the query text")
    where, params = _filters(coll, file, table)
    plan = query_plan(conn, coll.relname, query) if mode != "vector" and query is not None else None
    if mode == "vector":
        assert query_vector is not None
        rows = _vector_rows(
            conn, coll, query_vector, k, where, params, plan=None, ef_search=ef_search, exact=exact
        )
        return [_hit(r, float(r[8]), i, i, None) for i, r in enumerate(rows, 1)]
    if mode == "lexical":
        if plan is None:
            return []
        rows = _lexical_rows(conn, coll, plan, query_vector, k, where, params)
        return [_hit(r, float(r[9]), i, None, i) for i, r in enumerate(rows, 1)]
    assert query_vector is not None
    depth = candidate_depth(k)
    vrows = _vector_rows(
        conn, coll, query_vector, depth, where, params, plan=plan, ef_search=ef_search, exact=exact
    )
    lrows = _lexical_rows(conn, coll, plan, query_vector, depth, where, params) if plan else []
    return [
        _hit(f.row, f.score, f.rank, f.vector_rank, f.lexical_rank)
        for f in fuse_rows(vrows, lrows, k, lexical_col=9)
    ]
