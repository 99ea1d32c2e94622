"""One ``dbembed run``: discover, queue, index with N workers, build the index, summarise.

Discovery costs one ``stat`` per file and one batched upsert per 2,000 files, so
a rerun over an unchanged tree does almost nothing.  The work itself is shared
through the queue in PostgreSQL (see ``dbembed.store.sources``), so running this
same function on many machines at once is how dbembed scales out.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbembed.errors import EXIT_OK, EXIT_PARTIAL, interrupted_by
from dbembed.run.child_reports import ChildReports
from dbembed.run.rescan import queue_work
from dbembed.store import runs as run_store
from dbembed.store import sources as source_store

if TYPE_CHECKING:
    import psycopg

    from dbembed.config import Settings
    from dbembed.embed.base import EmbeddingProvider
    from dbembed.store.collections import Collection

log = logging.getLogger(__name__)
events = logging.getLogger("dbembed.events")
STOP_GRACE_S = 30.0  # how long an interrupted run waits for its --workers children to stop cleanly


@dataclass
class RunSummary:
    run_id: int
    collection: str
    model: str
    status: str  # ok | partial
    files_found: int = 0
    files_ok: int = 0
    files_failed: int = 0
    files_skipped: int = 0  # unchanged since their last index, so skipped (files that failed: below)
    files_pending: int = 0  # still being written (modified within --settle seconds)
    files_missing: int = 0  # gone from the tree
    files_still_failed: int = 0  # failed in an earlier run, unchanged since, so not retried
    rows: int = 0
    chunks: int = 0
    texts_embedded: int = 0
    texts_reused: int = 0
    seconds: float = 0.0
    chunks_per_s: float = 0.0
    hnsw_built: bool = False
    failures: list[dict[str, str]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    runtime: str | None = None  # local models: the inference runtime used, e.g. "openvino bf16"
    stage_s: dict[str, float] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)  # files, tables, rows, chunks (this run)
    notes: list[str] = field(default_factory=list)  # every skip explained (dbembed.run.explain)

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.files_failed else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["exit_code"] = self.exit_code
        return d


def normalize_roots(roots: Sequence[str | Path]) -> list[str]:
    from dbembed.discover.names import display_path, real_path
    from dbembed.errors import UsageError

    out: list[str] = []
    for root in roots:
        text = str(root)
        if text.startswith("s3://"):
            out.append(text)
            continue
        path = Path(real_path(text)).expanduser()
        if not path.exists():
            raise UsageError(f"root does not exist: {display_path(text)}")
        resolved = display_path(str(path.resolve()))
        # A folder root ends with a separator so that /data/a never claims files of /data/ab.
        out.append(resolved if path.is_file() or resolved.endswith(os.sep) else resolved + os.sep)
    if not out:
        raise UsageError("give at least one root folder (or file) to index")
    return out


def open_collection(conn: psycopg.Connection, settings: Settings, provider: EmbeddingProvider) -> Collection:
    from dbembed.store.collections import default_collection_name, ensure_collection

    name = settings.store.collection or default_collection_name(provider.model_id, settings.embed.dimensions)
    return ensure_collection(conn, name, provider.model_id, provider.dimensions, settings.store)


def _spawn_workers(
    settings: Settings, roots: list[str], coll: Collection, run_id: int, reports: ChildReports | None = None
) -> list[Any]:
    from dbembed.run.worker import spawn_target

    n = max(1, settings.run.workers)
    if n == 1:
        return []
    threads = max(1, (os.cpu_count() or 1) // n)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass
    ctx = multiprocessing.get_context("spawn")
    data = settings.model_dump(mode="json")
    data["collection"] = coll.name
    procs: list[Any] = []
    try:
        for _ in range(n - 1):
            p = ctx.Process(
                target=spawn_target,
                args=(data, roots, coll.name, run_id, threads, reports.queue if reports else None),
                daemon=False,
            )
            p.start()
            procs.append(p)
    except BaseException:
        stop_workers(procs)
        raise
    return procs


def stop_workers(procs: list[Any], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM each live child (it rolls back its file in flight, hands its leases back and exits
    130), wait up to ``grace_s`` for all of them, then SIGKILL whatever is left.  A second
    interrupt while waiting still kills them."""
    try:
        for p in procs:
            if p.is_alive():
                p.terminate()
        deadline = time.monotonic() + grace_s
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)


