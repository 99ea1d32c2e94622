"""Stream a table's rows in pages with keyset pagination (bounded memory, short reads).

Each page is one ``SELECT ... WHERE key > last ORDER BY key LIMIT n`` that is
read to the end (or closed) before any row is handed out, so no SQLite read
lock is held while the caller embeds; ``fetchall`` never runs over a whole
table.  Keyset pages stay correct when a writer inserts or deletes rows between
pages (``OFFSET`` would skip or repeat rows) and cost O(page) each.

Keys: the rowid for ordinary tables, the primary-key values (as a JSON list)
for WITHOUT ROWID tables, and a content hash for views, which have no key.
Primary-key keys are injective: text that is not valid UTF-8 is ``{"text_bytes": hex}`` (read and
sought by its exact bytes, never by its lossy decoding), and a blob is its hex string, or
``{"blob": hex}`` in a column that also holds text (so that it cannot equal a text key).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from dbembed.read.introspect import TableInfo, quote_ident, template_fields

MAX_PAGE_BYTES = 64 * 1024 * 1024  # a page also ends early once its values reach this size
FETCH_BATCH = 256  # rows per fetchmany() inside one page
# Longer primary-key keys (JSON) are stored as "#" + a BLAKE2b digest: PostgreSQL's b-tree index
# entries hold at most ~2700 bytes.  Unique and stable, but not reversible.
MAX_KEY_CHARS = 512


@dataclass
class Row:
    # rowid as str; JSON list of PK values (WITHOUT ROWID; NUL and controls escaped as \u0000, so keys
    # stay unique and reversible; bad UTF-8 and blobs tagged, see the module docstring; "#<digest>"
    # past MAX_KEY_CHARS); a stable hash of the values (views)
    key: str
    values: dict[str, Any]


def _jsonable(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


def _key_value(value: Any, raw: bytes | None, tag_blob: bool) -> Any:
    """One primary-key value as JSON: ``raw`` is a text value's exact bytes (None for other types)."""
    if isinstance(value, bytes):
        return {"blob": value.hex()} if tag_blob else value.hex()
    if raw is not None and "\ufffd" in value:  # decoded with replacement, or a real U+FFFD
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"text_bytes": raw.hex()}
    return value


def _seek_value(value: Any, raw: bytes | None) -> tuple[Any, ...]:
    """Parameters of one ``CASE ? WHEN 1 THEN CAST(? AS TEXT) ELSE ? END``: bad text by its bytes."""
    if raw is not None and "\ufffd" in value:
        return (1, raw, None)
    return (0, None, value)


def _approx_size(values: tuple[Any, ...]) -> int:
    return sum(len(v) if isinstance(v, str | bytes) else 8 for v in values)


def value_columns(table: TableInfo) -> list[str]:
    """Columns a Row carries: keys, text columns and template fields (all columns for views)."""
    names = [c.name for c in table.columns]
    if table.kind == "view":
        return names
    folded = {
        n.casefold() for n in (*table.key_columns, *table.text_columns, *template_fields(table.template))
    }
    return [n for n in names if n.casefold() in folded]


def rowid_alias(table: TableInfo) -> str | None:
    """A name that reaches the real rowid (a column may shadow ``rowid``; then try ``_rowid_``/``oid``)."""
    taken = {c.name.casefold() for c in table.columns}
    for alias in ("rowid", "_rowid_", "oid"):
        if alias not in taken:
            return alias
    integer_pk = [c for c in table.columns if c.pk_index > 0]
    if len(integer_pk) == 1 and integer_pk[0].decl_type.upper() == "INTEGER":
        return quote_ident(integer_pk[0].name)  # INTEGER PRIMARY KEY *is* the rowid
    return None


