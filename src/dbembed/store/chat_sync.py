"""The SQL of memory sync: what is not in memory yet, the vectors a space already holds, writes.

``dbembed.chat.sync`` runs the batch loop; every function here runs inside its
per-batch transaction, after :func:`lock_space`.  Work is found by anti-joins
("turns with no memory row", "chats whose summary covers fewer turns than they have").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg import sql

from dbembed.store.chat_history import Turn
from dbembed.store.chat_tables import HistoryTable, MemoryTable
from dbembed.store.chunks import cached_vectors, to_numpy
from dbembed.store.collections import list_collections
from dbembed.text.lexical import lexical_tokens, tsvector_text

if TYPE_CHECKING:
    import numpy as np
    import psycopg

_SYNC_LOCK = 0x73_79_6E_63  # "sync"


@dataclass(frozen=True)
class PendingTurn:
    """A turn with no memory yet (``turn.turn_no`` derived from row order on mapped tables)."""

    tenant_id: str
    turn: Turn


@dataclass(frozen=True)
class PendingChat:
    """A chat whose stored summary (if any) does not cover all its ``turns``."""

    tenant_id: str
    user_id: str
    chat_id: int
    turns: int
    last_at: datetime
    theme: str


@dataclass
class MemoryRecord:
    """One memory to write: where it comes from, its text and that text's content hash."""

    tenant_id: str
    user_id: str
    theme: str
    chat_id: int
    turn_no: int
    turn_id: int | None
    source_at: datetime
    text: str
    kind: str  # "turn" or "chat"
    content_hash: bytes
    summary_model: str | None = None
    turns: int = 1


def lock_space(conn: psycopg.Connection, mt: MemoryTable) -> None:
    """Serialise sync batches of one space until commit: two syncs never write a memory twice."""
    conn.execute("SELECT pg_advisory_xact_lock(%s::int, %s::int)", (_SYNC_LOCK, mt.space_id or 0))


def turns_to_embed(
    conn: psycopg.Connection, h: HistoryTable, mt: MemoryTable, after: int, limit: int, horizon: Any
) -> list[PendingTurn]:
    """Up to ``limit`` turns with id > ``after`` (and not older than ``horizon``) with no memory, by id."""
    turn = (
        sql.SQL(
            "(SELECT count(*) FROM {t} t2 WHERE t2.{u} = t.{u} AND t2.{c} = t.{c} AND t2.{id} < t.{id})"
        ).format(t=h.table, u=h.raw("user"), c=h.raw("chat"), id=h.raw("id"))
        if h.mapped
        else h.col("turn")
    )
    q = sql.SQL(
        "SELECT {id}, {ten}, {u}, {th}, {c}, {turn}, {i}, {r}, {cr} FROM {t} t "
        "WHERE {id} > %(after)s AND (%(horizon)s::timestamptz IS NULL OR {cr} >= %(horizon)s::timestamptz) "
        "AND NOT EXISTS (SELECT 1 FROM {m} m WHERE {mturn} = {id} AND coalesce({mkind}, 'chat') = 'turn') "
        "ORDER BY {id} LIMIT %(n)s"
    ).format(
        id=h.col("id"), ten=h.col("tenant"), u=h.col("user"), th=h.col("theme"), c=h.col("chat"), turn=turn,
        i=h.col("input"), r=h.col("response"), cr=h.col("created"), t=h.table, m=mt.table,
        mturn=mt.col("turn_id"), mkind=mt.col("kind"),
    )  # fmt: skip
    rows = conn.execute(q, {"after": after, "horizon": horizon, "n": limit}).fetchall()
    return [
        PendingTurn(
            r[1], Turn(int(r[0]), r[2], r[3] or "", int(r[4]), int(r[5]), r[6] or "", r[7] or "", r[8])
        )
        for r in rows
    ]


def chats_to_summarize(
    conn: psycopg.Connection,
    h: HistoryTable,
    mt: MemoryTable,
    after: tuple[str, str, int] | None,
    limit: int,
    horizon: Any,
) -> list[PendingChat]:
    """Up to ``limit`` chats after the key ``after`` (tenant, user, chat) with turns their summary lacks."""
    key = sql.SQL("({}, {}, {})").format(h.col("tenant"), h.col("user"), h.col("chat"))
    q = sql.SQL(
        "SELECT g.* FROM (SELECT {ten} AS ten, {u} AS u, {c} AS c, count(*) AS n, max({cr}) AS last_at, "
        "(array_agg({th} ORDER BY {id} DESC))[1] AS theme FROM {t} t "
        "WHERE %(after)s::text IS NULL OR {key} > (%(a0)s::text, %(a1)s::text, %(a2)s::bigint) "
        "GROUP BY 1, 2, 3) g "
        "WHERE (%(horizon)s::timestamptz IS NULL OR g.last_at >= %(horizon)s::timestamptz) "
        "AND NOT EXISTS (SELECT 1 FROM {m} m WHERE {mkind} = 'chat' AND {mten} = g.ten "
        "AND {mu} = g.u AND {mc} = g.c AND {mturn} >= g.n - 1) "
        "ORDER BY 1, 2, 3 LIMIT %(n)s"
    ).format(
        ten=h.col("tenant"), u=h.col("user"), c=h.col("chat"), cr=h.col("created"), th=h.col("theme"),
        id=h.col("id"), t=h.table, key=key, m=mt.table, mkind=mt.col("kind"), mten=mt.col("tenant"),
        mu=mt.col("user"), mc=mt.col("chat"), mturn=mt.col("turn"),
    )  # fmt: skip
    a: Sequence[Any] = after or (None, None, None)
    params = {"after": a[0], "a0": a[0], "a1": a[1], "a2": a[2], "horizon": horizon, "n": limit}
    rows = conn.execute(q, params).fetchall()
    return [PendingChat(r[0], r[1], int(r[2]), int(r[3]), r[4], r[5] or "") for r in rows]


