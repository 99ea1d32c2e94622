"""Index one claimed file: read -> document -> diff -> chunk -> embed -> COPY, atomically.

A background thread reads the SQLite file, turns rows into documents, diffs
them against what the index holds (row key + row hash) and chunks the new or
changed ones (``dbembed.run.reading``); the calling thread embeds and loads them.  So reading and
chunking overlap with the model (torch releases the GIL), and memory stays
bounded: batches flow through a small queue.

Everything for a file happens in one transaction that begins by locking the
file's source row and checking our lease.  Old chunks stay searchable until the
new ones commit; a crash at any point rolls the whole file back.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbembed.discover.names import real_path
from dbembed.errors import EmbeddingError, SourceError
from dbembed.run.crash import crash_point
from dbembed.run.embedder import CachingEmbedder, EmbedStats
from dbembed.run.reading import Batch, FileReader, ReadDone, drain, one_line, read_fingerprint, rejection
from dbembed.store import chunks as chunk_store
from dbembed.store import rejections as rejection_store
from dbembed.store import sources as source_store
from dbembed.store.rejections import MAX_LISTED, Rejection
from dbembed.text.hygiene import clean_text

if TYPE_CHECKING:
    import psycopg

    from dbembed.config import Settings
    from dbembed.store.collections import Collection
    from dbembed.text.chunk import Chunker

log = logging.getLogger(__name__)
INLINE_READ_BYTES = 256 * 1024  # files up to this size are read without a reader thread


@dataclass
class FileResult:
    path: str
    status: str  # indexed | failed | pending | lost
    error: str | None = None
    tables: int = 0
    rows: int = 0  # rows read
    rows_changed: int = 0  # new or changed rows
    rows_deleted: int = 0
    chunks: int = 0  # chunks the file has in the index afterwards
    chunks_written: int = 0
    texts_embedded: int = 0
    texts_reused: int = 0
    rejected: int = 0  # chunks rejected (provider refusal or failed vector checks)
    rejected_tables: int = 0
    rejected_rows: int = 0
    size: int | None = None
    mtime: float | None = None
    duration_s: float = 0.0
    used_snapshot: bool = False
    stage_s: dict[str, float] = field(default_factory=dict)

    def event(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "status": self.status,
            "error": self.error,
            "tables": self.tables,
            "rows": self.rows,
            "rows_changed": self.rows_changed,
            "rows_deleted": self.rows_deleted,
            "chunks": self.chunks,
            "texts_embedded": self.texts_embedded,
            "texts_reused": self.texts_reused,
            "rejected_tables": self.rejected_tables,
            "rejected_rows": self.rejected_rows,
            "rejected_chunks": self.rejected,
            "duration_s": round(self.duration_s, 4),
        }


class FileIndexer:
    """Processes claimed files for one worker (one DB connection, one provider)."""

    def __init__(
        self,
        settings: Settings,
        conn: psycopg.Connection,
        coll: Collection,
        embedder: CachingEmbedder,
        chunker: Chunker,
        owner: str,
        run_id: int | None,
    ) -> None:
        self.settings = settings
        self.conn = conn
        self.coll = coll
        self.embedder = embedder
        self.chunker = chunker
        self.owner = owner
        self.run_id = run_id
        self.salt = f"{chunker.max_tokens}:{chunker.overlap}"
        self.reader = FileReader(settings.sources, settings.text.document_format, self.salt, chunker)
        self.read_fp = read_fingerprint(settings)  # stored with each file (see read_fingerprint)
        self._started = 0.0
        # Called on this thread after each embed+load step: (path, rows read, chunks written) since the
        # previous call, so progress moves within a file (dbembed.cli.progress).
        self.progress: Callable[[str, int, int], None] | None = None

    # -- main side ---------------------------------------------------------------------
    def process_claims(self, claims: list[source_store.Claim]) -> Iterator[FileResult]:
        """Index a claim batch: small local files in group transactions (``dbembed.run.group``),
        others one by one; yields each file's result once its transaction committed."""
        from dbembed.run.group import plan_groups, process_group

        for group in plan_groups(claims):
            if len(group) == 1:
                yield self.process(group[0])
            else:
                yield from process_group(self, group)

    def process(self, claim: source_store.Claim) -> FileResult:
        started = self._started = time.perf_counter()
        result = FileResult(path=claim.path, status="failed", size=claim.seen_size, mtime=claim.seen_mtime)
        try:
            self._process(claim, result)
        except SourceError as exc:
            self._fail(claim, result, str(exc), retryable=False)
        except EmbeddingError as exc:
            self._fail(claim, result, f"embedding failed: {exc}", retryable=True)
        except source_store.LeaseLost as exc:
            result.status, result.error = "lost", str(exc)
        except Exception as exc:
            # Anything else (a bug of ours, a value the store refuses) fails this file alone; only
            # faults that every file would meet end the run (see is_run_fault).
            if is_run_fault(exc, self.conn):
                raise
            log.warning("file %s failed", claim.path, exc_info=True)
            self._fail(claim, result, f"internal error: {one_line(exc)}", retryable=True)
        result.duration_s = time.perf_counter() - started
        return result

    def _fail(self, claim: source_store.Claim, result: FileResult, error: str, *, retryable: bool) -> None:
        error = clean_text(error)  # a reason may quote a file name or value: no NUL, no lone surrogates
        result.status, result.error = "failed", error.splitlines()[0] if error else "unknown error"
        source_store.mark_failed(
            self.conn,
            claim.id,
            self.owner,
            result.error,
            seen_size=result.size,
            seen_mtime=result.mtime,
            retryable=retryable,
            duration_s=time.perf_counter() - self._started,
            run_id=self.run_id,
        )

    def _stat(self, claim: source_store.Claim, result: FileResult) -> bool:
        """Refresh size/mtime; False when the file is still being written (left pending)."""
        if not claim.path.startswith("s3://"):
            try:
                st = os.stat(real_path(claim.path))
            except FileNotFoundError as exc:
                raise SourceError(f"file vanished before it could be read: {claim.path}") from exc
            except PermissionError as exc:
                raise SourceError(f"permission denied: {claim.path}") from exc
            result.size, result.mtime = st.st_size, st.st_mtime
        if result.mtime is not None and time.time() - result.mtime < self.settings.sources.settle_s:
            source_store.release(self.conn, claim.id, self.owner, status="pending")
            result.status = "pending"
            return False
        return True

    def _process(self, claim: source_store.Claim, result: FileResult) -> None:
        from dbembed.discover import FileRef, materialize

        crash_point("after_claim")
        if not self._stat(claim, result):
            return
        ref = FileRef(claim.path, result.size or 0, result.mtime or 0.0, (claim.meta or {}).get("etag"))
        stats = EmbedStats()
        with materialize(ref, self.settings.sources) as local_path, self.conn.transaction():
            source_store.lock_lease(self.conn, claim.id, self.owner)
            existing = (
                chunk_store.existing_row_hashes(self.conn, self.coll, claim.id)
                if claim.size is not None
                else {}
            )
            new_file = claim.size is None and not existing
            done, t_load, chunk_rejections = self._read_and_load(
                claim, Path(local_path), existing, stats, result
            )
            t0 = time.perf_counter()
            result.rows_deleted = len(done.deleted_keys)
            chunk_store.delete_rows(self.conn, self.coll, claim.id, done.deleted_keys)
            self._record_rejections(claim.id, done, chunk_rejections, result)
            # A file never indexed before holds exactly what was written now: no count query.
            if new_file:
                result.chunks = result.chunks_written
            else:
                result.chunks = chunk_store.count_chunks(self.conn, self.coll, claim.id)
            result.tables, result.rows, result.rows_changed = done.tables, done.rows, done.rows_changed
            result.used_snapshot = done.used_snapshot
            result.texts_embedded, result.texts_reused, result.rejected = (
                stats.embedded,
                stats.reused,
                stats.rejected,
            )
            result.error = rejection_note(stats, result)
            indexed = self.indexed_file(claim, result, started=self._started, hash_path=Path(local_path))
            crash_point("before_commit")
            source_store.mark_indexed(self.conn, self.owner, [indexed])
            t_load += time.perf_counter() - t0
        crash_point("after_commit")
        result.status = "indexed"
        result.stage_s = {
            "read": done.read_s,
            "chunk": done.chunk_s,
            "lookup": stats.lookup_s,
            "embed": stats.embed_s,
            "load": t_load,
        }

    def _read_and_load(
        self,
        claim: source_store.Claim,
        local_path: Path,
        existing: dict[tuple[str, str], bytes],
        stats: EmbedStats,
        result: FileResult,
    ) -> tuple[ReadDone, float, list[Rejection]]:
        """Read the file (inline when small, else on a reader thread) while embedding and loading its
        batches here; returns the reader's ``ReadDone``, seconds spent loading and rejected chunks."""
        q: queue.Queue[Any]
        stop = threading.Event()
        reader: threading.Thread | None = None
        if (result.size or 0) <= INLINE_READ_BYTES:
            # A small file is read here, before embedding: a thread per file costs more than it overlaps.
            q = queue.Queue()
            self.reader.read(local_path, existing, q, stop)
        else:
            q = queue.Queue(maxsize=4)
            reader = threading.Thread(
                target=self.reader.read,
                args=(local_path, existing, q, stop),
                name="dbembed-reader",
                daemon=True,
            )
            reader.start()
        done: ReadDone | None = None
        chunk_rejections: list[Rejection] = []
        t_load = 0.0
        try:
            while done is None:
                item = q.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, ReadDone):
                    done = item
                    break
                written = result.chunks_written
                t_load += self._flush(claim.id, item, stats, result, chunk_rejections)
                if self.progress is not None:
                    self.progress(claim.path, item.rows_read, result.chunks_written - written)
        finally:
            if done is None and reader is not None:
                stop.set()
                drain(q, reader)
        if reader is not None:
            reader.join()
        return done, t_load, chunk_rejections

    def indexed_file(
        self,
        claim: source_store.Claim,
        result: FileResult,
        *,
        started: float,
        hash_path: Path | str,
        duration_s: float | None = None,
        **meta: Any,
    ) -> source_store.IndexedFile:
        """The record that marks a claimed file indexed: its counts, the content hash of ``hash_path``
        under ``--verify`` (local files), and in ``meta`` who indexed it with which read fingerprint.
        ``duration_s``: the file's own seconds (default: since ``started``)."""
        content = None
        if self.settings.sources.verify and not claim.path.startswith("s3://"):
            from dbembed.discover import file_hash

            content = file_hash(hash_path)
        return source_store.IndexedFile(
            source_id=claim.id,
            size=result.size,
            mtime=result.mtime,
            tables=result.tables,
            rows=result.rows,
            chunks=result.chunks,
            model=self.coll.model,
            duration_s=time.perf_counter() - started if duration_s is None else duration_s,
            run_id=self.run_id,
            error=result.error,
            content_hash=content,
            meta={
                "used_snapshot": result.used_snapshot,
                "rejected": result.rejected,
                "worker": self.owner,
                "read_fp": self.read_fp,
                **meta,
            },
        )

    def _record_rejections(
        self, source_id: int, done: ReadDone, chunks: list[Rejection], result: FileResult
    ) -> None:
        """Replace the file's rejections (same transaction); rows that lost a chunk get retried."""
        counts = dict(done.rejected)
        counts["chunk"] = len(chunks)
        chunk_store.mark_rows_stale(
            self.conn,
            self.coll,
            source_id,
            list(dict.fromkeys((r.table_name or "", r.row_key or "") for r in chunks)),
        )
        rejection_store.replace(
            self.conn, source_id, self.run_id, [*done.rejections, *chunks[:MAX_LISTED]], counts
        )
        result.rejected_tables = counts.get("table", 0)
        result.rejected_rows = counts.get("row", 0)

    def _flush(
        self,
        source_id: int,
        batch: Batch,
        stats: EmbedStats,
        result: FileResult,
        chunk_rejections: list[Rejection],
    ) -> float:
        """Embed one batch and load it; returns seconds spent loading."""
        vectors, rejected = self.embedder.vectors_for(self.conn, batch.records, stats)
        t0 = time.perf_counter()
        chunk_store.delete_rows(self.conn, self.coll, source_id, batch.replaced_keys)
        records = batch.records
        if rejected:
            for i, reason in sorted(rejected.items()):
                rec = records[i]
                chunk_rejections.append(rejection("chunk", reason, rec.table_name, rec.row_key, rec.chunk_no))
            keep = [i for i in range(len(records)) if i not in rejected]
            records = [records[i] for i in keep]
            vectors = vectors[keep]
        result.chunks_written += chunk_store.copy_chunks(self.conn, self.coll, source_id, records, vectors)
        crash_point("after_copy")
        return time.perf_counter() - t0


