"""``dbembed run --dry-run``: what the next run will do, without a model, a network call or a write.

It makes the same decisions a run makes (``dbembed.store.sources.upsert_discovered``, the
``--settle`` check, ``--verify``, ``--force``, changed document settings), reads only the files
a run would read, diffs their rows against the row hashes in the index, chunks new and changed
rows with the provider's own chunk sizing (``dbembed.embed.offline``), drops chunk texts the
index already holds a vector for (a run reuses them), and counts and prices only what is left.
The time estimate comes from the embedding throughput that earlier runs recorded on this
machine with this backend (``runs.stats.machine`` / ``backend``); without one it says so.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from dbembed.config import Settings
    from dbembed.discover import FoundFile
    from dbembed.embed.offline import OfflineProfile
    from dbembed.store.collections import Collection
    from dbembed.store.plan import KnownSource
    from dbembed.text.chunk import Chunker

HASH_BATCH = 5000


@dataclass(frozen=True)
class Unreadable:
    """A file a run would fail on (not SQLite, truncated...), with the reason."""

    file: str
    error: str


@dataclass(frozen=True)
class RunPlan:
    """What the next run would do.  Files: found, and of them new, changed, unchanged, pending
    (changed within ``--settle``), still failed (unchanged since they failed), deleted (gone from
    the roots) and unreadable.  Rows read, new, changed, unchanged and deleted, and tables/rows a run
    would reject.  Chunks to write and to delete, distinct chunk texts, chunks whose vector the
    index already holds (``chunks_reused``), ``texts_to_embed`` and their ``tokens`` (counted as
    ``token_source`` says), the estimated cost in USD (None: no price known) and seconds in the
    model (None: no earlier run measured this machine and backend; ``estimate_basis`` says which),
    and how long planning took (``seconds``)."""

    files: int
    files_new: int
    files_changed: int
    files_unchanged: int
    files_pending: int
    files_still_failed: int
    files_deleted: int
    files_unreadable: int
    rows: int
    rows_new: int
    rows_changed: int
    rows_unchanged: int
    rows_deleted: int
    tables_rejected: int
    rows_rejected: int
    chunks: int
    chunks_deleted: int
    distinct_chunks: int
    chunks_reused: int
    texts_to_embed: int
    tokens: int
    token_source: str
    model: str
    collection: str | None
    estimated_cost_usd: float | None
    estimated_seconds: float | None
    estimate_basis: str
    unreadable: list[Unreadable] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def machine_key() -> str:
    """Which machine a run's throughput was measured on (host name and CPU count)."""
    return f"{platform.node()}/{os.cpu_count()}cpu"


def backend_key(settings: Settings, model_id: str) -> str:
    """Which backend embedded: the model id, the requested device (``auto`` unless --device) and,
    for local models, the requested inference runtime and precision (--backend, --precision)."""
    key = f"{model_id}@{settings.embed.device or 'auto'}"
    if model_id.startswith("local:"):
        key += f"/{settings.embed.backend}/{settings.embed.precision}"
    return key


def decide(k: KnownSource | None, f: FoundFile, cutoff: float, settings: Settings, read_fp: str) -> str:
    """new | changed | unchanged | still_failed | pending: what a run would do with this file."""
    if k is not None and not settings.run.force:
        if (
            k.status == "indexed"
            and k.size == f.size
            and k.mtime == f.mtime
            and k.meta.get("read_fp") == read_fp
            and not _verify_changed(k, f, settings)
        ):
            return "unchanged"
        if (
            k.status == "failed"
            and k.seen_size == f.size
            and k.seen_mtime == f.mtime
            and not k.meta.get("retryable")
        ):
            return "still_failed"
    if f.mtime > cutoff:
        return "pending"
    return "new" if k is None or k.size is None else "changed"


def _verify_changed(k: KnownSource, f: FoundFile, settings: Settings) -> bool:
    if not settings.sources.verify or f.path.startswith("s3://"):
        return False
    from dbembed.discover import file_hash

    try:
        return file_hash(Path(f.path)) != (k.content_hash or "")
    except OSError:
        return False


