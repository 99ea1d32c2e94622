"""Memory sync: the batch job that embeds every turn (or chat summary) not yet in memory.

Idempotent and resumable: work is found by an anti-join ("turns with no memory row"),
each batch is embedded and committed in its own transaction under a per-space advisory
lock, so a run stopped at any point loses at most one batch and the next run picks up
exactly what is missing; two concurrent runs never write a memory twice.  A memory's
text is hashed (sha256); a hash already present in the space reuses its stored vector,
and identical texts within a batch are embedded once, so the same text is never sent
to the provider twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from psycopg import sql

from dbembed.chat.spaces import horizon as space_horizon
from dbembed.chat.summarize import Summarizer, trim_to_model, turn_text
from dbembed.chat.tables import HistoryTable, MemoryTable
from dbembed.text.lexical import lexical_tokens, tsvector_text

if TYPE_CHECKING:
    import psycopg

    from dbembed.embed.base import EmbeddingProvider

log = logging.getLogger(__name__)
_SYNC_LOCK = 0x73_79_6E_63  # "sync"


@dataclass
class SyncResult:
    model: str
    mode: str  # "turn" (memory = turn text) or "chat" (memory = LLM summary of the chat)
    memories_written: int = 0
    embedded: int = 0  # texts sent to the embedding provider
    reused: int = 0  # texts whose vector came from the content-hash cache
    failed: int = 0  # texts the provider rejected (retried by the next sync)
    batches: int = 0
    complete: bool = False  # False when stopped by max_batches
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Item:
    """One memory to write: where it comes from and its text."""

    tenant: str
    user: str
    theme: str
    chat: int
    turn: int
    turn_id: int | None
    source_at: Any
    text: str
    kind: str
    summary_model: str | None = None
    turns: int = 1
    digest: str = ""


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _vectors(
    conn: psycopg.Connection,
    mt: MemoryTable,
    provider: EmbeddingProvider,
    items: list[_Item],
    res: SyncResult,
) -> dict[str, np.ndarray]:
    """Vectors by content hash: from the space's existing memories, else embedded once."""
    digests = sorted({i.digest for i in items})
    found: dict[str, np.ndarray] = {}
    rows = conn.execute(
        sql.SQL("SELECT DISTINCT ON ({h}) {h}, {v}::vector FROM {t} m WHERE {h} = ANY(%s)").format(
            h=mt.col("hash"), v=mt.col("vector"), t=mt.table
        ),
        (digests,),
    ).fetchall()
    for digest, vec in rows:
        found[digest] = np.asarray(vec.to_numpy() if hasattr(vec, "to_numpy") else vec, dtype=np.float32)
    todo: dict[str, str] = {}
    for i in items:
        if i.digest not in found:
            todo.setdefault(i.digest, i.text)
    res.reused += len(items) - len(todo)  # vectors from the space, or a duplicate within the batch
    if todo:
        keys = list(todo)
        vecs, failures = provider.embed_documents_partial([todo[k] for k in keys])
        res.embedded += len(keys) - len(failures)
        for idx, key in enumerate(keys):
            if idx in failures:
                res.failed += 1
                res.failures.append(f"{key[:12]}: {failures[idx]}")
            else:
                found[key] = vecs[idx]
    return found


def _write(conn: psycopg.Connection, mt: MemoryTable, items: list[_Item], vecs: dict[str, np.ndarray]) -> int:
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
    rows = []
    for i in items:
        if i.digest not in vecs:
            continue
        meta: dict[str, Any] = {"turns": i.turns} if i.kind == "chat" else {}
        if mt.mapped:
            meta |= {
                "kind": i.kind, "turn_id": i.turn_id, "turn": i.turn, "summary_model": i.summary_model,
                "hash": i.digest, "source_at": i.source_at.isoformat(), "model": mt.model,
            }  # fmt: skip
        values: dict[str, Any] = {
            "tenant": i.tenant, "user": i.user, "theme": i.theme, "chat": i.chat, "summary": i.text,
            "metadata": json.dumps(meta), "vector": vecs[i.digest], "kind": i.kind, "turn_id": i.turn_id,
            "turn": i.turn, "summary_model": i.summary_model, "hash": i.digest, "source_at": i.source_at,
            "lexical": None if mt.mapped else tsvector_text(lexical_tokens(i.text)),
        }  # fmt: skip
        rows.append(tuple(values[c] for c in cols))
    if rows:
        with conn.cursor() as cur:
            cur.executemany(q + conflict, rows)
    return len(rows)