def index(
    roots: Sequence[str | Path],
    settings: Settings,
    *,
    provider: EmbeddingProvider | None = None,
    provider_factory: Callable[[Settings], EmbeddingProvider] | None = None,
    on_file: Callable[[Any], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_estimate: Callable[[dict[str, int], float | None], None] | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> RunSummary:
    """Run once over ``roots`` and return what happened (also recorded in ``dbembed.runs``).

    The model is loaded (``provider_factory``, default ``get_provider``) only after the roots
    and the database checked out, so a typo or an unreachable server fails in a moment."""
    from dbembed.embed.registry import get_provider
    from dbembed.run.target import existing_collection
    from dbembed.run.worker import make_owner
    from dbembed.store.connection import open_connection
    from dbembed.store.dataapi import require_direct

    require_direct(settings.store, "indexing (dbembed run)")
    started = time.perf_counter()
    root_list = normalize_roots(roots)
    conn = open_connection(settings)
    try:
        # The model is loaded only when there is work: a rerun over an unchanged tree costs a stat per
        # file and a few queries.  An existing collection of the same model id is found without it.
        coll, settings = existing_collection(conn, settings, provider)
        if coll is None:
            provider = provider or (provider_factory or get_provider)(settings)
            coll = open_collection(conn, settings, provider)
        run_store.mark_abandoned(conn, abandoned_after_s(settings))
        run_id = run_store.start_run(conn, coll.id, make_owner(), root_list)
        try:
            return _run(
                conn,
                settings,
                coll,
                run_id,
                root_list,
                started,
                provider,
                provider_factory,
                on_file,
                on_start,
                on_estimate,
                on_progress,
            )
        except BaseException as exc:
            _record_run_end(conn, settings, run_id, started, exc)
            raise
    finally:
        conn.close()


def abandoned_after_s(settings: Settings) -> float:
    """A run whose heartbeat is older than this is dead (its worker stopped beating)."""
    return max(30.0, settings.run.lease_s * 3)


def _record_run_end(
    conn: psycopg.Connection, settings: Settings, run_id: int, started: float, exc: BaseException
) -> None:
    """A run that ends by an exception is recorded as such: ``failed`` with its error, or
    ``interrupted`` (Ctrl-C, SIGTERM).  On a fresh connection when the old one is gone."""
    from dbembed.store.connection import connect

    if isinstance(exc, KeyboardInterrupt | SystemExit):
        status, error = "interrupted", interrupted_by(exc)
    else:
        text = str(exc).strip().splitlines()
        status, error = "failed", f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    seconds = time.perf_counter() - started
    try:
        if conn.closed or conn.broken:
            with connect(settings, register_vector=False) as fresh:
                run_store.finish_run(fresh, run_id, status, seconds, {}, error=error)
        else:
            run_store.finish_run(conn, run_id, status, seconds, {}, error=error)
    except Exception as record_exc:  # noqa: BLE001 - the store itself may be what failed
        log.warning("could not record the end of run %s: %s", run_id, record_exc)


def _run(
    conn: psycopg.Connection,
    settings: Settings,
    coll: Collection,
    run_id: int,
    root_list: list[str],
    started: float,
    provider: EmbeddingProvider | None,
    provider_factory: Callable[[Settings], EmbeddingProvider] | None,
    on_file: Callable[[Any], None] | None,
    on_start: Callable[[int], None] | None,
    on_estimate: Callable[[dict[str, int], float | None], None] | None,
    on_progress: Callable[[str, int, int], None] | None,
) -> RunSummary:
    """The body of ``index`` once the run is recorded (an exception here ends the run ``failed``)."""
    from dbembed.embed.registry import get_provider
    from dbembed.run.worker import WorkerTotals, worker_loop
    from dbembed.store.collections import check_compatible, ensure_hnsw

    found, missing, kept = queue_work(conn, settings, coll, root_list)
    for root, n in kept:
        log.warning("%s: nothing matched, but %d file(s) were indexed there: kept (see the run's notes)", root, n)
    queued = _count(conn, coll.id, root_list, ("queued", "leased"))
    if on_start is not None:
        on_start(queued)
    if on_estimate is not None and queued:
        try:
            on_estimate(*_estimate_work(conn, coll, root_list, settings))
        except Exception as exc:  # noqa: BLE001 - an estimate only feeds the progress display
            log.warning("could not estimate the run's work: %s", exc)
    run_store.add_counts(conn, run_id, {"files_missing": missing})
    totals = WorkerTotals()
    procs: list[Any] = []
    if queued:
        provider = provider or (provider_factory or get_provider)(settings)
        check_compatible(coll, provider.model_id, provider.dimensions)
        reports = None
        if settings.run.workers > 1 and (on_file or on_progress):
            reports = ChildReports(multiprocessing.get_context("spawn"), on_file, on_progress)
            on_file, on_progress = reports.parent_callbacks()
        procs = _spawn_workers(settings, root_list, coll, run_id, reports)
        if reports is not None:
            reports.start()
        try:
            totals = worker_loop(
                settings,
                root_list,
                coll.name,
                run_id,
                provider=provider,
                on_file=on_file,
                on_progress=on_progress,
            )
            for p in procs:
                p.join()
        except BaseException:  # interrupted or failed: the children stop too (no orphans)
            stop_workers(procs)
            raise
        finally:
            if reports is not None:
                reports.close()
    bad_children = [p.exitcode for p in procs if p.exitcode]
    hnsw_built = ensure_hnsw(conn, coll)
    summary = _summarize(conn, coll, run_id, root_list, started, (found, queued, missing), totals)
    summary.hnsw_built = hnsw_built
    from dbembed.run.explain import skip_notes

    summary.notes = skip_notes(summary, settings.sources.settle_s, settings.sources.verify) + [
        f"{root}: no file matched, but {n:,} file(s) indexed there were kept, not removed (an unmounted"
        " volume or a wrong --include?); if they are really gone, run again with --allow-empty-root"
        for root, n in kept
    ]
    if summary.files_failed or bad_children:
        summary.status = "partial"
    run_store.finish_run(
        conn,
        run_id,
        summary.status,
        summary.seconds,
        {
            **_throughput_keys(settings, coll.model),
            "files_found": found,
            "files_skipped": summary.files_skipped,
            "hnsw_built": hnsw_built,
            "worker_exit_codes": bad_children,
        },
    )
    run_store.set_skip_counts(
        conn, run_id, summary.files_skipped, summary.files_pending, summary.files_still_failed
    )
    events.info("run", extra={"event": {"event": "run", **summary.as_dict()}})
    return summary


def _summarize(
    conn: psycopg.Connection,
    coll: Collection,
    run_id: int,
    root_list: list[str],
    started: float,
    files: tuple[int, int, int],
    totals: Any,
) -> RunSummary:
    """The run's summary from its record once every worker is done; ``files`` is (found, queued,
    missing).  Status, notes and ``hnsw_built`` are the caller's to fill in."""
    found, queued, missing = files
    row = run_store.get_run(conn, run_id)
    seconds = time.perf_counter() - started
    pending = _count(conn, coll.id, root_list, ("pending",))
    stats = row.get("stats") or {}
    summary = RunSummary(
        run_id=run_id,
        collection=coll.name,
        model=coll.model,
        status="ok",
        files_found=found,
        files_ok=row["files_ok"],
        files_failed=row["files_failed"],
        files_skipped=max(0, found - queued - pending),  # still-failed files taken out below
        files_pending=pending,
        files_missing=missing,
        rows=row["rows"],
        chunks=row["chunks"],
        texts_embedded=row["texts_embedded"],
        texts_reused=row["texts_reused"],
        seconds=round(seconds, 3),
        chunks_per_s=round(row["chunks"] / seconds, 1) if seconds > 0 else 0.0,
        usage=dict(row.get("usage") or {}),
        runtime=stats.get("runtime"),
        stage_s=dict(stats.get("stage_s", {})) or totals.stage_s,
    )
    summary.failures = [{"file": f.path, "error": f.error} for f in run_store.run_failures(conn, run_id)]
    summary.files_still_failed = max(0, _count(conn, coll.id, root_list, ("failed",)) - summary.files_failed)
    summary.files_skipped = max(0, summary.files_skipped - summary.files_still_failed)
    summary.rejected = run_store.run_rejections(conn, run_id)
    return summary


def _count(conn: psycopg.Connection, collection_id: int, roots: list[str], statuses: tuple[str, ...]) -> int:
    return source_store.count_under(conn, collection_id, roots, statuses)


def _throughput_keys(settings: Settings, model_id: str) -> dict[str, str]:
    """Where this run's throughput was measured, so that ``--dry-run`` can estimate from it."""
    from dbembed.run.plan import backend_key, machine_key

    return {"machine": machine_key(), "backend": backend_key(settings, model_id)}


def _estimate_work(
    conn: psycopg.Connection, coll: Collection, roots: list[str], settings: Settings
) -> tuple[dict[str, int], float | None]:
    """Rows to read per queued file (cheap: dbembed.run.estimate) and the rows/s that earlier runs
    on this machine and backend achieved (None without history), for progress and its ETA."""
    from dbembed.run.estimate import estimate_rows
    from dbembed.run.plan import backend_key, machine_key
    from dbembed.store.plan import queued_files, throughput_history

    rows = estimate_rows(queued_files(conn, coll.id, roots))
    history = throughput_history(conn, machine_key(), backend_key(settings, coll.model))
    seconds = sum(h["seconds"] for h in history)
    rate = sum(h["rows"] for h in history) / seconds if seconds > 0 else None
    return rows, rate
