"""Read SQLite files safely: read-only, snapshots when needed, introspection, paged rows."""

from dbembed.read.introspect import Column, TableInfo, quote_ident
from dbembed.read.rows import Row
from dbembed.read.source import SqliteSource

__all__ = ["Column", "Row", "SqliteSource", "TableInfo", "quote_ident"]
