"""Bring the queue up to date before a run's workers start: discover the roots (one ``stat`` per
file, one batched upsert per ``UPSERT_BATCH`` files), queue again what changed settings, rejected
chunks, ``--verify`` or ``--force`` call for, and record the files gone from the tree."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dbembed.run.reading import read_fingerprint
from dbembed.store import chunks as chunk_store
from dbembed.store import rejections as rejection_store
from dbembed.store import runs as run_store
from dbembed.store import sources as source_store

if TYPE_CHECKING:
    import psycopg

    from dbembed.config import Settings
    from dbembed.store.collections import Collection

UPSERT_BATCH = 2000


def queue_work(
    conn: psycopg.Connection, settings: Settings, coll: Collection, root_list: list[str]
) -> tuple[int, int, list[tuple[str, int]]]:
    """Discover the roots and bring the queue up to date (changed settings, rejected chunks,
    ``--verify``, ``--force``, vanished files); returns (files found, files gone missing, kept):
    ``kept`` lists (root, files) for roots where nothing matched although files were indexed there
    (an unmounted volume, a wrong ``--include``): their files are kept unless ``allow_empty_root``."""
    since = run_store.clock(conn)
    found, roots_seen = _discover_and_queue(conn, coll, root_list, settings)
    source_store.requeue_stale_settings(conn, coll.id, root_list, read_fingerprint(settings))
    rejection_store.requeue_rejected_chunks(conn, coll.id, root_list)
    if settings.sources.verify:
        _verify(conn, coll, root_list)
    if settings.run.force:
        source_store.requeue_under(conn, coll.id, root_list)
    empty = [r for r in root_list if r not in roots_seen]
    kept: list[tuple[str, int]] = []
    if not settings.run.allow_empty_root:
        kept = [(r, n) for r in empty if (n := len(source_store.vanished(conn, coll.id, [r], since)))]
    pruned = [r for r in root_list if r not in {root for root, _ in kept}]
    missing = _handle_vanished(conn, coll, pruned, since, settings.run.keep_missing) if pruned else 0
    return found, missing, kept


def note_root(roots_seen: set[str], roots: list[str], path: str) -> None:
    """Add to ``roots_seen`` the roots ``path`` lies under (a root where nothing matched keeps the
    files indexed under it, see ``queue_work``); free once every root has been seen."""
    if len(roots_seen) < len(roots):
        roots_seen.update(r for r in roots if path.startswith(r))


def _discover_and_queue(
    conn: psycopg.Connection, coll: Collection, roots: list[str], settings: Settings
) -> tuple[int, set[str]]:
    """Upsert what discovery finds; returns (files found, the roots under which something was found)."""
    from dbembed.discover import discover

    cutoff = time.time() - settings.sources.settle_s
    batch: list[Any] = []
    found = 0
    seen: set[str] = set()  # overlapping roots (/data and /data/sub) must not list a file twice
    roots_seen: set[str] = set()
    for f in discover(roots, settings.sources):
        if f.path in seen:
            continue
        seen.add(f.path)
        note_root(roots_seen, roots, f.path)
        batch.append(f)
        if len(batch) >= UPSERT_BATCH:
            source_store.upsert_discovered(conn, coll.id, batch, cutoff)
            found += len(batch)
            batch = []
    source_store.upsert_discovered(conn, coll.id, batch, cutoff)
    return found + len(batch), roots_seen


def _verify(conn: psycopg.Connection, coll: Collection, roots: list[str]) -> int:
    """--verify: an indexed file whose content hash changed (same size and mtime) is queued again."""
    from dbembed.discover import file_hash

    changed = []
    for sid, path, known in source_store.indexed_under(conn, coll.id, roots):
        if path.startswith("s3://"):
            continue
        try:
            if file_hash(path) != known:
                changed.append(sid)
        except OSError:
            continue
    source_store.requeue(conn, coll.id, changed)
    return len(changed)


def _handle_vanished(
    conn: psycopg.Connection, coll: Collection, roots: list[str], since: Any, keep: bool
) -> int:
    ids = source_store.vanished(conn, coll.id, roots, since)
    for sid in ids:
        with conn.transaction():
            if not keep:
                chunk_store.delete_source_chunks(conn, coll, sid)
            source_store.mark_missing(conn, sid, keep_chunks=keep)
    return len(ids)
