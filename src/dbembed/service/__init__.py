"""The service object every surface calls (CLI, HTTP API, Lambda handler, scheduler) and the
public Python API::

    from dbembed.service import Dbembed

    db = Dbembed()                                   # settings from env vars / dbembed.toml
    summary = db.with_settings(settle_s=0).index(["/mnt/sqlite-load-test"])
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
import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbembed.config import Settings, load_settings
from dbembed.embed.provider_cache import ProviderCache, default_providers
from dbembed.errors import ConfigError, InvalidInput, NotFound, echo, in_range
from dbembed.generate import generate as generate_files
from dbembed.run.plan import plan_run
from dbembed.run.schedule import locked_run, parse_cron, run_schedule
from dbembed.service.chat import ChatOperations
from dbembed.store import sources as source_store
from dbembed.store.api_keys import ApiKey
from dbembed.store.collections import (
    check_compatible,
    check_requested,
    default_collection_name,
    describe_collections,
    list_collections,
    require_collection,
)
from dbembed.store.connection import open_connection, open_pool
from dbembed.store.dataapi_config import is_data_api_url
from dbembed.store.files import (
    FileItem,
    FilePage,
    FileQuery,
    FileRejection,
    count_files,
    list_files,
    parse_since,
    rejections,
)
from dbembed.store.paging import Page
from dbembed.store.runs import recent_runs
from dbembed.store.scope import Actor
from dbembed.store.status import RunRecord, Status, collection_status
from dbembed.text.inputs import check_text, clean_input

# Modules that load numpy or psycopg are imported by the methods that need them, so that the CLI
# (which imports this module) starts fast.
if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from dbembed.embed.base import EmbeddingProvider
    from dbembed.generate import GenerateReport
    from dbembed.run.index import RunSummary
    from dbembed.run.plan import RunPlan
    from dbembed.run.schedule import Outcome
    from dbembed.store.search import Hit

__all__ = ["Actor", "ApiKey", "Dbembed", "Page", "FileItem", "FilePage", "FileRejection", "ProviderCache", "Status", "default_providers", "parse_since"]

def override(settings: Settings, changes: dict[str, Any]) -> Settings:
    """A copy of ``settings`` with ``changes`` (flat names: ``settle_s``, ``model``...) applied.
    Raises ``ConfigError`` for a name the settings do not have."""
    copy = settings.model_copy(deep=True)
    for name, value in changes.items():
        try:
            setattr(copy, name, value)
        except (AttributeError, ValueError) as exc:
            raise ConfigError(f"unknown or invalid setting {name}={echo(value)}: {exc}") from None
    return copy


class Dbembed(ChatOperations):
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
        self._chat_cache: dict[str, Any] = {}  # chat's loaded provider and resolved memory tables

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
        collection: str | None = None,
        model: str | None = None,
    ) -> list[Hit]:
        """Top-k chunks for ``query``: ``mode`` ``"hybrid"`` (default, ``settings.search_mode``),
        ``"vector"`` (embedded with the collection's own model) or ``"lexical"`` (tokens only; the
        model is not loaded).  ``file`` is a path glob, ``table`` a table name (case-insensitive).
        Raises ``InvalidText`` for a query with no visible character, ``InvalidInput`` (its
        ``field`` the parameter at fault) for an over-long query (``max_text_chars``), a filter
        holding NUL or over 4096 characters, k outside 1..1000 or an unknown mode,
        ``NotFound`` when nothing is indexed or the named collection or model has no index,
        ``CollectionMismatch`` when the named model (or ``--dimensions``) is not the named collection's.
        ``collection`` and ``model`` (a model spec) override ``settings.collection`` / ``settings.model``
        for this call."""
        from dbembed.store.search import MODES, search_chunks
        _check_filters(file=file, table=table, collection=collection, model=model)
        # The same hygiene (NUL/controls removed, NFKC...) as the indexed documents, then the length limit.
        query = clean_input(query or "", "query", self.settings.max_text_chars, allow_empty=False)
        in_range("k", k, 1, 1000)
        s = self.settings
        mode = mode or s.search_mode
        if mode not in MODES:
            raise InvalidInput(f"mode: must be one of {', '.join(MODES)} (got {echo(mode)})", "mode")
        with self.connection() as conn:
            coll = self._search_collection(conn, collection, model)
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

    def _search_collection(self, conn: psycopg.Connection, collection: str | None, model: str | None) -> Any:
        """The collection named in this call (checked only against a model named in this call: a
        model from the configuration never overrules it), else the configured collection (checked
        against a configured model or dimensions: ``CollectionMismatch``), else the named or
        configured model's; only when nothing names a model or a collection, the only one there is.
        Nothing is loaded.  Raises ``NotFound`` naming what was asked for and listing the
        collections that exist; ``ConfigError`` for an unknown provider or a refused runtime."""
        from dbembed.embed.registry import expected_model_id
        from dbembed.run.target import check_runtime, model_source

        s = self.settings
        try:
            per_call = expected_model_id(s, model) if model else None
        except ConfigError as exc:  # no such provider: the request names a model that has no index
            raise NotFound(f"no index of model {echo(model)} ({exc}); indexed collections: {describe_collections(conn)}") from None
        if collection:
            coll = require_collection(conn, collection)
            check_requested(coll, per_call, None, source="`model`")
            return coll
        check_runtime(s, model)
        named = {"model", "dimensions"} & s.embed.model_fields_set
        spec = model or s.model
        wanted = per_call or (expected_model_id(s, spec) if "model" in named else None)
        dims = s.dimensions if "dimensions" in named else None
        if s.collection and not model:  # a per-call model means its own collection
            coll = require_collection(conn, s.collection)
            check_requested(coll, wanted, dims, source=model_source(s))
            return coll
        model_id = wanted or expected_model_id(s, spec)
        default = default_collection_name(model_id, s.dimensions)
        existing = list_collections(conn)
        for coll in existing:
            if coll.name == default:
                check_requested(coll, wanted, dims, source="`model`" if model else model_source(s))
                return coll
        if len(existing) == 1 and not named and not model:
            return existing[0]  # the user named nothing and there is one index only: search it
        asked = f"model {echo(spec)}" + (f" with {s.dimensions} dimensions" if s.dimensions else "")
        raise NotFound(f"no index of {asked} (collection {echo(default)} does not exist); indexed collections: {describe_collections(conn)}")

    def _collections(self, conn: psycopg.Connection) -> list[Any]:
        """Every collection, or only ``settings.collection`` (``NotFound`` when that one does not exist)."""
        name = self.settings.collection
        if name:
            return [require_collection(conn, name)]
        return list_collections(conn)

    def status(self, *, runs: int = 5, failures: int = 20) -> Status:
        """Per collection: file counts by status, leased work, the ``runs`` newest runs (a run whose
        worker died shows as ``abandoned``), the ``failures`` newest failures with reasons, and what
        was rejected below the file level.  Raises ``DatabaseUnavailable``."""
        from dbembed.run.index import abandoned_after_s
        after = abandoned_after_s(self.settings)
        in_range("runs", runs, 0, 10_000), in_range("failures", failures, 0, 10_000)
        with self.connection() as conn:
            return Status([
                collection_status(conn, c, runs=runs, failures=failures, abandoned_after_s=after)
                for c in self._collections(conn)
            ])  # fmt: skip

    def runs(self, limit: int = 20) -> list[RunRecord]:
        """The ``limit`` newest runs (of ``settings.collection`` when set), newest first."""
        from dbembed.run.index import abandoned_after_s
        in_range("limit", limit, 1, 10_000)
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
        collection: str | None = None,
    ) -> FilePage:
        """One page of the per-file listing (``dbembed files``, ``GET /v1/files``), keyset-paged:
        pass ``next_cursor`` back as ``cursor``.  ``rejected`` keeps only files with rejections;
        ``with_rejections`` lists each one (``{level, table, row_key, chunk_index, reason}``);
        ``collection`` (default ``settings.collection``, else all) names one collection; ``since`` is
        what ``parse_since`` takes (ISO 8601 date/time or an age: ``2h``).  Raises ``InvalidInput``
        (its ``field`` the parameter at fault) for an unknown status/sort, a bad ``since``, limit,
        filter, ``UsageError`` for a bad cursor, ``NotFound``
        for an unknown collection."""
        _check_filters(glob=glob, since=since if isinstance(since, str) else None, collection=collection)
        q = FileQuery(
            status=status, glob=glob, since=parse_since(since), sort=sort,
            descending=descending, limit=limit, rejected=rejected,
        )  # fmt: skip
        q.check()  # before connecting: a bad filter is refused without starting a database
        name = collection or self.settings.collection
        with self.connection() as conn:
            if name:
                q = dataclasses.replace(q, collection_id=require_collection(conn, name).id)
            items, nxt = list_files(conn, q, cursor)
            if with_rejections:
                found = rejections(conn, [f.id for f in items])
                items = [dataclasses.replace(f, rejections=tuple(found.get(f.id, ()))) for f in items]
            return FilePage(tuple(items), nxt, count_files(conn, q))

    def retry_failed(self, paths: Sequence[str] | None = None) -> int:
        """Queue failed files again (all, or the given paths); the next run indexes them.
        Returns how many were queued."""
        resolved = [p if p.startswith("s3://") else str(Path(p).resolve()) for p in paths] if paths else None
        with self.connection() as conn:
            return sum(source_store.retry_failed(conn, c.id, resolved) for c in self._collections(conn))

    def dry_run(self, roots: Sequence[str | Path]) -> RunPlan:
        """What the next ``index(roots)`` would do, without loading a model, calling a service or
        writing anything (see ``dbembed.run.plan``)."""
        return plan_run(roots, self.settings)

    # -- scheduler ----------------------------------------------------------------------------
    def run_locked(self, roots: Sequence[str]) -> Outcome:
        """One ``index(roots)`` unless another scheduler's run holds the lock (``run.schedule``)."""
        return locked_run(roots, self.settings, self._scheduled_run)

    def schedule(self, roots: Sequence[str], cron: str, *, max_runs: int | None = None,
                 stop: threading.Event | None = None) -> int:  # fmt: skip
        """Run ``index(roots)`` on a UTC cron schedule until ``stop`` (or ``max_runs`` ticks); never
        two runs at once across schedulers.  Returns the last run's exit code."""
        return run_schedule(roots, self.settings, cron, run_fn=self._scheduled_run, max_runs=max_runs, stop=stop)

    def _scheduled_run(self, roots: Sequence[str], settings: Settings) -> RunSummary:
        return Dbembed(settings, provider=self._provider, providers=self.providers).index(roots)

    @staticmethod
    def check_cron(expr: str) -> None:
        """Raise ``UsageError`` with the reason unless ``expr`` is a valid 5-field cron expression."""
        parse_cron(expr)

    # -- test data ----------------------------------------------------------------------------
    @staticmethod
    def generate(out_dir: Path, **options: Any) -> GenerateReport:
        """Write realistic SQLite load-test files under ``out_dir`` (``dbembed.generate.generate``)."""
        return generate_files(out_dir, **options)

    def collections(self) -> list[dict[str, Any]]:
        """Every collection: model, dimensions, files by status, rows, chunks and rejections."""
        from dbembed.store.files import collection_overview

        with self.connection() as conn:
            return collection_overview(conn)

    def runs_page(self, limit: int = 20, cursor: str | None = None) -> Page:
        """Runs of every collection, newest first, as dicts (counters, seconds, usage, ``chunks_per_s``);
        pass ``next_cursor`` back as ``cursor``.  Raises ``InvalidInput`` for a forged cursor."""
        from dbembed.run.index import abandoned_after_s
        from dbembed.store.runs import runs_page

        with self.connection() as conn:
            return runs_page(conn, limit, cursor, abandoned_after_s(self.settings))


def _check_filters(**values: str | None) -> None:
    """Refuse a filter PostgreSQL text cannot hold (NUL) or over 4096 characters (``InvalidInput``)."""
    for what, value in values.items():
        if value is not None:
            check_text(value, what, 4096)

