"""dbembed: turn piles of SQLite data (and chat history) into a pgvector semantic search index.

The public API is the service object, ``dbembed.service.Dbembed``; the functions here are thin
conveniences over it (imported lazily, so ``import dbembed`` loads no model and starts no server)::

    import dbembed
    dbembed.index(["/mnt/sqlite-load-test"])            # one run, returns a RunSummary
    hits = dbembed.search("refund for a damaged order", k=5)
    page = dbembed.files(status="failed")               # per-file listing, one page (a FilePage)

Each takes ``settings=`` (a ``dbembed.config.Settings``) and keyword overrides of its fields
(``database_url=``, ``settle_s=``...), applied on top of env vars and the config file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbembed.config import Settings
    from dbembed.run.index import RunSummary
    from dbembed.run.plan import RunPlan
    from dbembed.service import Dbembed, FilePage, Status
    from dbembed.store.search import Hit

__version__ = "0.1.0"

__all__ = [
    "__version__", "Dbembed", "index", "search", "files", "status", "dry_run", "retry_failed", "load_settings",
]  # fmt: skip


def _service(settings: Settings | None, overrides: dict[str, Any]) -> Dbembed:
    from dbembed.config import load_settings
    from dbembed.service import Dbembed, override

    overrides = {k: v for k, v in overrides.items() if v is not None}
    if settings is None:
        return Dbembed(load_settings(**overrides))
    return Dbembed(override(settings, overrides) if overrides else settings)


def index(roots: Sequence[str | Path], settings: Settings | None = None, **overrides: Any) -> RunSummary:
    """``Dbembed(settings).index(roots)``; callbacks ``on_file``, ``on_start``, ``on_estimate`` and
    ``on_progress`` are passed through, any other keyword overrides a setting."""
    callbacks = {k: overrides.pop(k) for k in ("on_file", "on_start", "on_estimate", "on_progress") if k in overrides}
    return _service(settings, overrides).index(roots, **callbacks)


def search(query: str, k: int = 10, *, file: str | None = None, table: str | None = None,
           settings: Settings | None = None, exact: bool = False, mode: str | None = None,
           **overrides: Any) -> list[Hit]:  # fmt: skip
    """``Dbembed(settings).search(query, k, ...)``."""
    return _service(settings, overrides).search(query, k, file=file, table=table, exact=exact, mode=mode)


def status(settings: Settings | None = None, *, runs: int = 5, failures: int = 20, **overrides: Any) -> Status:
    """``Dbembed(settings).status(...)``."""
    return _service(settings, overrides).status(runs=runs, failures=failures)


_FILE_OPTIONS = ("status", "glob", "since", "sort", "descending", "limit", "cursor", "rejected", "with_rejections")


def files(settings: Settings | None = None, **options: Any) -> FilePage:
    """``Dbembed(settings).files(status=, glob=, since=, sort=, descending=, limit=, cursor=, rejected=,
    with_rejections=)``; any other keyword overrides a setting."""
    listing = {k: options.pop(k) for k in _FILE_OPTIONS if k in options}
    return _service(settings, options).files(**listing)


def dry_run(roots: Sequence[str | Path], settings: Settings | None = None, **overrides: Any) -> RunPlan:
    """``Dbembed(settings).dry_run(roots)``."""
    return _service(settings, overrides).dry_run(roots)


def retry_failed(settings: Settings | None = None, paths: Sequence[str] | None = None, **overrides: Any) -> int:
    """``Dbembed(settings).retry_failed(paths)``."""
    return _service(settings, overrides).retry_failed(paths)


def __getattr__(name: str) -> Any:
    if name == "load_settings":
        from dbembed.config import load_settings

        return load_settings
    if name == "Dbembed":
        from dbembed.service import Dbembed

        return Dbembed
    raise AttributeError(f"module 'dbembed' has no attribute {name!r}")