def rejection_note(stats: EmbedStats, result: FileResult) -> str | None:
    """The one-line note an indexed file keeps when part of it was rejected (None: nothing was)."""
    parts = []
    if result.rejected_tables:
        parts.append(f"{result.rejected_tables} table(s)")
    if result.rejected_rows:
        parts.append(f"{result.rejected_rows} row(s)")
    if stats.rejected:
        parts.append(f"{stats.rejected} chunk(s) ({'; '.join(stats.rejections[:3])})")
    if not parts:
        return None
    return "rejected " + ", ".join(parts) + " (see dbembed status)"


def is_run_fault(exc: BaseException, conn: psycopg.Connection) -> bool:
    """Faults that every file would meet: the store is gone or misconfigured, bad configuration.
    These end the run; anything else fails one file."""
    import psycopg

    from dbembed.errors import ConfigError, DatabaseUnavailable

    if isinstance(exc, ConfigError | DatabaseUnavailable | MemoryError):
        return True
    if conn.closed or conn.broken or isinstance(exc, psycopg.InterfaceError):
        return True
    # Per-statement limits (a key too long for an index, a statement timeout) concern one file.
    per_file = (psycopg.errors.ProgramLimitExceeded, psycopg.errors.QueryCanceled)
    return isinstance(exc, psycopg.OperationalError) and not isinstance(exc, per_file)