def _turn_batch(
    conn: psycopg.Connection, h: HistoryTable, mt: MemoryTable, after: int, limit: int, horizon: Any
) -> list[tuple[Any, ...]]:
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
    return conn.execute(q, {"after": after, "horizon": horizon, "n": limit}).fetchall()


def _chat_batch(
    conn: psycopg.Connection,
    h: HistoryTable,
    mt: MemoryTable,
    after: list[Any] | None,
    limit: int,
    horizon: Any,
) -> list[tuple[Any, ...]]:
    """Chats with turns their stored summary does not cover yet."""
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
    a = after or [None, None, None]
    params = {"after": a[0], "a0": a[0], "a1": a[1], "a2": a[2], "horizon": horizon, "n": limit}
    return conn.execute(q, params).fetchall()


def _chat_turns(
    conn: psycopg.Connection, h: HistoryTable, tenant: str, user: str, chat: int
) -> list[tuple[str, str]]:
    q = sql.SQL("SELECT {i}, {r} FROM {t} t WHERE {ten} = %s AND {u} = %s AND {c} = %s ORDER BY {id}").format(
        i=h.col("input"), r=h.col("response"), t=h.table, ten=h.col("tenant"), u=h.col("user"),
        c=h.col("chat"), id=h.col("id"),
    )  # fmt: skip
    return [(a or "", b or "") for a, b in conn.execute(q, (tenant, user, chat)).fetchall()]


def sync_memory(
    conn: psycopg.Connection,
    h: HistoryTable,
    mt: MemoryTable,
    provider: EmbeddingProvider,
    *,
    batch_size: int,
    summarizer: Summarizer | None = None,
    max_batches: int | None = None,
) -> SyncResult:
    """Bring memory up to date with history (see the module docstring)."""
    started = time.monotonic()
    res = SyncResult(provider.model_id, "chat" if summarizer else "turn")
    horizon = space_horizon(conn, mt)
    after_id, after_key = 0, None
    lock_key = mt.space_id or 0
    while max_batches is None or res.batches < max_batches:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s::int, %s::int)", (_SYNC_LOCK, lock_key))
            if summarizer is None:
                rows = _turn_batch(conn, h, mt, after_id, batch_size, horizon)
                if not rows:
                    res.complete = True
                    break
                after_id = int(rows[-1][0])
                items = [
                    _Item(r[1], r[2], r[3], int(r[4]), int(r[5]), int(r[0]), r[8],
                          trim_to_model(turn_text(r[6] or "", r[7] or ""), provider), "turn")
                    for r in rows
                ]  # fmt: skip
            else:
                rows = _chat_batch(conn, h, mt, after_key, max(1, batch_size // 8), horizon)
                if not rows:
                    res.complete = True
                    break
                after_key = [rows[-1][0], rows[-1][1], int(rows[-1][2])]
                items = []
                for ten, user, chat, n, last_at, theme in rows:
                    summary = summarizer.summarize(_chat_turns(conn, h, ten, user, int(chat)))
                    items.append(
                        _Item(ten, user, theme, int(chat), int(n) - 1, None, last_at,
                              trim_to_model(summary, provider), "chat", summarizer.model_id, int(n))
                    )  # fmt: skip
                    conn.execute(
                        sql.SQL("DELETE FROM {m} m WHERE {k} = 'chat' AND {te} = %s "
                                "AND {u} = %s AND {c} = %s").format(
                            m=mt.table, k=mt.col("kind"), te=mt.col("tenant"), u=mt.col("user"), c=mt.col("chat")
                        ),
                        (ten, user, chat),
                    )  # fmt: skip
            for i in items:
                i.digest = content_hash(i.text)
            vecs = _vectors(conn, mt, provider, items, res)
            res.memories_written += _write(conn, mt, items, vecs)
            res.batches += 1
        log.info("chat sync batch", extra={"event": {"batch": res.batches, "written": res.memories_written}})
    res.seconds = round(time.monotonic() - started, 3)
    return res
