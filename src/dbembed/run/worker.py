"""A worker: claim a file, index it, repeat; heartbeats keep its leases alive.

The same loop runs in every process of ``--workers N`` and in every machine of
an AWS Batch array job; they share the work only through the queue in
PostgreSQL.  When the queue is empty but other workers still hold leases, a
worker waits: if one of them dies, its lease expires and the survivors finish
its files, so a run ends only when every file under its roots is settled.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbembed.errors import EXIT_INTERRUPTED, interrupted_by, raise_interrupted
from dbembed.store import runs as run_store
from dbembed.store import sources as source_store

if TYPE_CHECKING:
    import psycopg

    from dbembed.config import Settings
    from dbembed.embed.base import EmbeddingProvider
    from dbembed.run.pipeline import FileIndexer, FileResult

log = logging.getLogger(__name__)
events = logging.getLogger("dbembed.events")
# Files claimed at once: up to CLAIM_FILES while their sizes add up to at most CLAIM_BYTES (the
# first is always taken), so small files cost a fraction of a claim and big ones are still shared;
# and never more than a fair share of what is pending (see dbembed.store.sources.claim), so that
# several workers share a tree of a few small files.
CLAIM_FILES = 64
CLAIM_BYTES = 8 * 1024 * 1024
COUNT_FLUSH_S = 1.0  # how often the run's counters are brought up to date while it runs


def make_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class WorkerTotals:
    files: int = 0
    stage_s: dict[str, float] = field(default_factory=dict)

    def add(self, res: FileResult) -> None:
        self.files += 1
        for k, v in res.stage_s.items():
            self.stage_s[k] = self.stage_s.get(k, 0.0) + v


class Heartbeat(threading.Thread):
    """Extends this worker's leases and the run's heartbeat on its own connection."""

    def __init__(self, settings: Settings, owner: str, run_id: int | None) -> None:
        super().__init__(name="dbembed-heartbeat", daemon=True)
        self.settings, self.owner, self.run_id = settings, owner, run_id
        self.stop_event = threading.Event()
        self.interval = max(0.2, settings.run.lease_s / 3)

    def run(self) -> None:
        from dbembed.store.connection import connect

        try:
            conn = connect(self.settings, register_vector=False)
        except Exception as exc:  # noqa: BLE001 - a dead heartbeat only means leases may expire
            log.warning("heartbeat could not connect: %s", exc)
            return
        with conn:
            while not self.stop_event.wait(self.interval):
                try:
                    source_store.heartbeat(conn, self.owner, self.settings.run.lease_s)
                    if self.run_id is not None:
                        run_store.beat(conn, self.run_id)
                except Exception as exc:  # noqa: BLE001
                    log.warning("heartbeat failed: %s", exc)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


def _expire_dead_local_leases(conn: psycopg.Connection, collection_id: int) -> None:
    """Leases held by processes of this host that no longer exist are abandoned: expire them now
    instead of waiting out the lease (a quick rerun after a crash or SIGKILL)."""
    for owner in source_store.lease_owners_on_host(conn, collection_id, socket.gethostname()):
        try:
            pid = int(str(owner).split(":")[1])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue
        source_store.expire_leases(conn, owner)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed child not yet reaped) still answers kill(0); it holds no lease in spirit.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def others_active(conn: psycopg.Connection, collection_id: int, roots: list[str]) -> bool:
    return source_store.count_under(conn, collection_id, roots, ("leased",)) > 0


def worker_loop(
    settings: Settings,
    roots: list[str],
    collection: str,
    run_id: int | None,
    *,
    provider: EmbeddingProvider | None = None,
    on_file: Any = None,
    on_progress: Any = None,
) -> WorkerTotals:
    """Claim and index files until none is left under ``roots``; returns this worker's totals."""
    from dbembed.embed.registry import get_provider

    provider = provider or get_provider(settings)
    indexer = _open_indexer(settings, collection, provider, run_id)
    indexer.progress = on_progress
    conn, coll, owner = indexer.conn, indexer.coll, indexer.owner
    totals = WorkerTotals()
    # A provider outlives runs in long-lived processes (scheduler, API, tests): record this run's share.
    usage_before = provider.usage.as_dict()
    hb = Heartbeat(settings, owner, run_id)
    hb.start()
    poll = min(2.0, max(0.2, settings.run.lease_s / 4))
    counts = _CountBuffer(conn, run_id)
    try:
        while True:
            claims = source_store.claim(
                conn,
                coll.id,
                roots,
                owner,
                settings.run.lease_s,
                run_id,
                limit=CLAIM_FILES,
                max_bytes=CLAIM_BYTES,
                fair_share=True,
            )
            if not claims:
                _expire_dead_local_leases(conn, coll.id)
                if others_active(conn, coll.id, roots):
                    time.sleep(poll)
                    continue
                break
            for res in indexer.process_claims(claims):
                totals.add(res)
                counts.add(res)
                events.info("file", extra={"event": {"event": "file", "run_id": run_id, **res.event()}})
                if settings.run.sidecar and res.status in ("indexed", "failed"):
                    _sidecar(settings, coll.name, coll.model, provider.dimensions, res)
                if on_file is not None:
                    on_file(res)
    finally:
        hb.stop()
        try:
            counts.flush()
            source_store.release_all(conn, owner)
            if run_id is not None:
                _record_worker(conn, run_id, provider, usage_before, totals)
        finally:
            conn.close()
    return totals


