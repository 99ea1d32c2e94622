"""Memory sync: the batch job that embeds every turn (or chat summary) not yet in memory.

Idempotent and resumable: work is found by an anti-join ("turns with no memory row"),
each batch is embedded and committed in its own transaction under a per-space advisory
lock, so a run stopped at any point loses at most one batch and the next run picks up
exactly what is missing; two concurrent runs never write a memory twice.  Vectors come
from the embedding cache the file index uses (``dbembed.store.embedding_cache``): a
memory's text is keyed by its content hash, and a hash already stored in the space (or
in a file-index collection of the same model) reuses that vector, so the same text is
never sent to the provider twice.  The SQL is ``dbembed.store.chat_sync``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from dbembed.chat.summarize import Summarizer, trim_to_model, turn_text
from dbembed.store.chat_sync import (
    MemoryRecord,
    PendingTurn,
    chat_transcript,
    chats_to_summarize,
    delete_chat_summary,
    lock_space,
    stored_vectors,
    turns_to_embed,
    write_memories,
)
from dbembed.store.embedding_cache import EmbeddingCache, EmbedStats, content_hash
from dbembed.store.memory_spaces import horizon as space_horizon

if TYPE_CHECKING:
    import psycopg

    from dbembed.embed.base import EmbeddingProvider
    from dbembed.store.chat_tables import HistoryTable, MemoryTable

log = logging.getLogger(__name__)


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


def _turn_record(pending: PendingTurn, provider: EmbeddingProvider) -> MemoryRecord:
    t = pending.turn
    text = trim_to_model(turn_text(t.user_input, t.bot_response), provider)
    return MemoryRecord(
        pending.tenant_id, t.user_id, t.theme, t.chat_id, t.turn_no, t.id, t.created_at, text, "turn",
        content_hash(text),
    )  # fmt: skip


def _chat_records(
    conn: psycopg.Connection,
    h: HistoryTable,
    mt: MemoryTable,
    provider: EmbeddingProvider,
    summarizer: Summarizer,
    after: tuple[str, str, int] | None,
    limit: int,
    horizon: Any,
) -> list[MemoryRecord]:
    """Summaries of the next chats whose summary is out of date (their old ones deleted)."""
    records = []
    for chat in chats_to_summarize(conn, h, mt, after, limit, horizon):
        summary = summarizer.summarize(chat_transcript(conn, h, chat.tenant_id, chat.user_id, chat.chat_id))
        text = trim_to_model(summary, provider)
        records.append(
            MemoryRecord(
                chat.tenant_id, chat.user_id, chat.theme, chat.chat_id, chat.turns - 1, None, chat.last_at,
                text, "chat", content_hash(text), summarizer.model_id, chat.turns,
            )
        )  # fmt: skip
        delete_chat_summary(conn, mt, chat.tenant_id, chat.user_id, chat.chat_id)
    return records


def _embed_and_write(
    conn: psycopg.Connection,
    mt: MemoryTable,
    cache: EmbeddingCache,
    records: list[MemoryRecord],
    res: SyncResult,
) -> None:
    stats = EmbedStats()
    hashes = [r.content_hash for r in records]
    vectors, rejected = cache.vectors(
        hashes, [r.text for r in records], stats, lambda hs: stored_vectors(conn, mt, hs)
    )
    res.embedded += stats.embedded
    res.reused += stats.reused
    failed = {hashes[i]: reason for i, reason in rejected.items()}
    res.failed += len(failed)
    res.failures.extend(f"{h.hex()[:12]}: {reason}" for h, reason in failed.items())
    good = {h: vectors[i] for i, h in enumerate(hashes) if i not in rejected}
    res.memories_written += write_memories(conn, mt, records, good)


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
    cache = EmbeddingCache(provider)
    horizon = space_horizon(conn, mt)
    after_id, after_key = 0, None
    while max_batches is None or res.batches < max_batches:
        with conn.transaction():
            lock_space(conn, mt)
            if summarizer is None:
                turns = turns_to_embed(conn, h, mt, after_id, batch_size, horizon)
                records = [_turn_record(t, provider) for t in turns]
                if turns:
                    after_id = turns[-1].turn.id
            else:
                records = _chat_records(
                    conn, h, mt, provider, summarizer, after_key, max(1, batch_size // 8), horizon
                )
                if records:
                    last = records[-1]
                    after_key = (last.tenant_id, last.user_id, last.chat_id)
            if not records:
                res.complete = True
                break
            _embed_and_write(conn, mt, cache, records, res)
            res.batches += 1
        log.info("chat sync batch", extra={"event": {"batch": res.batches, "written": res.memories_written}})
    res.seconds = round(time.monotonic() - started, 3)
    return res