class Planner:
    def __init__(self, settings: Settings, profile: OfflineProfile, chunker: Chunker) -> None:
        self.settings, self.profile, self.chunker = settings, profile, chunker
        self.salt = f"{chunker.max_tokens}:{chunker.overlap}"
        self.distinct: dict[bytes, int] = {}  # content hash -> tokens, over every chunk to write
        self.n: dict[str, int] = dict.fromkeys(
            ("files", "files_new", "files_changed", "files_unchanged", "files_pending", "files_still_failed",
             "files_deleted", "files_unreadable", "rows", "rows_new", "rows_changed", "rows_unchanged",
             "rows_deleted", "tables_rejected", "rows_rejected", "chunks", "chunks_deleted"),
            0,
        )  # fmt: skip
        self.unreadable: list[Unreadable] = []

    def read(self, conn: psycopg.Connection, coll: Collection | None, f: FoundFile, k: KnownSource | None) -> None:
        """Read one file as a run would (``run.reading.changed_rows``) and diff its rows against
        the index."""
        from dbembed.discover import materialize
        from dbembed.read import SqliteSource
        from dbembed.run.embedder import content_hash
        from dbembed.run.reading import ReadState, changed_rows
        from dbembed.store.chunks import existing_row_hashes

        n = self.n
        existing: dict[tuple[str, str], bytes] = {}
        if coll is not None and k is not None and k.size is not None:
            with conn.transaction():
                existing = existing_row_hashes(conn, coll, k.id)
        state = ReadState()
        with materialize(f, self.settings.sources) as local, SqliteSource(Path(local), self.settings.sources) as src:
            tables = src.tables()
            for name, reason in sorted(src.rejected.items()):
                state.reject_table(name, reason, existing)
            for table in tables:
                rows = changed_rows(
                    src, table, self.salt, self.chunker, existing, state, self.settings.text.document_format
                )
                for _key, _hash, old, pieces in rows:
                    n["rows_new" if old is None else "rows_changed"] += 1
                    for piece in pieces:
                        n["chunks"] += 1
                        h = content_hash(piece)
                        if h not in self.distinct:
                            self.distinct[h] = self.profile.count_tokens(piece)
        n["rows"] += state.rows
        n["rows_unchanged"] += state.unchanged
        n["rows_deleted"] += len(existing)
        n["tables_rejected"] += state.counts.get("table", 0)
        n["rows_rejected"] += state.counts.get("row", 0)


def _with_collection_model(settings: Settings) -> Settings:
    """A named collection with no model named is planned with the model it records, as the run
    does (``run.target.existing_collection``); a fresh database is only read, never created."""
    from dbembed.embed.registry import expected_model_id
    from dbembed.store.collections import get_collection
    from dbembed.store.connection import connect
    from dbembed.store.plan import schema_exists

    if not settings.store.collection or {"model", "dimensions"} & settings.embed.model_fields_set:
        return settings
    with connect(settings, register_vector=False) as conn:
        coll = get_collection(conn, settings.store.collection) if schema_exists(conn) else None
    if coll is None or coll.model == expected_model_id(settings):
        return settings
    return settings.model_copy(update={"model": coll.model})


