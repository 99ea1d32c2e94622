"""dbembed: turn piles of SQLite data (and chat history) into a pgvector semantic search index.

Public API (imported lazily so that ``import dbembed`` loads no model and starts no server)::

    import dbembed
    dbembed.index(["/mnt/sqlite-load-test"])            # one run, returns a RunSummary
    hits = dbembed.search("refund for a damaged order", k=5)
    page = dbembed.files(status="failed")               # per-file listing, one page
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "index", "search", "files", "status", "dry_run", "load_settings"]


def __getattr__(name: str) -> Any:
    if name == "load_settings":
        from dbembed.config import load_settings

        return load_settings
    if name in ("index", "search", "files", "status", "dry_run", "retry_failed"):
        from dbembed import api_lib

        return getattr(api_lib, name)
    raise AttributeError(f"module 'dbembed' has no attribute {name!r}")
