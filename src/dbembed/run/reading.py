"""The reading side of indexing a file: read its tables, build each row's document, diff rows
against what the index holds (row key + row hash) and chunk the new or changed ones.

``FileReader.read`` runs on a reader thread (or inline for small files) and hands ``Batch`` items and a
final ``ReadDone`` to the thread that embeds and loads them (``dbembed.run.pipeline``).  A dry run
(``dbembed.run.plan``) reads through the same ``changed_rows``.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbembed.errors import DbembedError
from dbembed.run.embedder import content_hash
from dbembed.store.chunks import ChunkRecord
from dbembed.store.rejections import MAX_LISTED, Rejection
from dbembed.text.hygiene import clean_text

if TYPE_CHECKING:
    from dbembed.config import Settings, SourcesSettings
    from dbembed.read import TableInfo
    from dbembed.text.chunk import Chunker

FLUSH_CHUNKS = 2048  # chunks per embed+COPY step: also the window sorted by length before batching


@dataclass
class Batch:
    records: list[ChunkRecord]
    replaced_keys: list[tuple[str, str]]  # changed rows whose old chunks go before the new ones load
    rows_read: int = 0  # rows the reader went through since the previous batch (for progress)


@dataclass
class ReadDone:
    tables: int
    rows: int
    rows_changed: int
    deleted_keys: list[tuple[str, str]]
    used_snapshot: bool
    read_s: float
    chunk_s: float
    rejections: list[Rejection] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)  # level -> count


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return (
        f"{type(exc).__name__}: {line}" if not isinstance(exc, DbembedError) else line or type(exc).__name__
    )


def rejection(
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
        self.reject(rejection("table", reason, name))
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
    document built in ``document_format`` (``settings.text.document_format``).

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
            state.reject(
                rejection("row", f"document could not be built: {one_line(exc)}", table.name, row.key)
            )
            continue
        state.changed += 1
        state.t_chunk += time.perf_counter() - t1
        yield key, rh, old, pieces


def read_fingerprint(settings: Settings) -> str:
    """What, besides the file itself, decides a file's documents and chunks.  Stored per file;
    a run with other values (``--views``, ``[tables]`` overrides, chunk sizes, the document format)
    re-reads the file."""
    data: dict[str, Any] = {
        "include_views": settings.sources.include_views,
        "tables": {k: v.model_dump(mode="json") for k, v in sorted(settings.sources.tables.items())},
        "chunk_overlap": settings.text.chunk_overlap,
        "max_chunk_tokens": settings.text.max_chunk_tokens,
    }
    if settings.text.document_format != "table-columns":  # absent = the format every file was read with
        data["document_format"] = settings.text.document_format
    return hashlib.blake2b(json.dumps(data, sort_keys=True).encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class FileReader:
    """How a run reads a file: the sources settings, the document format, the row-hash salt and the
    chunker (which owns its tokenizer, so it may run on the reader thread)."""

    sources: SourcesSettings
    document_format: str
    salt: str
    chunker: Chunker

    def read(
        self,
        local_path: Path,
        existing: dict[tuple[str, str], bytes],
        out: queue.Queue[Any],
        stop: threading.Event,
    ) -> None:
        """Read, diff and chunk one file (on the reader thread): puts ``Batch`` items on ``out``, then
        one ``ReadDone`` (or the exception that stopped it).  ``existing`` is row key -> stored row
        hash; what is left of it afterwards was deleted.  Stops early when ``stop`` is set."""
        from dbembed.read import SqliteSource

        try:
            state = ReadState()
            with SqliteSource(local_path, self.sources) as src:
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
                out.put(Batch(state.batch, state.replaced, state.rows - state.reported))
            out.put(
                ReadDone(
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
            src, table, self.salt, self.chunker, existing, state, self.document_format
        ):
            if old is not None:
                state.replaced.append(key)
            for no, piece in enumerate(pieces):
                state.batch.append(ChunkRecord(table.name, key[1], no, rh, content_hash(piece), piece))
            if len(state.batch) >= FLUSH_CHUNKS:
                out.put(Batch(state.batch, state.replaced, state.rows - state.reported))
                state.batch, state.replaced, state.reported = [], [], state.rows


def drain(q: queue.Queue[Any], reader: threading.Thread) -> None:
    """Unblock a reader thread whose consumer stopped early (error path)."""
    deadline = time.monotonic() + 30
    while reader.is_alive() and time.monotonic() < deadline:
        try:
            q.get(timeout=0.1)
        except queue.Empty:
            continue