def chat_transcript(
    conn: psycopg.Connection, h: HistoryTable, tenant_id: str, user_id: str, chat_id: int
) -> list[tuple[str, str]]:
    """A chat's (user input, bot response) pairs, oldest first."""
    q = sql.SQL("SELECT {i}, {r} FROM {t} t WHERE {ten} = %s AND {u} = %s AND {c} = %s ORDER BY {id}").format(
        i=h.col("input"), r=h.col("response"), t=h.table, ten=h.col("tenant"), u=h.col("user"),
        c=h.col("chat"), id=h.col("id"),
    )  # fmt: skip
    return [(a or "", b or "") for a, b in conn.execute(q, (tenant_id, user_id, chat_id)).fetchall()]


def delete_chat_summary(
    conn: psycopg.Connection, mt: MemoryTable, tenant_id: str, user_id: str, chat_id: int
) -> None:
    """Drop a chat's stored summary (its replacement is written in the same transaction)."""
    conn.execute(
        sql.SQL("DELETE FROM {m} m WHERE {k} = 'chat' AND {te} = %s AND {u} = %s AND {c} = %s").format(
            m=mt.table, k=mt.col("kind"), te=mt.col("tenant"), u=mt.col("user"), c=mt.col("chat")
        ),
        (tenant_id, user_id, chat_id),
    )


def stored_vectors(conn: psycopg.Connection, mt: MemoryTable, hashes: list[bytes]) -> dict[bytes, np.ndarray]:
    """Vectors this vector space already holds for these content hashes: the memory table's,
    then the file index's collections of the same model and dimensions (same text + same
    model = same vector, so a text the index embedded is not embedded again for memory)."""
    rows = conn.execute(
        sql.SQL("SELECT DISTINCT ON ({h}) {h}, {v}::vector FROM {t} m WHERE {h} = ANY(%s)").format(
            h=mt.col("hash"), v=mt.col("vector"), t=mt.table
        ),
        ([h.hex() for h in hashes],),
    ).fetchall()
    found = {bytes.fromhex(digest): to_numpy(vec) for digest, vec in rows}
    if not mt.model or getattr(conn, "is_data_api", False):  # chunk tables are read over direct connections
        return found
    for coll in list_collections(conn):
        missing = [h for h in hashes if h not in found]
        if not missing:
            break
        if coll.model == mt.model and coll.dimensions == mt.dimensions:
            found.update(cached_vectors(conn, coll, missing))
    return found


def write_memories(
    conn: psycopg.Connection,
    mt: MemoryTable,
    records: Sequence[MemoryRecord],
    vectors: dict[bytes, np.ndarray],
) -> int:
    """Insert the memories that have a vector (pgvector's registered types carry the vectors);
    a turn's memory that already exists is skipped.  Returns rows sent."""
    cols = ["user", "theme", "chat", "summary", "metadata", "vector"]
    if not mt.mapped:  # a mapped table keeps these in metadata (it has no such columns)
        cols += ["tenant", "kind", "turn_id", "turn", "summary_model", "hash", "source_at", "lexical"]
    names = sql.SQL(", ").join(sql.Identifier("lexical") if c == "lexical" else mt.raw(c) for c in cols)
    # Explicit casts: the RDS Data API sends text as varchar, which jsonb/vector/tsvector columns do not take.
    casts = {"vector": sql.SQL(mt.vector_type), "metadata": sql.SQL("jsonb"), "lexical": sql.SQL("tsvector")}
    holders = sql.SQL(", ").join(
        sql.SQL("%s::{}").format(casts[c]) if c in casts else sql.SQL("%s") for c in cols
    )
    conflict = (
        sql.SQL(" ON CONFLICT (turn_id) WHERE kind = 'turn' DO NOTHING") if not mt.mapped else sql.SQL("")
    )
    q = sql.SQL("INSERT INTO {t} ({names}) VALUES ({holders})").format(
        t=mt.table, names=names, holders=holders
    )
    rows = [
        tuple(_values(mt, rec, vectors[rec.content_hash])[c] for c in cols)
        for rec in records
        if rec.content_hash in vectors
    ]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(q + conflict, rows)
    return len(rows)


def _values(mt: MemoryTable, rec: MemoryRecord, vector: np.ndarray) -> dict[str, Any]:
    digest = rec.content_hash.hex()
    meta: dict[str, Any] = {"turns": rec.turns} if rec.kind == "chat" else {}
    if mt.mapped:
        meta |= {
            "kind": rec.kind, "turn_id": rec.turn_id, "turn": rec.turn_no, "summary_model": rec.summary_model,
            "hash": digest, "source_at": rec.source_at.isoformat(), "model": mt.model,
        }  # fmt: skip
    return {
        "tenant": rec.tenant_id, "user": rec.user_id, "theme": rec.theme, "chat": rec.chat_id,
        "summary": rec.text, "metadata": json.dumps(meta), "vector": vector, "kind": rec.kind,
        "turn_id": rec.turn_id, "turn": rec.turn_no, "summary_model": rec.summary_model, "hash": digest,
        "source_at": rec.source_at, "lexical": None if mt.mapped else tsvector_text(lexical_tokens(rec.text)),
    }  # fmt: skip
