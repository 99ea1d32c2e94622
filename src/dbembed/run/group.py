"""Group commit: index several small files in one transaction, each file still all or nothing.

Per small file the work itself is tiny; what costs is the round trips of its own transaction (lock,
COPY, rejections, status, commit).  A group of small files (each at most ``INLINE_READ_BYTES``,
together at most ``GROUP_BYTES``) therefore shares one transaction: one lock statement, one COPY,
one status update, one commit.  Each file's change stays atomic: its chunks, rejections and status
commit together with the group or not at all (a crash anywhere rolls the whole group back, and the
next run redoes those files).  A file that cannot be read, and every file of a group whose writing
fails, goes through the one-file path (``FileIndexer.process``), which contains its fault to it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbembed.discover.names import real_path
from dbembed.run.crash import crash_point
from dbembed.run.embedder import EmbedStats
from dbembed.run.reading import Batch, ReadDone, rejection
from dbembed.store import chunks as chunk_store
from dbembed.store import rejections as rejection_store
from dbembed.store import sources as source_store
from dbembed.store.rejections import MAX_LISTED, FileRejections, Rejection

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dbembed.run.pipeline import FileIndexer, FileResult
    from dbembed.store.chunks import ChunkRecord

log = logging.getLogger(__name__)
GROUP_BYTES = 1024 * 1024  # small files per group transaction: their sizes add up to at most this
GROUP_FILES = 64


@dataclass
class _Member:
    """One file of a group while the group is being written."""

    claim: source_store.Claim
    result: FileResult
    started: float
    own_s: float = 0.0  # wall seconds spent on this file alone (stat, read, chunk)
    duration_s: float = 0.0  # own_s + its share of the group's shared work, set before commit
    existing: dict[tuple[str, str], bytes] = field(default_factory=dict)
    batches: list[Batch] = field(default_factory=list)
    done: ReadDone | None = None
    offset: int = 0  # index of its first record in the group's record list

    @property
    def records(self) -> list[ChunkRecord]:
        return [r for b in self.batches for r in b.records]


def groupable(claim: source_store.Claim) -> bool:
    """Small local files are grouped; big ones and S3 objects keep their own transaction."""
    from dbembed.run.pipeline import INLINE_READ_BYTES

    return not claim.path.startswith("s3://") and (claim.seen_size or 0) <= INLINE_READ_BYTES


def plan_groups(claims: list[source_store.Claim]) -> Iterator[list[source_store.Claim]]:
    """Split a claim batch into groups (lists of 2+ small files) and singles (lists of one)."""
    group: list[source_store.Claim] = []
    size = 0
    for c in claims:
        if not groupable(c):
            yield [c]
            continue
        if group and (size + (c.seen_size or 0) > GROUP_BYTES or len(group) >= GROUP_FILES):
            yield group
            group, size = [], 0
        group.append(c)
        size += c.seen_size or 0
    if group:
        yield group


def process_group(ix: FileIndexer, claims: list[source_store.Claim]) -> list[FileResult]:
    """Index ``claims`` (small local files) in one transaction; results in claim order."""
    from dbembed.run.pipeline import FileResult, is_run_fault

    members: list[_Member] = []
    results: dict[int, FileResult] = {}
    alone: list[source_store.Claim] = []  # files for the one-file path
    for c in claims:
        res = FileResult(path=c.path, status="failed", size=c.seen_size, mtime=c.seen_mtime)
        results[c.id] = res
        started = time.perf_counter()
        crash_point("after_claim")
        try:
            if ix._stat(c, res):
                members.append(_Member(c, res, started, own_s=time.perf_counter() - started))
        except Exception:  # noqa: BLE001 - the one-file path records what is wrong with it
            alone.append(c)
    if members:
        try:
            _write_group(ix, members, alone)
        except Exception as exc:
            if is_run_fault(exc, ix.conn):
                raise
            # One file's data the store refused (or a provider fault): every file of the group is
            # redone on its own, so the fault stays with its file.
            log.info("group of %d files rolled back (%s); indexing them one by one", len(members), exc)
            alone.extend(m.claim for m in members)
    for c in alone:
        results[c.id] = ix.process(c)
    return [results[c.id] for c in claims]


def _write_group(ix: FileIndexer, members: list[_Member], alone: list[source_store.Claim]) -> None:
    """The group's transaction.  Files that cannot be read leave ``members`` for ``alone``."""
    stats = EmbedStats()
    with ix.conn.transaction():
        holders = source_store.lock_leases(ix.conn, [m.claim.id for m in members])
        for m in [m for m in members if holders.get(m.claim.id) != ix.owner]:
            m.result.status = "lost"
            m.result.error = (
                f"lease on source {m.claim.id} was taken over by {holders.get(m.claim.id) or 'nobody'}"
            )
            members.remove(m)
        known = [m.claim.id for m in members if m.claim.size is not None]
        existing = chunk_store.existing_row_hashes_of(ix.conn, ix.coll, known)
        for m in list(members):
            m.existing = existing.get(m.claim.id, {})
            if not _read(ix, m):
                alone.append(m.claim)
                members.remove(m)
        if not members:
            return
        records: list[ChunkRecord] = []
        for m in members:
            m.offset = len(records)
            records.extend(m.records)
        vectors, rejected = ix.embedder.vectors_for(ix.conn, records, stats)
        t0 = time.perf_counter()
        _store_group(ix, members, records, vectors, rejected, stats)
        t_load = time.perf_counter() - t0
        for _ in members:
            crash_point("before_commit")
    _share_counts(members, stats)
    for m, w in zip(members, _weights(members), strict=True):
        crash_point("after_commit")
        _finish(m, stats, t_load, w)


