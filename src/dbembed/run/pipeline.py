"""Index one claimed file: read -> document -> diff -> chunk -> embed -> COPY, atomically.

A background thread reads the SQLite file, turns rows into documents, diffs
them against what the index holds (row key + row hash) and chunks the new or
changed ones; the calling thread embeds and loads them.  So reading and
chunking overlap with the model (torch releases the GIL), and memory stays
bounded: batches flow through a small queue.

Everything for a file happens in one transaction that begins by locking the
file's source row and checking our lease.  Old chunks stay searchable until the
new ones commit; a crash at any point rolls the whole file back.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbembed.errors import EmbeddingError, SourceError
from dbembed.run.crash import crash_point
from dbembed.run.embedder import CachingEmbedder, EmbedStats, content_hash
from dbembed.store import chunks as chunk_store
from dbembed.store import sources as source_store
from dbembed.store.chunks import ChunkRecord

if TYPE_CHECKING:
    import psycopg

    from dbembed.config import Settings
    from dbembed.store.collections import Collection
    from dbembed.text.chunk import Chunker

FLUSH_CHUNKS = 2048  # chunks per embed+COPY step: also the window sorted by length before batching
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
    rejected: int = 0
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
            "duration_s": round(self.duration_s, 4),
        }


@dataclass
class _Batch:
    records: list[ChunkRecord]
    replaced_keys: list[tuple[str, str]]  # changed rows whose old chunks go before the new ones load
    rows_read: int = 0  # rows the reader went through since the previous batch (for progress)


@dataclass
class _ReadDone:
    tables: int
    rows: int
    rows_changed: int
    deleted_keys: list[tuple[str, str]]
    used_snapshot: bool
    read_s: float
    chunk_s: float


def row_hash(salt: str, table: str, document: str) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(salt.encode())
    h.update(b"\x00")
    h.update(table.encode("utf-8", "surrogatepass"))
    h.update(b"\x00")
    h.update(document.encode("utf-8", "surrogatepass"))
    return h.digest()


def read_fingerprint(settings: Settings) -> str:
    """What, besides the file itself, decides a file's documents and chunks.  Stored per file;
    a run with other values (``--views``, ``[tables]`` overrides, chunk sizes) re-reads the file."""
    data = {
        "include_views": settings.include_views,
        "tables": {k: v.model_dump(mode="json") for k, v in sorted(settings.tables.items())},
        "chunk_overlap": settings.chunk_overlap,
        "max_chunk_tokens": settings.max_chunk_tokens,
    }
    return hashlib.blake2b(json.dumps(data, sort_keys=True).encode(), digest_size=8).hexdigest()


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
        self._started = 0.0
        # Called on this thread after each embed+load step: (path, rows read, chunks written) since the
        # previous call, so progress moves within a file (dbembed.cli.progress).
        self.progress: Callable[[str, int, int], None] | None = None


    # -- reading side (background thread) -------------------------------------------------
    def _produce(
        self, local_path: Path, existing: dict[tuple[str, str], bytes], out: queue.Queue[Any]
    ) -> None:
        from dbembed.read import SqliteSource
        from dbembed.text.document import row_document

        try:
            t_read = t_chunk = 0.0
            rows = changed = ntables = reported = 0
            batch: list[ChunkRecord] = []
            replaced: list[tuple[str, str]] = []
            with SqliteSource(local_path, self.settings) as src:
                t0 = time.perf_counter()
                tables = src.tables()
                t_read += time.perf_counter() - t0
                ntables = len(tables)
                for table in tables:
                    it = iter(src.rows(table))
                    while True:
                        t0 = time.perf_counter()
                        row = next(it, None)
                        if row is None:
                            t_read += time.perf_counter() - t0
                            break
                        rows += 1
                        doc = row_document(table, row)
                        t1 = time.perf_counter()
                        t_read += t1 - t0
                        if doc is None:
                            continue
                        key = (table.name, row.key)
                        rh = row_hash(self.salt, table.name, doc)
                        old = existing.pop(key, None)
                        if old == rh:
                            continue
                        changed += 1
                        if old is not None:
                            replaced.append(key)
                        for no, piece in enumerate(self.chunker.chunk(doc)):
                            batch.append(ChunkRecord(table.name, row.key, no, rh, content_hash(piece), piece))
                        t_chunk += time.perf_counter() - t1
                        if len(batch) >= FLUSH_CHUNKS:
                            out.put(_Batch(batch, replaced, rows - reported))
                            batch, replaced, reported = [], [], rows
                used_snapshot = bool(getattr(src, "used_snapshot", False))
            if batch or replaced:
                out.put(_Batch(batch, replaced, rows - reported))
            out.put(_ReadDone(ntables, rows, changed, list(existing), used_snapshot, t_read, t_chunk))
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            out.put(exc)

    # -- main side ---------------------------------------------------------------------
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
        result.duration_s = time.perf_counter() - started
        return result

    def _fail(self, claim: source_store.Claim, result: FileResult, error: str, *, retryable: bool) -> None:
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
                st = os.stat(claim.path)
            except FileNotFoundError as exc:
                raise SourceError(f"file vanished before it could be read: {claim.path}") from exc
            except PermissionError as exc:
                raise SourceError(f"permission denied: {claim.path}") from exc
            result.size, result.mtime = st.st_size, st.st_mtime
        if result.mtime is not None and time.time() - result.mtime < self.settings.settle_s:
            source_store.release(self.conn, claim.id, self.owner, status="pending")
            result.status = "pending"
            return False
        return True

    def _process(self, claim: source_store.Claim, result: FileResult) -> None:
        from dbembed.discover import FoundFile, materialize

        crash_point("after_claim")
        if not self._stat(claim, result):
            return
        found = FoundFile(
            path=claim.path,
            root="",
            size=result.size or 0,
            mtime=result.mtime or 0.0,
            header_ok=True,
            etag=(claim.meta or {}).get("etag"),
        )
        stats = EmbedStats()
        t_load = 0.0
        with materialize(found, self.settings) as local_path, self.conn.transaction():
            source_store.lock_lease(self.conn, claim.id, self.owner)
            existing = (
                chunk_store.existing_row_hashes(self.conn, self.coll, claim.id)
                if claim.size is not None
                else {}
            )
            new_file = claim.size is None and not existing
            q: queue.Queue[Any]
            reader: threading.Thread | None = None
            if (result.size or 0) <= INLINE_READ_BYTES:
                # A small file is read here, before embedding: a thread per file costs more than it overlaps.
                q = queue.Queue()
                self._produce(Path(local_path), existing, q)
            else:
                q = queue.Queue(maxsize=4)
                reader = threading.Thread(
                    target=self._produce,
                    args=(Path(local_path), existing, q),
                    name="dbembed-reader",
                    daemon=True,
                )
                reader.start()
            done: _ReadDone | None = None
            try:
                while done is None:
                    item = q.get()
                    if isinstance(item, BaseException):
                        raise item
                    if isinstance(item, _ReadDone):
                        done = item
                        break
                    written = result.chunks_written
                    t_load += self._flush(claim.id, item, stats, result)
                    if self.progress is not None:
                        self.progress(claim.path, item.rows_read, result.chunks_written - written)
            finally:
                if done is None and reader is not None:
                    _drain(q, reader)
            if reader is not None:
                reader.join()
            t0 = time.perf_counter()
            result.rows_deleted = len(done.deleted_keys)
            chunk_store.delete_rows(self.conn, self.coll, claim.id, done.deleted_keys)
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
            error = None
            if stats.rejected:
                error = (
                    f"{stats.rejected} chunk(s) rejected by the provider: {'; '.join(stats.rejections[:3])}"
                )
            result.error = error
            content = None
            if self.settings.verify and not claim.path.startswith("s3://"):
                from dbembed.discover import file_hash

                content = file_hash(Path(local_path))
            crash_point("before_commit")
            source_store.mark_indexed(
                self.conn,
                claim.id,
                self.owner,
                {
                    "error": error,
                    "size": result.size,
                    "mtime": result.mtime,
                    "content_hash": content,
                    "tables": result.tables,
                    "rows": result.rows,
                    "chunks": result.chunks,
                    "model": self.coll.model,
                    "duration_s": time.perf_counter() - self._started,
                    "run_id": self.run_id,
                    "meta": {
                        "used_snapshot": result.used_snapshot,
                        "rejected": stats.rejected,
                        "worker": self.owner,
                        "read_fp": read_fingerprint(self.settings),
                    },
                },
            )
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

    def _flush(self, source_id: int, batch: _Batch, stats: EmbedStats, result: FileResult) -> float:
        """Embed one batch and load it; returns seconds spent loading."""
        vectors, rejected = self.embedder.vectors_for(self.conn, batch.records, stats)
        t0 = time.perf_counter()
        chunk_store.delete_rows(self.conn, self.coll, source_id, batch.replaced_keys)
        records = batch.records
        if rejected:
            keep = [i for i in range(len(records)) if i not in rejected]
            records = [records[i] for i in keep]
            vectors = vectors[keep]
        result.chunks_written += chunk_store.copy_chunks(self.conn, self.coll, source_id, records, vectors)
        crash_point("after_copy")
        return time.perf_counter() - t0


def _drain(q: queue.Queue[Any], reader: threading.Thread) -> None:
    """Unblock a reader thread whose consumer stopped early (error path)."""
    deadline = time.monotonic() + 30
    while reader.is_alive() and time.monotonic() < deadline:
        try:
            q.get(timeout=0.1)
        except queue.Empty:
            continue
