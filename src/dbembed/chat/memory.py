"""Semantic memory: search a user's memories, read one, delete, expire (retention).

Search ranks by the distance operator the table's HNSW index serves.  A per-user
filter on an approximate index can return fewer than k rows (the index yields the
globally nearest candidates, most of them other users'), so pgvector's iterative index
scan is turned on: the scan continues until k rows pass the filter.  The planner may
also choose the (tenant, user, time) B-tree and rank that user's rows exactly, which
is the cheaper plan when a user has few memories.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from psycopg import sql

from dbembed.chat.scope import Actor, InvalidInput
from dbembed.chat.tables import MemoryTable
from dbembed.errors import NotFound

if TYPE_CHECKING:
    import psycopg

    from dbembed.config import Settings


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _select(mt: MemoryTable) -> sql.Composable:
    kind = sql.SQL("coalesce({}, 'chat')").format(mt.col("kind"))
    return sql.SQL("{id}, {score} AS score, {th}, {c}, {kind}, {turn}, {s}, {sm}, {at}").format(
        id=mt.col("id"), score=mt.score_sql(), th=mt.col("theme"), c=mt.col("chat"), kind=kind,
        turn=mt.col("turn"), s=mt.col("summary"), sm=mt.col("summary_model"), at=mt.col("source_at"),
    )  # fmt: skip


def _hit(r: tuple[Any, ...]) -> MemoryHit:
    score = float(r[1]) if r[1] is not None else 0.0
    return MemoryHit(int(r[0]), score, r[2], int(r[3]), r[4], r[5], r[6], r[7], r[8])


def _who(mt: MemoryTable) -> sql.Composable:
    return sql.SQL("{} = %(tenant)s AND {} = %(user)s").format(mt.col("tenant"), mt.col("user"))


def search(
    conn: psycopg.Connection,
    mt: MemoryTable,
    actor: Actor,
    query_vector: np.ndarray,
    k: int,
    settings: Settings,
    theme: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[MemoryHit]:
    """The actor's ``k`` memories nearest to ``query_vector`` (optionally by theme and time)."""
    if since is not None and until is not None and since > until:
        raise InvalidInput("'since' must not be after 'until'")
    conn.execute(
        "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', %s, true)",
        (str(max(settings.hnsw_ef_search, k)),),
    )
    params = {
        "tenant": actor.tenant_id, "user": actor.user_id, "theme": theme, "since": since, "until": until,
        "k": k, "q": np.asarray(query_vector, dtype=np.float32),
    }  # fmt: skip
    q = sql.SQL(
        "SELECT * FROM (SELECT {cols}, {d} AS distance FROM {t} m WHERE {who} "
        "AND (%(theme)s::text IS NULL OR {th} = %(theme)s::text) "
        "AND (%(since)s::timestamptz IS NULL OR {at} >= %(since)s::timestamptz) "
        "AND (%(until)s::timestamptz IS NULL OR {at} < %(until)s::timestamptz) "
        "ORDER BY {d} LIMIT %(k)s) hits ORDER BY distance"
    ).format(
        cols=_select(mt),
        d=mt.distance_sql(),
        t=mt.table,
        who=_who(mt),
        th=mt.col("theme"),
        at=mt.col("source_at"),
    )
    return [_hit(r) for r in conn.execute(q, params).fetchall()]


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
        raise InvalidInput("retention days must be >= 0")
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