def plan_run(roots: Sequence[str | Path], settings: Settings) -> RunPlan:
    """What ``dbembed run ROOTS`` would do now; see the module docstring.  Raises ``UsageError``
    for a bad root, ``DatabaseUnavailable`` when the index cannot be reached."""
    from dbembed.discover import discover
    from dbembed.embed.offline import offline_profile
    from dbembed.errors import SourceError
    from dbembed.run.index import normalize_roots
    from dbembed.run.reading import read_fingerprint
    from dbembed.run.rescan import note_root
    from dbembed.run.target import model_source
    from dbembed.store.collections import check_requested, default_collection_name, get_collection
    from dbembed.store.connection import connect
    from dbembed.store.plan import known_hashes, known_sources, schema_exists, throughput_history
    from dbembed.text.chunk import make_chunker

    started = time.perf_counter()
    root_list = normalize_roots(roots)
    settings = _with_collection_model(settings)
    profile = offline_profile(settings)
    # The chunker a run would use with the loaded provider (same limits, same tokenizer).
    chunker = make_chunker(settings.text, profile.tokenizer(), profile.max_tokens, profile.max_chars)
    planner = Planner(settings, profile, chunker)
    n = planner.n
    with connect(settings, register_vector=False) as conn:
        coll = None
        indexed_before = schema_exists(conn)  # a fresh database stays untouched: nothing is created
        if indexed_before:
            dims = settings.embed.dimensions
            name = settings.store.collection or default_collection_name(profile.model_id, dims)
            coll = get_collection(conn, name)
            if coll is not None:  # the run would refuse another model's collection: so does its plan
                check_requested(coll, profile.model_id, dims, source=model_source(settings))
        known = known_sources(conn, coll.id, root_list) if coll is not None else {}
        cutoff, read_fp = time.time() - settings.sources.settle_s, read_fingerprint(settings)
        seen: set[str] = set()
        roots_seen: set[str] = set()
        for f in discover(root_list, settings.sources):
            if f.path in seen:
                continue
            seen.add(f.path)
            note_root(roots_seen, root_list, f.path)
            n["files"] += 1
            k = known.get(f.path)
            what = decide(k, f, cutoff, settings, read_fp)
            n[f"files_{what}"] += 1
            if what in ("new", "changed"):
                try:
                    planner.read(conn, coll, f, k)
                except SourceError as exc:
                    n["files_unreadable"] += 1
                    planner.unreadable.append(Unreadable(f.path, str(exc).splitlines()[0]))
        # a root where nothing matched keeps its files (as the run does) unless allow_empty_root
        kept_roots = () if settings.run.allow_empty_root else [r for r in root_list if r not in roots_seen]
        for path, k in known.items():
            if path not in seen and k.status != "missing" and not any(path.startswith(r) for r in kept_roots):
                n["files_deleted"] += 1
                n["rows_deleted"] += int(k.rows or 0)
                n["chunks_deleted"] += 0 if settings.run.keep_missing else int(k.chunks or 0)
        hashes = list(planner.distinct)
        reused: set[bytes] = set()
        if coll is not None:
            for i in range(0, len(hashes), HASH_BATCH):
                reused |= known_hashes(conn, coll, hashes[i : i + HASH_BATCH])
        history = (
            throughput_history(conn, machine_key(), backend_key(settings, profile.model_id)) if indexed_before else []
        )
    texts = len(hashes) - len(reused)
    tokens = sum(t for h, t in planner.distinct.items() if h not in reused)
    counters: dict[str, Any] = dict(n)  # the int fields of RunPlan, by name
    return RunPlan(
        **counters,
        distinct_chunks=len(hashes),
        chunks_reused=n["chunks"] - texts,
        texts_to_embed=texts,
        tokens=tokens,
        token_source=profile.token_source,
        model=profile.model_id,
        collection=coll.name if coll is not None else None,
        estimated_cost_usd=profile.estimate_cost(tokens),
        **estimate_seconds(texts, tokens, history),
        unreadable=planner.unreadable,
        seconds=round(time.perf_counter() - started, 3),
    )


def estimate_seconds(texts: int, tokens: int, history: list[dict[str, float]]) -> dict[str, Any]:
    """Embedding time for ``texts``/``tokens`` at the throughput of earlier runs (tokens/s when
    they counted tokens, else texts/s); ``estimated_seconds`` is None without history."""
    if not texts:
        return {"estimated_seconds": 0.0, "estimate_basis": "nothing to embed"}
    embed_s = sum(h["embed_s"] for h in history)
    if not history or embed_s <= 0:
        return {
            "estimated_seconds": None,
            "estimate_basis": "no earlier run on this machine with this backend recorded its throughput",
        }
    hist_tokens = sum(h["tokens"] for h in history)
    runs = f"{len(history)} earlier run{'s' if len(history) > 1 else ''} on this machine and backend"
    if hist_tokens > 0 and tokens > 0:
        rate = hist_tokens / embed_s
        return {"estimated_seconds": round(tokens / rate, 1), "estimate_basis": f"{rate:,.0f} tokens/s in the model ({runs})"}
    rate = sum(h["texts"] for h in history) / embed_s
    return {"estimated_seconds": round(texts / rate, 1), "estimate_basis": f"{rate:,.1f} texts/s in the model ({runs})"}
