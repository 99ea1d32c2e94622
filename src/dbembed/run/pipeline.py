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
from dbembed.errors import DbembedError, EmbeddingError, SourceError
from dbembed.run.crash import crash_point
from dbembed.run.embedder import CachingEmbedder, EmbedStats, content_hash
from dbembed.store import chunks as chunk_store
from dbembed.store import rejections as rejection_store
from dbembed.store import sources as source_store
from dbembed.store.chunks import ChunkRecord
from dbembed.store.rejections import MAX_LISTED, Rejection
from dbembed.text.hygiene import clean_text

if TYPE_CHECKING:
    import psycopg

    from dbembed.config import Settings
    from dbembed.read import TableInfo
    from dbembed.store.collections import Collection
    from dbembed.text.chunk import Chunker

log = logging.getLogger(__name__)
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
    rejections: list[Rejection] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)  # level -> count


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return (
        f"{type(exc).__name__}: {line}" if not isinstance(exc, DbembedError) else line or type(exc).__name__
    )


def _rejection(
    level: Any, reason: str, table: str | None, key: str | None = None, no: int | None = None
) -> Rejection:
    return Rejection(level, clean_text(reason), table, key, no)


@dataclass
class ReadState:
    """What the reader thread accumulates over one file."""

    tables: int = 0
    rows: int = 0
    reported: int = 0  # rows already counted in a batch handed out (progress)
    changed: int = 0
    unchanged: int = 0
    t_read: float = 0.0
    t_chunk: float = 0.0
    batch: list[ChunkRecord] = field(default_factory=list)
    replaced: list[tuple[str, str]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def reject(self, item: Rejection) -> None:
        n = self.counts.get(item.level, 0)
        self.counts[item.level] = n + 1
        if n < MAX_LISTED:
            self.rejections.append(item)

    def reject_table(self, name: str, reason: str, existing: dict[tuple[str, str], bytes]) -> None:
        """Skip a table; what the index holds of it stays (its keys leave the deletion list)."""
        self.reject(_rejection("table", reason, name))
        for key in [k for k in existing if k[0] == name]:
            del existing[key]


def row_hash(salt: str, table: str, document: str) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(salt.encode())
    h.update(b"\x00")
    h.update(table.encode("utf-8", "surrogatepass"))
    h.update(b"\x00")
    h.update(document.encode("utf-8", "surrogatepass"))
    return h.digest()


def changed_rows(
    src: Any,
    table: TableInfo,
    salt: str,
    chunker: Chunker,
    existing: dict[tuple[str, str], bytes],
    state: ReadState,
    document_format: str,
) -> Iterator[tuple[tuple[str, str], bytes, bytes | None, list[str]]]:
    """Read, document, diff and chunk one table of an open ``SqliteSource``: yields ``((table,
    row key), row hash, stored row hash or None, chunk texts)`` for each new or changed row, its
    document built in ``document_format`` (``settings.document_format``).

    A row found in ``existing`` (row key -> stored row hash) is removed from it, so what is left
    afterwards was deleted.  A table that cannot be read is rejected (its stored chunks are kept);
    a row whose document cannot be built is rejected alone.  Counts, rejections and read/chunk
    times go to ``state``.  A run (``FileIndexer``) and a dry run (``run.plan``) both read this way."""
    from dbembed.errors import TableReadError
    from dbembed.text.document import row_document

    it = iter(src.rows(table))
    seen = 0
    while True:
        t0 = time.perf_counter()
        try:
            row = next(it, None)
        except TableReadError as exc:
            state.t_read += time.perf_counter() - t0
            where = f" after {seen} row(s)" if seen else ""
            state.reject_table(table.name, f"read stopped{where}: {exc}", existing)
            return
        if row is None:
            state.t_read += time.perf_counter() - t0
            return
        seen += 1
        state.rows += 1
        t1 = time.perf_counter()
        state.t_read += t1 - t0
        try:
            doc = row_document(table, row, document_format)
            if doc is None:
                continue
            key = (table.name, row.key)
            rh = row_hash(salt, table.name, doc)
            old = existing.pop(key, None)
            if old == rh:
                state.unchanged += 1
                continue
            pieces = chunker.chunk(doc)
        except Exception as exc:  # noqa: BLE001 - one row's fault (ours or its data's) stays with it
            state.reject(_rejection("row", f"document could not be built: {_one_line(exc)}", table.name, row.key))
            continue
        state.changed += 1
        state.t_chunk += time.perf_counter() - t1
        yield key, rh, old, pieces


def read_fingerprint(settings: Settings) -> str:
    """What, besides the file itself, decides a file's documents and chunks.  Stored per file;
    a run with other values (``--views``, ``[tables]`` overrides, chunk sizes, the document format)
    re-reads the file."""
    data: dict[str, Any] = {
        "include_views": settings.include_views,
        "tables": {k: v.model_dump(mode="json") for k, v in sorted(settings.tables.items())},
        "chunk_overlap": settings.chunk_overlap,
        "max_chunk_tokens": settings.max_chunk_tokens,
    }
    if settings.document_format != "table-columns":  # absent = the format every file was read with before
        data["document_format"] = settings.document_format
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
        self,
        local_path: Path,
        existing: dict[tuple[str, str], bytes],
        out: queue.Queue[Any],
        stop: threading.Event,
    ) -> None:
        from dbembed.read import SqliteSource

        try:
            state = ReadState()
            with SqliteSource(local_path, self.settings.sources) as src:
                t0 = time.perf_counter()
                tables = src.tables()
                state.t_read += time.perf_counter() - t0
                state.tables = len(tables)
                for name, reason in sorted(src.rejected.items()):
                    state.reject_table(name, reason, existing)
                for table in tables:
                    if stop.is_set():
                        return
                    self._read_table(src, table, existing, out, state)
                used_snapshot = bool(getattr(src, "used_snapshot", False))
            if state.batch or state.replaced:
                out.put(_Batch(state.batch, state.replaced, state.rows - state.reported))
            out.put(
                _ReadDone(
                    state.tables,
                    state.rows,
                    state.changed,
                    list(existing),
                    used_snapshot,
                    state.t_read,
                    state.t_chunk,
                    state.rejections,
                    state.counts,
                )
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            out.put(exc)

    def _read_table(
        self,
        src: Any,
        table: TableInfo,
        existing: dict[tuple[str, str], bytes],
        out: queue.Queue[Any],
        state: ReadState,
    ) -> None:
        """Read, diff and chunk one table (``changed_rows``) into batches of chunk records."""
        for key, rh, old, pieces in changed_rows(
            src, table, self.salt, self.chunker, existing, state, self.settings.document_format
        ):
            if old is not None:
                state.replaced.append(key)
            for no, piece in enumerate(pieces):
                state.batch.append(ChunkRecord(table.name, key[1], no, rh, content_hash(piece), piece))
            if len(state.batch) >= FLUSH_CHUNKS:
                out.put(_Batch(state.batch, state.replaced, state.rows - state.reported))
                state.batch, state.replaced, state.reported = [], [], state.rows

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
            self._fail(claim, result, f"internal error: {_one_line(exc)}", retryable=True)
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
        with materialize(found, self.settings.sources) as local_path, self.conn.transaction():
            source_store.lock_lease(self.conn, claim.id, self.owner)
            existing = (
                chunk_store.existing_row_hashes(self.conn, self.coll, claim.id)
                if claim.size is not None
                else {}
            )
            new_file = claim.size is None and not existing
            q: queue.Queue[Any]
            stop = threading.Event()
            reader: threading.Thread | None = None
            if (result.size or 0) <= INLINE_READ_BYTES:
                # A small file is read here, before embedding: a thread per file costs more than it overlaps.
                q = queue.Queue()
                self._produce(Path(local_path), existing, q, stop)
            else:
                q = queue.Queue(maxsize=4)
                reader = threading.Thread(
                    target=self._produce,
                    args=(Path(local_path), existing, q, stop),
                    name="dbembed-reader",
                    daemon=True,
                )
                reader.start()
            done: _ReadDone | None = None
            chunk_rejections: list[Rejection] = []
            try:
                while done is None:
                    item = q.get()
                    if isinstance(item, BaseException):
                        raise item
                    if isinstance(item, _ReadDone):
                        done = item
                        break
                    written = result.chunks_written
                    t_load += self._flush(claim.id, item, stats, result, chunk_rejections)
                    if self.progress is not None:
                        self.progress(claim.path, item.rows_read, result.chunks_written - written)
            finally:
                if done is None and reader is not None:
                    stop.set()
                    _drain(q, reader)
            if reader is not None:
                reader.join()
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
            error = _rejection_note(stats, result)
            result.error = error
            content = None
            if self.settings.verify and not claim.path.startswith("s3://"):
                from dbembed.discover import file_hash

                content = file_hash(Path(local_path))
            crash_point("before_commit")
            source_store.mark_indexed(
                self.conn,
                self.owner,
                [
                    source_store.IndexedFile(
                        source_id=claim.id,
                        size=result.size,
                        mtime=result.mtime,
                        tables=result.tables,
                        rows=result.rows,
                        chunks=result.chunks,
                        model=self.coll.model,
                        duration_s=time.perf_counter() - self._started,
                        run_id=self.run_id,
                        error=error,
                        content_hash=content,
                        meta={
                            "used_snapshot": result.used_snapshot,
                            "rejected": stats.rejected,
                            "worker": self.owner,
                            "read_fp": read_fingerprint(self.settings),
                        },
                    )
                ],
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

    def _record_rejections(
        self, source_id: int, done: _ReadDone, chunks: list[Rejection], result: FileResult
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
        batch: _Batch,
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
                chunk_rejections.append(
                    _rejection("chunk", reason, rec.table_name, rec.row_key, rec.chunk_no)
                )
            keep = [i for i in range(len(records)) if i not in rejected]
            records = [records[i] for i in keep]
            vectors = vectors[keep]
        result.chunks_written += chunk_store.copy_chunks(self.conn, self.coll, source_id, records, vectors)
        crash_point("after_copy")
        return time.perf_counter() - t0


def _rejection_note(stats: EmbedStats, result: FileResult) -> str | None:
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


def _drain(q: queue.Queue[Any], reader: threading.Thread) -> None:
    """Unblock a reader thread whose consumer stopped early (error path)."""
    deadline = time.monotonic() + 30
    while reader.is_alive() and time.monotonic() < deadline:
        try:
            q.get(timeout=0.1)
        except queue.Empty:
            continue
