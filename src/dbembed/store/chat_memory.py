"""Semantic memory: search a user's memories, read one, delete, expire (retention).

Search ranks by the distance operator the table's HNSW index serves.  A per-user
filter on an approximate index can return fewer than k rows (the index yields the
globally nearest candidates, most of them other users'), so pgvector's iterative index
scan is turned on: the scan continues until k rows pass the filter.  The planner may
also choose the (tenant, user, time) B-tree and rank that user's rows exactly, which
is the cheaper plan when a user has few memories.

Modes (as for the file index, ``dbembed.store.search``): ``vector``, ``lexical`` (the
``lexical`` tsvector of native memory tables, GIN-indexed) and ``hybrid`` (both lists fused
as the file index fuses them: ``dbembed.store.search.fuse``).  A mapped (team-owned) memory table has no lexical
column: ``lexical`` is refused there and ``hybrid`` is vector search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from psycopg import sql

from dbembed.errors import InvalidInput, NotFound, echo
from dbembed.store.chat_tables import MemoryTable
from dbembed.store.lexical import QueryPlan, match_sql, query_plan, score_sql, tiebreak_sql
from dbembed.store.scope import Actor
from dbembed.store.search import MODES, candidate_depth, fuse_rows, set_hnsw_scan

if TYPE_CHECKING:
    import psycopg

    from dbembed.config import StoreSettings


@dataclass(frozen=True)
class MemoryHit:
    id: int
    score: float
    theme: str
    chat_id: int
    kind: str
    turn_no: int | None
    summary: str
    summary_model: str | None
    source_at: datetime | None
    rank: int = 0  # 1-based position in the result (fused rank in hybrid mode)
    vector_score: float | None = None
    lexical_score: float | None = None
    vector_rank: int | None = None
    lexical_rank: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _select(mt: MemoryTable) -> sql.Composable:
    kind = sql.SQL("coalesce({}, 'chat')").format(mt.col("kind"))
    return sql.SQL("{id}, {score} AS score, {th}, {c}, {kind}, {turn}, {s}, {sm}, {at}").format(
        id=mt.col("id"), score=mt.score_sql(), th=mt.col("theme"), c=mt.col("chat"), kind=kind,
        turn=mt.col("turn"), s=mt.col("summary"), sm=mt.col("summary_model"), at=mt.col("source_at"),
    )  # fmt: skip


def _hit(
    r: tuple[Any, ...],
    *,
    rank: int = 0,
    score: float | None = None,
    vscore: Any = None,
    lscore: Any = None,
    vrank: int | None = None,
    lrank: int | None = None,
) -> MemoryHit:
    """A row of ``_select`` (+ extra columns) -> hit; ``score`` defaults to the mode's own score."""
    vs = None if vscore is None else float(vscore)
    ls = None if lscore is None else float(lscore)
    if score is None:
        score = vs if vs is not None else (ls if ls is not None else 0.0)
    return MemoryHit(
        int(r[0]), float(score), r[2], int(r[3]), r[4], r[5], r[6], r[7], r[8],
        rank=rank, vector_score=vs, lexical_score=ls, vector_rank=vrank, lexical_rank=lrank,
    )  # fmt: skip


def _who(mt: MemoryTable) -> sql.Composable:
    return sql.SQL("{} = %(tenant)s AND {} = %(user)s").format(mt.col("tenant"), mt.col("user"))


def _filters(mt: MemoryTable) -> sql.Composable:
    return sql.SQL(
        "{who} AND (%(theme)s::text IS NULL OR {th} = %(theme)s::text) "
        "AND (%(since)s::timestamptz IS NULL OR {at} >= %(since)s::timestamptz) "
        "AND (%(until)s::timestamptz IS NULL OR {at} < %(until)s::timestamptz)"
    ).format(who=_who(mt), th=mt.col("theme"), at=mt.col("source_at"))


def _vector_list(
    conn: psycopg.Connection, mt: MemoryTable, params: dict[str, Any], n: int, settings: StoreSettings
) -> list[tuple[Any, ...]]:
    set_hnsw_scan(conn, settings.hnsw_ef_search, n, iterative=True)
    q = sql.SQL(
        "SELECT * FROM (SELECT {cols}, {d} AS distance FROM {t} m WHERE {f} "
        "ORDER BY {d} LIMIT %(n)s) hits ORDER BY distance"
    ).format(cols=_select(mt), d=mt.distance_sql(), t=mt.table, f=_filters(mt))
    return conn.execute(q, {**params, "n": n}).fetchall()


def _lexical_list(
    conn: psycopg.Connection, mt: MemoryTable, params: dict[str, Any], n: int, plan: QueryPlan
) -> list[tuple[Any, ...]]:
    q = sql.SQL(
        "SELECT * FROM (SELECT {cols}, {ls} AS ls, {tb} AS tb FROM {t} m WHERE {match} AND {f} "
        "ORDER BY ls DESC, tb DESC, {id} LIMIT %(n)s) hits ORDER BY ls DESC, tb DESC, id"
    ).format(
        cols=_select(mt), ls=sql.SQL(score_sql("m")), tb=sql.SQL(tiebreak_sql("m")), t=mt.table,
        match=sql.SQL(match_sql("m")), f=_filters(mt), id=mt.col("id"),
    )  # fmt: skip
    rows = conn.execute(q, {**params, **plan.params(), "n": n}).fetchall()
    wider = plan.widened()
    if not rows and wider is not None:
        return _lexical_list(conn, mt, params, n, wider)
    return rows


