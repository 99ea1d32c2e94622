"""The service object every surface calls (CLI, HTTP API, Lambda handler, scheduler) and the
public Python API::

    from dbembed.service import Dbembed

    db = Dbembed()                                   # settings from env vars / dbembed.toml
    summary = db.index(["/mnt/sqlite-load-test"], settle_s=0)
    for hit in db.search("refund for a damaged order", k=5):
        print(hit.score, hit.path, hit.table, hit.row_key, hit.text)

``Dbembed(settings=None, *, provider=None)`` owns how the index is reached (one ready connection
per call from ``dbembed.store.connection.open_connection``, or a pool with ``pooled=True``) and
the embedding providers (loaded once per model and runtime, shared by every ``Dbembed`` of the
process unless it is given its own ``ProviderCache``).  ``provider=`` is the public seam for
tests and embedders: that provider does every embedding of this service.

Thread safety: one ``Dbembed`` may be shared by the threads of a server.  Its settings are not
changed after construction; the provider cache loads each provider once under a lock (providers
serialize their own encode calls); each call takes its own connection, from the pool when
pooled (the pool is opened once, under a lock).  Connections never cross threads.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbembed.config import Settings, load_settings
from dbembed.errors import UsageError

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from dbembed.chat import Actor, ChatStore
    from dbembed.embed.base import EmbeddingProvider
    from dbembed.generate import GenerateReport
    from dbembed.run.index import RunSummary
    from dbembed.run.plan import RunPlan
    from dbembed.run.schedule import Outcome
    from dbembed.store.search import Hit
    from dbembed.store.status import CollectionStatus, RunRecord

__all__ = ["Dbembed", "FilePage", "ProviderCache", "Status", "default_providers", "parse_since"]

# Runtimes whose vectors are the reference ones: providers for them share one cache entry.
_REFERENCE_RUNTIMES = {("auto", "auto"), ("torch", "auto"), ("torch", "fp32"), ("auto", "fp32")}


class ProviderCache:
    """Embedding providers by (model spec, device, dimensions[, backend, precision]); each is
    loaded once (a local transformer takes seconds).  Thread-safe."""

    def __init__(self) -> None:
        self._providers: dict[tuple[Any, ...], EmbeddingProvider] = {}
        self._lock = threading.RLock()

    @staticmethod
    def key(settings: Settings | None, spec: str | None = None) -> tuple[Any, ...]:
        if settings is None:
            return (spec, None, None)
        key: tuple[Any, ...] = (spec or settings.model, settings.device, settings.dimensions)
        if (settings.backend, settings.precision) not in _REFERENCE_RUNTIMES:
            key += (settings.backend, settings.precision)
        return key

    def get(self, settings: Settings, spec: str | None = None) -> EmbeddingProvider:
        """The provider for ``spec`` (default ``settings.model``), loaded on first use."""
        from dbembed.embed.registry import get_provider

        key = self.key(settings, spec)
        with self._lock:
            if key not in self._providers:
                self._providers[key] = get_provider(settings, spec)
            return self._providers[key]

    def put(self, provider: EmbeddingProvider, settings: Settings | None = None, spec: str | None = None) -> None:
        """Serve ``provider`` for ``spec`` (default its own ``model_id``) under ``settings``' device,
        dimensions and runtime (default: none given, the reference runtime)."""
        with self._lock:
            self._providers[self.key(settings, spec or provider.model_id)] = provider

    def clear(self) -> None:
        with self._lock:
            self._providers.clear()

    def __len__(self) -> int:
        return len(self._providers)


default_providers = ProviderCache()  # the process-wide cache every Dbembed uses unless given its own


@dataclass(frozen=True)
class Status:
    """``dbembed status``: one ``CollectionStatus`` per collection (only ``settings.collection``
    when set)."""

    collections: list[CollectionStatus]

    def as_dict(self) -> dict[str, Any]:
        return {"collections": [c.as_dict() for c in self.collections]}


@dataclass(frozen=True)
class FilePage:
    """One page of the per-file listing: ``items`` (``dbembed.store.files.COLUMNS`` as keys, plus
    ``rejections`` when asked for), ``next_cursor`` (None on the last page) and ``counts`` by status
    over every file matching the filters."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    counts: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor, "counts": self.counts}


def parse_since(text: str | datetime | None) -> datetime | None:
    """``--since``: an ISO 8601 date or time (UTC unless it names a zone), or an age such as
    ``90s``, ``15m``, ``2h``, ``7d``.  Raises ``UsageError`` naming the value otherwise."""
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


