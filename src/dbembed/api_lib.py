"""The Python API that every surface calls (CLI, HTTP API, scheduler).

    import dbembed
    summary = dbembed.index(["/mnt/sqlite-load-test"], settle_s=0)
    for hit in dbembed.search("refund for a damaged order", k=5):
        print(hit.score, hit.path, hit.table, hit.row_key, hit.text)

Every function takes ``settings`` (a ``dbembed.config.Settings``) or keyword
overrides that are applied on top of env vars and the config file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from dbembed.config import Settings, load_settings
from dbembed.run.index import RunSummary
from dbembed.store.search import Hit

__all__ = ["index", "search", "status", "files", "retry_failed", "dry_run", "RunSummary", "Hit", "get_settings"]

# Providers are expensive to load (a transformer takes seconds); keep one per (model, device) per process.
# The key gains (backend, precision) unless they name the reference runtime (or auto, its stand-in).
_providers: dict[tuple[Any, ...], Any] = {}
_providers_lock = threading.RLock()  # API request threads: load each provider once
_REFERENCE_RUNTIMES = {("auto", "auto"), ("torch", "auto"), ("torch", "fp32"), ("auto", "fp32")}


_migrated: set[str] = set()  # databases already migrated by this process (search/status are hot paths)


def _migrate_once(conn: Any) -> None:
    from dbembed.store.migrate import migrate

    key = f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"
    if key not in _migrated:
        migrate(conn)
        from dbembed.store.connection import try_register_vector

        try_register_vector(conn)
        _migrated.add(key)


def get_settings(settings: Settings | None = None, **overrides: Any) -> Settings:
    if settings is None:
        return load_settings(**overrides)
    if overrides:
        # Checked like flags: model_copy(update=...) alone would skip the validators.
        from pydantic import ValidationError

        from dbembed.errors import ConfigError

        copy = settings.model_copy()
        try:
            for key, value in overrides.items():
                if value is not None:
                    setattr(copy, key, value)
        except (ValidationError, ValueError) as exc:
            raise ConfigError(f"invalid settings: {exc}") from exc
        return copy
    return settings


def provider_for(settings: Settings, spec: str | None = None) -> Any:
    from dbembed.embed.registry import get_provider

    key: tuple[Any, ...] = (spec or settings.model, settings.device, settings.dimensions)
    if (settings.backend, settings.precision) not in _REFERENCE_RUNTIMES:
        key += (settings.backend, settings.precision)
    with _providers_lock:
        if key not in _providers:
            _providers[key] = get_provider(settings, spec)
        return _providers[key]


def index(
    roots: Sequence[str | Path],
    settings: Settings | None = None,
    *,
    on_file: Callable[[Any], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_estimate: Callable[[dict[str, int], float | None], None] | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    **overrides: Any,
) -> RunSummary:
    """Find, read, embed and store every SQLite file under ``roots``; incremental and resumable.

    Callbacks (all on the calling thread): ``on_start(files queued)``; ``on_estimate(rows per queued
    file, earlier runs' rows/s or None)``; ``on_progress(path, rows read, chunks written)`` after each
    embed+load step inside a file; ``on_file(FileResult)`` when a file is done."""
    from dbembed.run.index import index as run_index

    s = get_settings(settings, **overrides)
    return run_index(
        roots, s, provider_factory=provider_for, on_file=on_file, on_start=on_start, on_estimate=on_estimate,
        on_progress=on_progress,
    )  # fmt: skip


def search(
    query: str,
    k: int = 10,
    *,
    file: str | None = None,
    table: str | None = None,
    settings: Settings | None = None,
    exact: bool = False,
    mode: str | None = None,
    **overrides: Any,
) -> list[Hit]:
    """Top-k chunks for ``query``: ``mode`` ``"hybrid"`` (default, ``settings.search_mode``),
    ``"vector"`` (embedded with the collection's own model) or ``"lexical"`` (tokens only; the
    model is not loaded).  Raises ``UsageError`` for an empty query, k outside 1..1000 or an
    unknown mode, ``NotFound`` when nothing is indexed."""
    from dbembed.errors import UsageError
    from dbembed.store.collections import default_collection_name, list_collections, require_collection
    from dbembed.store.connection import connect
    from dbembed.store.search import MODES, search_chunks
    from dbembed.text.hygiene import clean_text, is_blank

    query = clean_text(query or "")  # the same hygiene (NFKC...) as the indexed documents
    if is_blank(query):
        raise UsageError("the search query is empty")
    if k < 1 or k > 1000:
        raise UsageError(f"k must be between 1 and 1000 (got {k})")
    s = get_settings(settings, **overrides)
    mode = mode or s.search_mode
    if mode not in MODES:
        raise UsageError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
    with connect(s) as conn:
        _migrate_once(conn)
        if s.collection:
            coll = require_collection(conn, s.collection)
        else:
            from dbembed.embed.registry import split_spec

            name = default_collection_name(
                s.model if ":" in s.model else "local:" + split_spec(s.model)[1], s.dimensions
            )
            existing = list_collections(conn)
            if not any(c.name == name for c in existing) and len(existing) == 1:
                name = existing[0].name  # one index only: search it, with its own model
            coll = require_collection(conn, name)
        vec = None
        if mode != "lexical":
            provider = provider_for(s, coll.model)
            if provider.dimensions != coll.dimensions:  # e.g. Titan v2 indexed with --dimensions 512
                provider = provider_for(s.model_copy(update={"dimensions": coll.dimensions}), coll.model)
            from dbembed.store.collections import check_compatible

            check_compatible(coll, provider.model_id, provider.dimensions)
            vec = provider.embed_query(query)
        return search_chunks(
            conn, coll, vec, k, query=query, mode=mode, file=file, table=table,
            ef_search=s.hnsw_ef_search, exact=exact,
        )  # fmt: skip


def status(
    settings: Settings | None = None, *, runs: int = 5, failures: int = 20, **overrides: Any
) -> dict[str, Any]:
    """Per-collection file counts by status, leased work, recent runs (a run whose worker died shows
    as ``abandoned``), failures with reasons, and what was rejected below the file level
    (``rejections``: totals, and per file its rejected tables/rows/chunks with reasons)."""
    from dbembed.run.index import abandoned_after_s
    from dbembed.store.collections import list_collections
    from dbembed.store.connection import connect
    from dbembed.store.rejections import summary as rejection_summary
    from dbembed.store.runs import recent_runs

    s = get_settings(settings, **overrides)
    out: dict[str, Any] = {"collections": []}
    with connect(s) as conn:
        _migrate_once(conn)
        for coll in list_collections(conn):
            if s.collection and coll.name != s.collection:
                continue
            counts: dict[str, int] = dict(
                conn.execute(
                    "SELECT status, count(*) FROM dbembed.sources WHERE collection_id = %s GROUP BY status",
                    (coll.id,),
                ).fetchall()
            )
            totals = conn.execute(
                "SELECT coalesce(sum(rows), 0), coalesce(sum(chunks), 0) FROM dbembed.sources"
                " WHERE collection_id = %s AND status = 'indexed'",
                (coll.id,),
            ).fetchone()
            leased = conn.execute(
                "SELECT path, lease_owner, lease_expires FROM dbembed.sources WHERE collection_id = %s"
                " AND status = 'leased' ORDER BY path LIMIT 50",
                (coll.id,),
            ).fetchall()
            failed = conn.execute(
                "SELECT path, error, processed_at FROM dbembed.sources WHERE collection_id = %s"
                " AND status = 'failed' ORDER BY processed_at DESC NULLS LAST LIMIT %s",
                (coll.id, failures),
            ).fetchall()
            out["collections"].append(
                {
                    "name": coll.name,
                    "model": coll.model,
                    "dimensions": coll.dimensions,
                    "vector_type": coll.vector_type,
                    "files": {
                        st: int(counts.get(st, 0))
                        for st in ("indexed", "failed", "queued", "leased", "pending", "missing")
                    },
                    "rows": int(totals[0]) if totals else 0,
                    "chunks": int(totals[1]) if totals else 0,
                    "leased": [{"file": p, "owner": o, "expires": e} for p, o, e in leased],
                    "failures": [{"file": p, "error": e, "at": t} for p, e, t in failed],
                    "runs": recent_runs(conn, coll.id, runs, abandoned_after_s(s)),
                    "rejections": rejection_summary(conn, coll.id, limit=failures),
                }
            )
    return out


def parse_since(text: str | datetime | None) -> datetime | None:
    """``--since``: an ISO 8601 date or time (UTC unless it names a zone), or an age such as
    ``90s``, ``15m``, ``2h``, ``7d``.  Raises ``UsageError`` naming the value otherwise."""
    import re
    from datetime import UTC, timedelta

    from dbembed.errors import UsageError

    if text is None or isinstance(text, datetime):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if m:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return datetime.now(UTC) - timedelta(seconds=float(m.group(1)) * unit)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r}: give an ISO date/time (2026-11-30, 2026-11-30T14:00) or an age (90s, 15m, 2h, 7d)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def files(
    settings: Settings | None = None,
    *,
    status: str | None = None,
    glob: str | None = None,
    since: str | datetime | None = None,
    sort: str = "path",
    descending: bool = False,
    limit: int = 100,
    cursor: str | None = None,
    rejected: bool = False,
    with_rejections: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """One page of the per-file listing (``dbembed files``, ``GET /v1/files``).

    Returns ``{"items": [...], "next_cursor": str | None, "counts": {status: n}}``; each item has
    ``dbembed.store.files.COLUMNS`` as keys (plus ``rejections``, a list of ``{level, table, row_key,
    chunk_index, reason}``, with ``with_rejections``); ``rejected`` keeps only files with rejections.  ``counts`` covers every file that matches the
    collection/glob/since filters (any status).  Only the named collection when ``settings.collection``
    is set.  Raises ``UsageError`` for an unknown status/sort, a bad ``since`` or cursor."""
    from dbembed.store.collections import require_collection
    from dbembed.store.connection import connect
    from dbembed.store.files import FileQuery, count_files, list_files, rejections

    s = get_settings(settings, **overrides)
    with connect(s) as conn:
        _migrate_once(conn)
        cid = require_collection(conn, s.collection).id if s.collection else None
        q = FileQuery(
            collection_id=cid, status=status, glob=glob, since=parse_since(since), sort=sort,
            descending=descending, limit=limit, rejected=rejected,
        )  # fmt: skip
        items, nxt = list_files(conn, q, cursor)
        if with_rejections:
            found = rejections(conn, [f["id"] for f in items])
            for f in items:
                f["rejections"] = found.get(f["id"], [])
        return {"items": items, "next_cursor": nxt, "counts": count_files(conn, q)}


def retry_failed(
    settings: Settings | None = None, paths: Sequence[str] | None = None, **overrides: Any
) -> int:
    """Queue failed files again (all, or the given paths); the next run indexes them."""
    from dbembed.store.collections import list_collections
    from dbembed.store.connection import connect
    from dbembed.store.sources import retry_failed as _retry

    s = get_settings(settings, **overrides)
    total = 0
    with connect(s) as conn:
        _migrate_once(conn)
        for coll in list_collections(conn):
            if s.collection and coll.name != s.collection:
                continue
            resolved = (
                [str(Path(p).resolve()) if not p.startswith("s3://") else p for p in paths] if paths else None
            )
            total += _retry(conn, coll.id, resolved)
    return total


def dry_run(
    roots: Sequence[str | Path], settings: Settings | None = None, **overrides: Any
) -> dict[str, Any]:
    """What the next run would do, without loading a model, calling a service or writing anything:
    files new/changed/unchanged/pending/still failed/deleted, rows new/changed/deleted, chunks to
    write and reused, texts and tokens to embed, estimated cost and time (see ``dbembed.run.plan``)."""
    from dbembed.run.plan import plan_run

    return plan_run(roots, get_settings(settings, **overrides))