def search(
    conn: psycopg.Connection,
    mt: MemoryTable,
    actor: Actor,
    query_vector: np.ndarray | None,
    k: int,
    settings: StoreSettings,
    theme: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    query: str | None = None,
    mode: str = "vector",
) -> list[MemoryHit]:
    """The actor's ``k`` best memories for the query (optionally by theme and time) in ``mode``:
    ``vector`` needs ``query_vector``, ``lexical`` needs ``query``, ``hybrid`` both."""
    if since is not None and until is not None and since > until:
        raise InvalidInput("since: must not be after until", "since")
    if mode not in MODES:
        raise InvalidInput(f"mode: must be one of {', '.join(MODES)}", "mode")
    if mode != "vector" and mt.mapped:
        if mode == "lexical":
            raise InvalidInput(
                "lexical memory search needs dbembed's own memory tables; a mapped memory table "
                "has no lexical index (use mode=vector)"
            )
        mode = "vector"
    params: dict[str, Any] = {
        "tenant": actor.tenant_id, "user": actor.user_id, "theme": theme, "since": since, "until": until,
        "q": None if query_vector is None else np.asarray(query_vector, dtype=np.float32),
    }  # fmt: skip
    if mode == "vector":
        return [
            _hit(r, rank=i, vscore=r[1]) for i, r in enumerate(_vector_list(conn, mt, params, k, settings), 1)
        ]
    plan = query_plan(conn, f"chat_memory_{mt.space_id}", query or "")
    lrows = (
        _lexical_list(conn, mt, params, k if mode == "lexical" else candidate_depth(k), plan) if plan else []
    )
    if mode == "lexical":
        return [_hit(r, rank=i, lscore=r[9]) for i, r in enumerate(lrows, 1)]
    vrows = _vector_list(conn, mt, params, candidate_depth(k), settings)
    return [
        _hit(f.row, rank=f.rank, score=f.score, vscore=f.row[1], lscore=f.lexical_score,
             vrank=f.vector_rank, lrank=f.lexical_rank)
        for f in fuse_rows(vrows, lrows, k, lexical_col=9)
    ]  # fmt: skip


def get_memory(conn: psycopg.Connection, mt: MemoryTable, actor: Actor, memory_id: int) -> MemoryHit:
    """One memory of the actor by id; another user's id is simply not found."""
    q = sql.SQL("SELECT {id}, NULL, {th}, {c}, coalesce({kind}, 'chat'), {turn}, {s}, {sm}, {at} FROM {t} m "
                "WHERE {who} AND {id} = %(id)s").format(
        id=mt.col("id"), th=mt.col("theme"), c=mt.col("chat"), kind=mt.col("kind"), turn=mt.col("turn"),
        s=mt.col("summary"), sm=mt.col("summary_model"), at=mt.col("source_at"), t=mt.table, who=_who(mt),
    )  # fmt: skip
    row = conn.execute(q, {"tenant": actor.tenant_id, "user": actor.user_id, "id": memory_id}).fetchone()
    if row is None:
        raise NotFound(f"memory {memory_id} not found")
    return _hit(row)


def delete_memory(conn: psycopg.Connection, mt: MemoryTable, actor: Actor, chat_id: int | None = None) -> int:
    q = sql.SQL(
        "DELETE FROM {t} m WHERE {who} AND (%(chat)s::bigint IS NULL OR {c} = %(chat)s::bigint)"
    ).format(t=mt.table, who=_who(mt), c=mt.col("chat"))
    return conn.execute(q, {"tenant": actor.tenant_id, "user": actor.user_id, "chat": chat_id}).rowcount


def expire(conn: psycopg.Connection, mt: MemoryTable, days: float) -> tuple[int, datetime]:
    """Delete memories whose conversation is older than ``days``; raise the space's horizon.

    The horizon makes sync skip the expired turns, so retention is not undone by the
    next sync.  Memories without a source time (written by other tools into a mapped
    table) are left alone.
    """
    if days < 0:
        raise InvalidInput(f"days: must be >= 0 (got {echo(days)})", "days")
    cutoff = datetime.now(UTC) - timedelta(days=days)
    with conn.transaction():
        n = conn.execute(
            sql.SQL("DELETE FROM {t} m WHERE {at} < %s").format(t=mt.table, at=mt.col("source_at")), (cutoff,)
        ).rowcount
        if mt.space_id is not None:
            conn.execute(
                "UPDATE dbembed.chat_memory_spaces SET horizon = greatest(horizon, %s) WHERE id = %s",
                (cutoff, mt.space_id),
            )
    return n, cutoff