def override(settings: Settings, changes: dict[str, Any]) -> Settings:
    """A copy of ``settings`` with ``changes`` (flat names: ``settle_s``, ``model``...) applied.
    Raises ``ConfigError`` for a name the settings do not have."""
    from dbembed.errors import ConfigError

    copy = settings.model_copy(deep=True)
    for name, value in changes.items():
        try:
            setattr(copy, name, value)
        except (AttributeError, ValueError) as exc:
            raise ConfigError(f"unknown or invalid setting {name}={value!r}: {exc}") from None
    return copy


class Dbembed:
    """The file index and chat memory behind one set of settings (see the module docstring).

    ``settings``: default ``load_settings()`` (env vars ``DBEMBED_*``, then ``dbembed.toml``).
    ``provider``: use this embedding provider for everything (tests, custom providers).
    ``providers``: the provider cache (default: the process-wide ``default_providers``).
    ``pooled``: take connections from one pool (``settings.api_db_pool_size``) instead of opening
    one per call; for servers.  Close a pooled service with ``close()`` or ``with``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        provider: EmbeddingProvider | None = None,
        providers: ProviderCache | None = None,
        pooled: bool = False,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.providers = providers if providers is not None else default_providers
        self._provider = provider
        self._pooled = pooled
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()

    # -- plumbing -----------------------------------------------------------------------------
    def with_settings(self, **overrides: Any) -> Dbembed:
        """A service on the same providers with these settings changed (None values are ignored).
        Raises ``ConfigError`` for a value the settings refuse."""
        changed = {k: v for k, v in overrides.items() if v is not None}
        if not changed:
            return self
        return Dbembed(override(self.settings, changed), provider=self._provider, providers=self.providers)

    def use_provider(self, provider: EmbeddingProvider) -> None:
        """Use ``provider`` for every embedding of this service from now on."""
        self._provider = provider

    def provider_for(self, settings: Settings | None = None, spec: str | None = None) -> EmbeddingProvider:
        """The embedding provider for ``spec`` (default the settings' model), loaded once."""
        if self._provider is not None:
            return self._provider
        return self.providers.get(settings or self.settings, spec)

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A ready connection to the index for one call (migrated, pgvector types registered):
        from the pool when pooled, else opened now and closed afterwards.  Raises
        ``DatabaseUnavailable`` when the server cannot be reached."""
        from dbembed.store.connection import open_connection, open_pool
        from dbembed.store.dataapi import is_data_api_url

        if not self._pooled or is_data_api_url(self.settings.database_url):
            with open_connection(self.settings) as conn:
                yield conn
            return
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = open_pool(self.settings)
        with self._pool.connection() as conn:
            yield conn

    def close(self) -> None:
        """Close the pool (if any); the service opens a new one when used again."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> Dbembed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the file index -----------------------------------------------------------------------
    def index(
        self,
        roots: Sequence[str | Path],
        *,
        on_file: Callable[[Any], None] | None = None,
        on_start: Callable[[int], None] | None = None,
        on_estimate: Callable[[dict[str, int], float | None], None] | None = None,
        on_progress: Callable[[str, int, int], None] | None = None,
    ) -> RunSummary:
        """Find, read, embed and store every SQLite file under ``roots``; incremental and resumable.

        Callbacks (all on the calling thread): ``on_start(files queued)``; ``on_estimate(rows per
        queued file, earlier runs' rows/s or None)``; ``on_progress(path, rows read, chunks
        written)`` after each embed+load step inside a file; ``on_file(FileResult)`` when a file is
        done.  Raises ``UsageError`` for a bad root or an RDS Data API URL, ``DatabaseUnavailable``
        when the index cannot be reached; file faults are recorded, not raised."""
        from dbembed.run.index import index as run_index

        return run_index(
            roots, self.settings, provider=self._provider, provider_factory=self.provider_for, on_file=on_file,
            on_start=on_start, on_estimate=on_estimate, on_progress=on_progress,
        )  # fmt: skip

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        file: str | None = None,
        table: str | None = None,
        exact: bool = False,
        mode: str | None = None,
    ) -> list[Hit]:
        """Top-k chunks for ``query``: ``mode`` ``"hybrid"`` (default, ``settings.search_mode``),
        ``"vector"`` (embedded with the collection's own model) or ``"lexical"`` (tokens only; the
        model is not loaded).  ``file`` is a path glob, ``table`` a table name (case-insensitive).
        Raises ``UsageError`` for an empty query, k outside 1..1000 or an unknown mode,
        ``NotFound`` when nothing is indexed, ``CollectionMismatch`` for another model's index."""
        from dbembed.store.collections import check_compatible
        from dbembed.store.search import MODES, search_chunks
        from dbembed.text.hygiene import clean_text, is_blank

        query = clean_text(query or "")  # the same hygiene (NFKC...) as the indexed documents
        if is_blank(query):
            raise UsageError("the search query is empty")
        if k < 1 or k > 1000:
            raise UsageError(f"k must be between 1 and 1000 (got {k})")
        s = self.settings
        mode = mode or s.search_mode
        if mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
        with self.connection() as conn:
            coll = self._search_collection(conn)
            vec = None
            if mode != "lexical":
                provider = self.provider_for(s, coll.model)
                if provider.dimensions != coll.dimensions:  # e.g. Titan v2 indexed with --dimensions 512
                    provider = self.provider_for(s.model_copy(update={"dimensions": coll.dimensions}), coll.model)
                check_compatible(coll, provider.model_id, provider.dimensions)
                vec = provider.embed_query(query)
            return search_chunks(
                conn, coll, vec, k, query=query, mode=mode, file=file, table=table,
                ef_search=s.hnsw_ef_search, exact=exact,
            )  # fmt: skip

    def _search_collection(self, conn: psycopg.Connection) -> Any:
        """The named collection, else the settings' model's, else the only one there is."""
        from dbembed.embed.registry import split_spec
        from dbembed.store.collections import default_collection_name, list_collections, require_collection

        s = self.settings
        if s.collection:
            return require_collection(conn, s.collection)
        model = s.model if ":" in s.model else "local:" + split_spec(s.model)[1]
        name = default_collection_name(model, s.dimensions)
        existing = list_collections(conn)
        if not any(c.name == name for c in existing) and len(existing) == 1:
            name = existing[0].name  # one index only: search it, with its own model
        return require_collection(conn, name)

    def _collections(self, conn: psycopg.Connection) -> list[Any]:
        from dbembed.store.collections import list_collections

        name = self.settings.collection
        return [c for c in list_collections(conn) if not name or c.name == name]

    def status(self, *, runs: int = 5, failures: int = 20) -> Status:
        """Per collection: file counts by status, leased work, the ``runs`` newest runs (a run whose
        worker died shows as ``abandoned``), the ``failures`` newest failures with reasons, and what
        was rejected below the file level.  Raises ``DatabaseUnavailable``."""
        from dbembed.run.index import abandoned_after_s
        from dbembed.store.status import collection_status

        after = abandoned_after_s(self.settings)
        with self.connection() as conn:
            return Status([
                collection_status(conn, c, runs=runs, failures=failures, abandoned_after_s=after)
                for c in self._collections(conn)
            ])  # fmt: skip

    def runs(self, limit: int = 20) -> list[RunRecord]:
        """The ``limit`` newest runs (of ``settings.collection`` when set), newest first."""
        from dbembed.run.index import abandoned_after_s
        from dbembed.store.collections import require_collection
        from dbembed.store.runs import recent_runs
        from dbembed.store.status import RunRecord

        with self.connection() as conn:
            cid = require_collection(conn, self.settings.collection).id if self.settings.collection else None
            rows = recent_runs(conn, cid, limit, abandoned_after_s(self.settings))
        return [RunRecord.from_row(r) for r in rows]

    def files(
        self,
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
    ) -> FilePage:
        """One page of the per-file listing (``dbembed files``, ``GET /v1/files``), keyset-paged:
        pass ``next_cursor`` back as ``cursor``.  ``rejected`` keeps only files with rejections;
        ``with_rejections`` lists each one (``{level, table, row_key, chunk_index, reason}``).
        Raises ``UsageError`` for an unknown status/sort, a bad ``since`` or cursor."""
        from dbembed.store.collections import require_collection
        from dbembed.store.files import FileQuery, count_files, list_files, rejections

        when = parse_since(since)
        with self.connection() as conn:
            cid = require_collection(conn, self.settings.collection).id if self.settings.collection else None
            q = FileQuery(
                collection_id=cid, status=status, glob=glob, since=when, sort=sort,
                descending=descending, limit=limit, rejected=rejected,
            )  # fmt: skip
            items, nxt = list_files(conn, q, cursor)
            if with_rejections:
                found = rejections(conn, [f["id"] for f in items])
                for f in items:
                    f["rejections"] = found.get(f["id"], [])
            return FilePage(items, nxt, count_files(conn, q))

    def retry_failed(self, paths: Sequence[str] | None = None) -> int:
        """Queue failed files again (all, or the given paths); the next run indexes them.
        Returns how many were queued."""
        from dbembed.store.sources import retry_failed

        resolved = [p if p.startswith("s3://") else str(Path(p).resolve()) for p in paths] if paths else None
        with self.connection() as conn:
            return sum(retry_failed(conn, c.id, resolved) for c in self._collections(conn))

    def dry_run(self, roots: Sequence[str | Path]) -> RunPlan:
        """What the next ``index(roots)`` would do, without loading a model, calling a service or
        writing anything (see ``dbembed.run.plan``)."""
        from dbembed.run.plan import plan_run

        return plan_run(roots, self.settings)

    # -- scheduler ----------------------------------------------------------------------------
    def run_locked(self, roots: Sequence[str]) -> Outcome:
        """One ``index(roots)`` unless another scheduler's run holds the lock (``run.schedule``)."""
        from dbembed.run.schedule import locked_run

        return locked_run(roots, self.settings, self._scheduled_run)

    def schedule(self, roots: Sequence[str], cron: str, *, max_runs: int | None = None,
                 stop: threading.Event | None = None) -> int:  # fmt: skip
        """Run ``index(roots)`` on a UTC cron schedule until ``stop`` (or ``max_runs`` ticks); never
        two runs at once across schedulers.  Returns the last run's exit code."""
        from dbembed.run.schedule import run_schedule

        return run_schedule(roots, self.settings, cron, run_fn=self._scheduled_run, max_runs=max_runs, stop=stop)

    def _scheduled_run(self, roots: Sequence[str], settings: Settings) -> RunSummary:
        return Dbembed(settings, provider=self._provider, providers=self.providers).index(roots)

    @staticmethod
    def check_cron(expr: str) -> None:
        """Raise ``UsageError`` with the reason unless ``expr`` is a valid 5-field cron expression."""
        from dbembed.run.schedule import parse_cron

        parse_cron(expr)

    # -- test data ----------------------------------------------------------------------------
    @staticmethod
    def generate(out_dir: Path, **options: Any) -> GenerateReport:
        """Write realistic SQLite load-test files under ``out_dir`` (``dbembed.generate.generate``)."""
        from dbembed.generate import generate

        return generate(out_dir, **options)

    # -- chat history and memory --------------------------------------------------------------
    @contextlib.contextmanager
    def chat_store(self) -> Iterator[ChatStore]:
        """A ``ChatStore`` on a connection of its own (closed afterwards)."""
        from dbembed.chat import open_store

        with open_store(self.settings) as store:
            yield store

    @staticmethod
    def actor(user: str, tenant: str = "default") -> Actor:
        """Who a chat operation acts for."""
        from dbembed.chat import Actor

        return Actor(user, tenant)

    def add_turn(self, actor: Actor, chat_id: int, user_input: str, bot_response: str = "", **kw: Any) -> Any:
        """Store one turn of a chat (``theme=``, ``turn_no=``); returns the ``Turn``."""
        with self.chat_store() as store:
            return store.add_turn(actor, chat_id, user_input, bot_response, **kw)

    def list_chats(self, actor: Actor, **kw: Any) -> Any:
        """A page of the user's chats, most recently active first (``limit``, ``cursor``, ``theme``)."""
        with self.chat_store() as store:
            return store.list_chats(actor, **kw)

    def list_turns(self, actor: Actor, chat_id: int, **kw: Any) -> Any:
        """A page of a chat's turns, newest first (``limit``, ``cursor``)."""
        with self.chat_store() as store:
            return store.list_turns(actor, chat_id, **kw)

    def sync_memory(self, **kw: Any) -> Any:
        """Embed every turn (or chat summary) not yet in memory (``max_batches``, ``batch_size``)."""
        with self.chat_store() as store:
            return store.sync(**kw)

    def search_memory(self, actor: Actor, query: str, **kw: Any) -> Any:
        """Search one user's memory (``k``, ``theme``, ``since``, ``until``, ``mode``)."""
        with self.chat_store() as store:
            return store.search(actor, query, **kw)

    def delete_user(self, actor: Actor) -> Any:
        """Delete every turn and memory of a user; returns the counts deleted."""
        with self.chat_store() as store:
            return store.delete_user(actor)

    def retention(self, days: float, *, include_history: bool = False) -> Any:
        """Expire memory (and with ``include_history`` turns) older than ``days``; returns counts."""
        with self.chat_store() as store:
            return store.retention(days, include_history=include_history)