class RowReader:
    """Pages through one table; call ``next_page(conn)`` until ``done``.

    The position survives a change of connection (the source switching to a
    snapshot mid-table): the next page simply continues after the last key.
    """

    def __init__(self, table: TableInfo, page_size: int, max_page_bytes: int = MAX_PAGE_BYTES) -> None:
        self.table = table
        self.page_size = max(1, int(page_size))
        self.max_page_bytes = max_page_bytes
        self.done = False
        self._cols = value_columns(table)
        self._after: tuple[Any, ...] | None = None  # last key values read
        self._offset = 0  # views (no key to seek on)
        self._seen: set[bytes] = set()  # view row hashes, to tell identical rows apart
        self._tag_blobs: tuple[bool, ...] | None = None  # per key column: holds both blobs and text
        col_sql = ", ".join(quote_ident(c) for c in self._cols) or "NULL"
        source = quote_ident(table.name)
        alias = None if table.without_rowid or table.kind == "view" else rowid_alias(table)
        if table.without_rowid and table.key_columns:
            self.mode = "pk"
            keys = [quote_ident(k) for k in table.key_columns]
            order = ", ".join(keys)
            seek = ["CASE ? WHEN 1 THEN CAST(? AS TEXT) ELSE ? END" for _ in keys]
            left = keys[0] if len(keys) == 1 else f"({order})"
            right = seek[0] if len(keys) == 1 else "(" + ", ".join(seek) + ")"
            # Each key, then its exact bytes when it is text (the text factory decodes lossily).
            key_sql = ", ".join(f"{k}, CASE WHEN typeof({k}) = 'text' THEN CAST({k} AS BLOB) END" for k in keys)
            self._first = f"SELECT {key_sql}, {col_sql} FROM {source} ORDER BY {order} LIMIT ?"
            self._next = (
                f"SELECT {key_sql}, {col_sql} FROM {source} WHERE {left} > {right} ORDER BY {order} LIMIT ?"
            )
            self._nkeys = 2 * len(keys)
        elif alias is not None:
            self.mode = "rowid"
            self._first = f"SELECT {alias}, {col_sql} FROM {source} ORDER BY {alias} LIMIT ?"
            self._next = f"SELECT {alias}, {col_sql} FROM {source} WHERE {alias} > ? ORDER BY {alias} LIMIT ?"
            self._nkeys = 1
        else:  # views, and the odd table whose columns hide every rowid alias
            self.mode = "offset"
            all_cols = ", ".join(quote_ident(c.name) for c in table.columns) or "NULL"
            self._cols = [c.name for c in table.columns]
            self._first = self._next = f"SELECT {all_cols} FROM {source} LIMIT ? OFFSET ?"
            self._nkeys = 0

    def _params(self, limit: int) -> tuple[Any, ...]:
        if self.mode == "offset":
            return (limit, self._offset)
        if self._after is None:
            return (limit,)
        if self.mode == "pk":
            pairs = zip(self._after[0::2], self._after[1::2], strict=True)
            return (*(p for value, raw in pairs for p in _seek_value(value, raw)), limit)
        return (*self._after, limit)

    def _mixed_columns(self, conn: sqlite3.Connection) -> tuple[bool, ...]:
        """Per key column: whether it holds blobs and text both (then blob keys are tagged)."""
        source = quote_ident(self.table.name)
        out = []
        for i, name in enumerate(self.table.key_columns):
            k = quote_ident(name)
            if i == 0:  # blobs sort after every other value: the key's index answers at once
                top = conn.execute(f"SELECT typeof({k}) FROM {source} ORDER BY {k} DESC LIMIT 1").fetchone()
                if not top or top[0] != "blob":
                    out.append(False)
                    continue
            sql = f"SELECT EXISTS(SELECT 1 FROM {source} WHERE typeof({k}) = ?)"
            out.append(all(conn.execute(sql, (kind,)).fetchone()[0] for kind in ("blob", "text")))
        return tuple(out)

    def _key(self, raw: tuple[Any, ...]) -> str:
        if self.mode == "rowid":
            return str(raw[0])
        if self.mode == "pk":
            tags = self._tag_blobs or ()
            parts = [_key_value(raw[2 * i], raw[2 * i + 1], tag) for i, tag in enumerate(tags)]
            key = json.dumps(parts, ensure_ascii=False)
            if len(key) > MAX_KEY_CHARS:  # too long for the store's unique index: a stable digest
                return "#" + hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()
            return key
        blob = json.dumps([_jsonable(v) for v in raw], ensure_ascii=False, default=str).encode(
            "utf-8", "replace"
        )
        digest = hashlib.blake2b(blob, digest_size=16).digest()
        n = 0
        while digest in self._seen:  # identical rows in a view: "<hash>", "<hash>#1", ...
            n += 1
            digest = hashlib.blake2b(blob + b"#%d" % n, digest_size=16).digest()
        self._seen.add(digest)
        return digest.hex()

    def next_page(self, conn: sqlite3.Connection) -> list[Row]:
        """Read up to ``page_size`` rows after the last one; sets ``done`` at the end of the table."""
        if self.done:
            return []
        if self.mode == "pk" and self._tag_blobs is None:
            self._tag_blobs = self._mixed_columns(conn)
        sql = self._first if self._after is None and self.mode != "offset" else self._next
        cur = conn.execute(sql, self._params(self.page_size))
        rows: list[Row] = []
        size = 0
        full = False
        try:
            while not full:
                batch = cur.fetchmany(FETCH_BATCH)
                if not batch:
                    break
                for raw in batch:
                    values = dict(zip(self._cols, raw[self._nkeys :], strict=True))
                    rows.append(Row(self._key(raw), values))
                    size += _approx_size(raw)
                    # A page ends at page_size rows, or early once its values reach max_page_bytes.
                    if len(rows) >= self.page_size or size >= self.max_page_bytes:
                        full = True
                        break
                if self.mode != "offset":
                    self._after = tuple(raw[: self._nkeys])
        finally:
            cur.close()  # resets the statement: the read lock goes before rows are handed out
        self._offset += len(rows)
        if not full:
            self.done = True
        return rows