def _open_indexer(
    settings: Settings, collection: str, provider: EmbeddingProvider, run_id: int | None
) -> FileIndexer:
    """This worker's ``FileIndexer``: its own connection, the collection checked against the provider,
    a fresh owner name (for leases) and a chunker with its own tokenizer."""
    from dbembed.run.embedder import CachingEmbedder
    from dbembed.run.pipeline import FileIndexer
    from dbembed.store.collections import check_compatible, require_collection
    from dbembed.store.connection import open_connection, relax_commit
    from dbembed.text.chunk import make_chunker

    conn = open_connection(settings)
    try:
        if not settings.run.synchronous_commit:
            # A crash of the database may lose the last files' commits, each whole (chunks and the file's
            # status together): the next run redoes those files.
            relax_commit(conn)
        coll = require_collection(conn, collection)
        check_compatible(coll, provider.model_id, provider.dimensions)
    except BaseException:
        conn.close()
        raise
    return FileIndexer(
        settings,
        conn,
        coll,
        CachingEmbedder(provider, coll, use_cache=settings.run.embed_cache),
        make_chunker(settings.text, provider.new_tokenizer(), provider.max_tokens, provider.max_chars),
        make_owner(),
        run_id,
    )


def _record_worker(
    conn: psycopg.Connection,
    run_id: int,
    provider: EmbeddingProvider,
    usage_before: dict[str, float],
    totals: WorkerTotals,
) -> None:
    """Add this worker's provider usage, runtime and stage times to the run's record."""
    usage = {k: v - usage_before.get(k, 0) for k, v in provider.usage.as_dict().items()}
    run_store.merge_usage(conn, run_id, provider.model_id, usage)
    runtime = getattr(provider, "runtime", None)
    if runtime:
        run_store.note_runtime(conn, run_id, str(runtime))
    run_store.merge_stages(conn, run_id, totals.stage_s)


class _CountBuffer:
    """The run's counters, added to ``dbembed.runs`` at most every ``COUNT_FLUSH_S`` seconds (and at the
    end) instead of once per file: with many small files that round trip was a good share of each file."""

    def __init__(self, conn: psycopg.Connection, run_id: int | None) -> None:
        self.conn, self.run_id = conn, run_id
        self.counts: dict[str, int] = {}
        self.last = time.monotonic()

    def add(self, res: FileResult) -> None:
        if self.run_id is None:
            return
        c = self.counts
        for key, value in (
            ("rows", res.rows),
            ("chunks", res.chunks_written),
            ("texts_embedded", res.texts_embedded),
            ("texts_reused", res.texts_reused),
        ):
            c[key] = c.get(key, 0) + value
        status_key = {"indexed": "files_ok", "failed": "files_failed", "pending": "files_pending"}.get(
            res.status
        )
        if status_key:
            c[status_key] = c.get(status_key, 0) + 1
        if time.monotonic() - self.last >= COUNT_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if self.run_id is not None and self.counts:
            run_store.add_counts(self.conn, self.run_id, self.counts)
        self.counts = {}
        self.last = time.monotonic()


def _sidecar(settings: Settings, collection: str, model: str, dims: int, res: FileResult) -> None:
    """Document 000's per-file metadata: next to a local file, or next to an S3 object with --s3-metadata."""
    from datetime import UTC, datetime

    payload = {
        "file_path": res.path,
        "file_size": res.size,
        "processed_at": datetime.now(UTC).isoformat(),
        "embedding_model": model,
        "status": "processed" if res.status == "indexed" else res.status,
        "chunk_count": res.chunks,
        "tables": res.tables,
        "rows": res.rows,
        "rows_changed": res.rows_changed,
        "rows_deleted": res.rows_deleted,
        "dimensions": dims,
        "texts_embedded": res.texts_embedded,
        "texts_reused": res.texts_reused,
        "duration_s": round(res.duration_s, 4),
        "error": res.error,
        "collection": collection,
    }
    if not res.path.startswith("s3://"):
        from dbembed.discover.names import real_path
        from dbembed.run.sidecar import write_sidecar

        write_sidecar(real_path(res.path), payload)
        return
    if not settings.sources.s3_metadata:
        return
    from dbembed.discover import FileRef
    from dbembed.discover.s3 import put_sidecar
    from dbembed.errors import SourceError

    try:
        put_sidecar(FileRef(res.path, res.size or 0, res.mtime or 0.0), payload, settings.sources)
    except SourceError as exc:
        log.warning("could not write S3 metadata for %s: %s", res.path, exc)


def spawn_target(
    settings_data: dict[str, Any],
    roots: list[str],
    collection: str,
    run_id: int,
    threads: int,
    reports: Any = None,
) -> None:
    """Entry point of a ``--workers`` child process (spawned: nothing inherited but arguments).

    SIGTERM (the parent stopping it) rolls its file in flight back and hands its leases back, then
    it exits 130; it also stops itself when the parent is gone (no orphan keeps working).
    ``reports``: the parent's queue for its progress display (``run.child_reports``), or None."""
    signal.signal(signal.SIGTERM, raise_interrupted)
    _watch_parent(os.getppid())
    os.environ["OMP_NUM_THREADS"] = str(threads)
    from dbembed.config import Settings
    from dbembed.run.child_reports import child_callbacks

    settings = Settings(**settings_data)
    on_file, on_progress = child_callbacks(reports)
    try:
        worker_loop(settings, roots, collection, run_id, on_file=on_file, on_progress=on_progress)
    except KeyboardInterrupt as exc:
        log.info("worker %s stopped (%s)", os.getpid(), interrupted_by(exc))
        sys.exit(EXIT_INTERRUPTED)


def _watch_parent(parent_pid: int, every_s: float = 1.0) -> None:
    """A daemon thread that sends this process SIGTERM once its parent has died (it is re-parented)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="dbembed-parent-watch", daemon=True).start()