def _read(ix: FileIndexer, m: _Member) -> bool:
    """Read, diff and chunk one member on this thread; False when it must go the one-file path."""
    q: queue.Queue[Any] = queue.Queue()
    t0 = time.perf_counter()
    ix.reader.read(Path(real_path(m.claim.path)), m.existing, q, threading.Event())
    m.own_s += time.perf_counter() - t0
    while True:
        item = q.get_nowait()
        if isinstance(item, BaseException):
            if not isinstance(item, Exception):
                raise item
            return False
        if isinstance(item, ReadDone):
            m.done = item
            return True
        if isinstance(item, Batch):
            m.batches.append(item)


def _store_group(
    ix: FileIndexer,
    members: list[_Member],
    records: list[ChunkRecord],
    vectors: Any,
    rejected: dict[int, str],
    stats: EmbedStats,
) -> None:
    """Deletes, one COPY, rejections and statuses of the whole group (inside its transaction)."""
    groups = []
    file_rejections = []
    chunk_rej: dict[int, list[Rejection]] = {}
    for m in members:
        assert m.done is not None
        gone = [k for b in m.batches for k in b.replaced_keys] + list(m.done.deleted_keys)
        chunk_store.delete_rows(ix.conn, ix.coll, m.claim.id, gone)
        n = len(m.records)
        keep = [i for i in range(m.offset, m.offset + n) if i not in rejected]
        mine = [
            rejection("chunk", rejected[i], records[i].table_name, records[i].row_key, records[i].chunk_no)
            for i in range(m.offset, m.offset + n)
            if i in rejected
        ]
        chunk_rej[m.claim.id] = mine
        groups.append((m.claim.id, [records[i] for i in keep], vectors[keep]))
        m.result.chunks_written = len(keep)
        m.result.rows_deleted = len(m.done.deleted_keys)
        m.result.rejected = len(mine)
        counts = {**m.done.rejected, "chunk": len(mine)}
        if mine:
            chunk_store.mark_rows_stale(
                ix.conn,
                ix.coll,
                m.claim.id,
                list(dict.fromkeys((r.table_name or "", r.row_key or "") for r in mine)),
            )
        file_rejections.append(FileRejections(m.claim.id, [*m.done.rejections, *mine[:MAX_LISTED]], counts))
        m.result.rejected_tables, m.result.rejected_rows = counts.get("table", 0), counts.get("row", 0)
    chunk_store.copy_chunk_groups(ix.conn, ix.coll, groups)
    for m in members:
        crash_point("after_copy")
        if ix.progress is not None:
            assert m.done is not None
            ix.progress(m.claim.path, m.done.rows, m.result.chunks_written)
    rejection_store.replace_files(ix.conn, ix.run_id, file_rejections)
    _mark_group_indexed(ix, members, chunk_rej)


def _mark_group_indexed(
    ix: FileIndexer, members: list[_Member], chunk_rej: dict[int, list[Rejection]]
) -> None:
    """Fill in each member's result and record them all as indexed (inside the group's transaction)."""
    from dbembed.run.pipeline import rejection_note

    known = [m.claim.id for m in members if not (m.claim.size is None and not m.existing)]
    counted = chunk_store.count_chunks_of(ix.conn, ix.coll, known)
    _apportion(members)
    indexed = []
    for m in members:
        done, res = m.done, m.result
        assert done is not None
        res.chunks = counted.get(m.claim.id, res.chunks_written)
        res.tables, res.rows, res.rows_changed = done.tables, done.rows, done.rows_changed
        res.used_snapshot = done.used_snapshot
        file_stats = EmbedStats(rejected=len(chunk_rej[m.claim.id]))
        file_stats.rejections = list(dict.fromkeys(r.reason for r in chunk_rej[m.claim.id]))[:3]
        res.error = rejection_note(file_stats, res)
        indexed.append(
            ix.indexed_file(
                m.claim, res, started=m.started, duration_s=m.duration_s, hash_path=m.claim.path, group=len(members)
            )
        )
    source_store.mark_indexed(ix.conn, ix.owner, indexed)


def _weights(members: list[_Member]) -> list[float]:
    """Each member's share of the group's shared work: one part per file plus one per chunk it wrote."""
    parts = [1 + len(m.records) for m in members]
    return [p / sum(parts) for p in parts]


def _apportion(members: list[_Member]) -> None:
    """Each member's duration: its own measured time plus its share of the group's shared time (the
    transaction's lookups, embedding, COPY, statuses), so that the group's durations add up to its
    wall time instead of each file claiming all of it."""
    wall = time.perf_counter() - min(m.started for m in members)
    shared = max(0.0, wall - sum(m.own_s for m in members))
    for m, w in zip(members, _weights(members), strict=True):
        m.duration_s = m.own_s + shared * w


def _share_counts(members: list[_Member], stats: EmbedStats) -> None:
    """Texts embedded and reused, per file.  The group embeds its distinct new texts once, so which
    file "embedded" a text shared by several is a convention: the first files of the group carry the
    group's embeds, in order; the totals over the group are exact."""
    embedded = stats.embedded
    for m in members:
        kept = m.result.chunks_written
        m.result.texts_embedded = min(embedded, kept)
        m.result.texts_reused = kept - m.result.texts_embedded
        embedded -= m.result.texts_embedded


def _finish(m: _Member, stats: EmbedStats, t_load: float, share: float) -> None:
    """The member's result once the group committed: the duration recorded for it, and the group's
    shared stage times by its ``share`` (see ``_weights``)."""
    assert m.done is not None
    res = m.result
    res.status = "indexed"
    res.duration_s = m.duration_s
    res.stage_s = {
        "read": m.done.read_s,
        "chunk": m.done.chunk_s,
        "lookup": stats.lookup_s * share,
        "embed": stats.embed_s * share,
        "load": t_load * share,
    }
