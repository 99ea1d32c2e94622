"""Which tables to read, their columns and keys, and which columns hold text worth embedding.

Files come from unknown applications, so nothing about names can be assumed:
every identifier is quoted (``Order Details``, ``a"b``), SQLite internals and
FTS/R*Tree shadow tables are skipped (their content is derived and would only
duplicate rows), and text columns are chosen from declared types *and* a
sample of values, because SQLite columns are often untyped or mistyped.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from string import Formatter
from typing import TYPE_CHECKING, Any, Literal

from dbembed.errors import SourceError

if TYPE_CHECKING:
    from dbembed.config import SourcesSettings, TableOverride

SAMPLE_ROWS = 200  # values looked at per table to classify untyped columns


@dataclass(frozen=True)
class Column:
    name: str
    decl_type: str
    affinity: str  # INTEGER, TEXT, BLOB, REAL or NUMERIC (SQLite's rules; untyped -> BLOB)
    pk_index: int  # 1-based position in the primary key; 0 = not in the primary key


@dataclass(frozen=True)
class TableInfo:
    name: str
    kind: Literal["table", "view"]
    columns: tuple[Column, ...]
    text_columns: tuple[str, ...]  # chosen for the document, in table order
    key_columns: tuple[str, ...]  # () means rowid is the key; WITHOUT ROWID tables: their PK columns
    without_rowid: bool
    template: str | None = None  # from config override


def quote_ident(name: str) -> str:
    """Quote an SQL identifier for SQLite: wrap in double quotes, double any inside."""
    return '"' + name.replace('"', '""') + '"'


def column_affinity(decl_type: str) -> str:
    """SQLite's type-affinity rules (https://www.sqlite.org/datatype3.html#determination_of_column_affinity)."""
    t = decl_type.upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t.strip():
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


# --- value and name classification ----------------------------------------------------
_ID_NAME = re.compile(r"^(id|uuid|guid|rowid|oid|_rowid_)$|_(id|uuid|guid)$", re.IGNORECASE)
_ID_CAMEL = re.compile(r"[a-z0-9](Id|ID|Uuid|UUID|Guid|GUID)$")
_NUMBER = re.compile(r"^[-+]?[$€£¥]?\s*(\d+([.,' ]\d+)*|\d*\.\d+)([eE][-+]?\d+)?\s*%?$")
_DATE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?"
    r"|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{1,2}:\d{2}(:\d{2})?)$"
)
_UUID = re.compile(r"^\{?[0-9a-f]{8}-?([0-9a-f]{4}-?){3}[0-9a-f]{12}\}?$", re.IGNORECASE)
_HEX = re.compile(r"^(0x)?[0-9a-f]{12,}$", re.IGNORECASE)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,}$")
_CODE = re.compile(r"^[A-Z0-9_-]{1,8}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$", re.IGNORECASE)


def is_id_name(name: str) -> bool:
    """``id``, ``*_id``, ``ArtistId``, ``uuid``...: keys, not content."""
    return bool(_ID_NAME.search(name) or _ID_CAMEL.search(name))


def classify_value(value: Any) -> str:
    """One of: empty, blob, number, date, id, code, text."""
    if value is None:
        return "empty"
    if isinstance(value, bytes):
        return "blob"
    if isinstance(value, int | float):
        return "number"
    s = str(value).strip()
    if not s:
        return "empty"
    if _NUMBER.match(s):
        return "number"
    if _DATE.match(s):
        return "date"
    if _UUID.match(s) or (_HEX.match(s) and any(c.isdigit() for c in s)):
        return "id"
    if _EMAIL.match(s) or _URL.match(s):
        return "id"  # addresses identify people and resources; they carry no meaning to embed
    if _TOKEN.match(s) and any(c.isdigit() for c in s) and any(c.isalpha() for c in s):
        return "id"
    if s.isascii() and ((len(s) <= 3 and " " not in s) or (_CODE.match(s) and any(c.isdigit() for c in s))):
        return "code"
    return "text"


def looks_textual(values: Iterable[Any], declared_text: bool) -> bool:
    """Whether sampled values are mostly real text (not numbers, dates, ids or short codes).

    Declared TEXT columns are kept unless the sample clearly says otherwise (fewer
    than 1 in 5 values is text); untyped/NUMERIC columns need a text majority.
    """
    classes = [classify_value(v) for v in values]
    present = [c for c in classes if c != "empty"]
    text = sum(1 for c in present if c == "text")
    if not present:
        return declared_text
    if declared_text:
        return text * 5 >= len(present)
    return text * 2 > len(present)


# --- schema -------------------------------------------------------------------------------
_SHADOW_SUFFIXES = (
    "_content", "_segments", "_segdir", "_docsize", "_stat",  # fts3/fts4
    "_data", "_idx", "_config",  # fts5 (plus _content, _docsize)
    "_node", "_rowid", "_parent",  # rtree
    "_vocab",
)  # fmt: skip
_USING = re.compile(r"\bUSING\s+(\w+)\s*(\((.*)\))?", re.IGNORECASE | re.DOTALL)
_EXTERNAL_CONTENT = re.compile(r"\bcontent\s*=\s*('[^']*'|\"[^\"]*\"|[^\s,)]+)", re.IGNORECASE)
_WITHOUT_ROWID = re.compile(r"\)[^)]*\bWITHOUT\s+ROWID\b[^)]*$", re.IGNORECASE)


@dataclass(frozen=True)
class _Entry:
    kind: str  # table, view, virtual, shadow
    name: str
    sql: str
    without_rowid: bool


def _schema_entries(conn: sqlite3.Connection) -> list[_Entry]:
    rows = conn.execute(
        "SELECT type, name, coalesce(sql, '') FROM sqlite_master WHERE type IN ('table', 'view')"
    ).fetchall()
    listed: dict[str, tuple[str, bool]] = {}
    try:  # SQLite >= 3.37 knows shadow and virtual tables itself
        for name, kind, wr in conn.execute(
            "SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main'"
        ).fetchall():
            listed[name] = (kind, bool(wr))
    except sqlite3.Error:
        listed = {}
    virtual = {
        name.lower()
        for kind, name, sql in rows
        if kind == "table" and sql.upper().startswith("CREATE VIRTUAL")
    }
    entries: list[_Entry] = []
    for kind, name, sql in rows:
        if name in listed:
            kind, wr = listed[name]
        else:
            if kind == "table" and name.lower() in virtual:
                kind = "virtual"
            elif kind == "table" and any(
                name.lower().endswith(sfx) and name.lower()[: -len(sfx)] in virtual
                for sfx in _SHADOW_SUFFIXES
            ):
                kind = "shadow"
            wr = bool(kind == "table" and _WITHOUT_ROWID.search(sql))
        entries.append(_Entry(kind, name, sql, wr))
    return entries


def _columns(conn: sqlite3.Connection, name: str) -> tuple[Column, ...]:
    try:  # table_xinfo also lists generated columns (hidden 2/3); 1 = hidden virtual-table columns
        rows = conn.execute(
            "SELECT name, coalesce(type, ''), pk FROM pragma_table_xinfo(?) WHERE hidden IN (0, 2, 3)"
            " ORDER BY cid",
            (name,),
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc) and "table_xinfo" not in str(exc):
            raise
        rows = conn.execute(
            "SELECT name, coalesce(type, ''), pk FROM pragma_table_info(?) ORDER BY cid", (name,)
        ).fetchall()
    return tuple(Column(n, t, column_affinity(t), int(pk or 0)) for n, t, pk in rows)


def _override(settings: SourcesSettings, name: str) -> TableOverride | None:
    if name in settings.tables:
        return settings.tables[name]
    folded = {k.casefold(): v for k, v in settings.tables.items()}
    return folded.get(name.casefold())


def _resolve(table: str, columns: tuple[Column, ...], wanted: list[str], *, strict: bool) -> list[str]:
    by_fold = {c.name.casefold(): c.name for c in columns}  # SQLite identifiers are case-insensitive
    out = []
    for w in wanted:
        real = by_fold.get(w.casefold())
        if real is None:
            if strict:
                raise SourceError(f"table {table!r} has no column {w!r} (named in include_columns)")
            continue
        out.append(real)
    return out


def template_fields(template: str | None) -> list[str]:
    """Column names a ``str.format`` template refers to (``{Title}``, ``{Price:.2f}``, ``{a[0]}``)."""
    if not template:
        return []
    names = []
    try:
        for _, field, _, _ in Formatter().parse(template):
            if field:
                names.append(re.split(r"[.\[]", field, maxsplit=1)[0])
    except ValueError:
        return []
    return names


def _sample(conn: sqlite3.Connection, table: str, names: list[str]) -> dict[str, list[Any]]:
    if not names:
        return {}
    exprs = ", ".join(
        f"CASE WHEN typeof({q}) = 'text' THEN substr({q}, 1, 200) ELSE {q} END"
        for q in (quote_ident(n) for n in names)
    )
    out: dict[str, list[Any]] = {n: [] for n in names}
    cur = conn.execute(f"SELECT {exprs} FROM {quote_ident(table)} LIMIT {SAMPLE_ROWS}")
    try:
        for row in cur:
            for n, v in zip(names, row, strict=True):
                out[n].append(b"" if isinstance(v, bytes) else v)  # blobs: only their type matters
    finally:
        cur.close()
    return out


def choose_text_columns(
    conn: sqlite3.Connection, table: str, columns: tuple[Column, ...], override: TableOverride | None
) -> tuple[str, ...]:
    """Text columns for the document, in table order (config include/exclude lists win)."""
    excluded = {n.casefold() for n in (override.exclude_columns if override else [])}
    if override is not None and override.include_columns is not None:
        chosen = set(_resolve(table, columns, override.include_columns, strict=True))
        return tuple(c.name for c in columns if c.name in chosen and c.name.casefold() not in excluded)
    candidates: dict[str, bool] = {}  # name -> declared TEXT
    for col in columns:
        if col.name.casefold() in excluded or is_id_name(col.name):
            continue
        if col.affinity == "TEXT":
            candidates[col.name] = True
        elif col.affinity == "NUMERIC" or not col.decl_type.strip():
            candidates[col.name] = False
    samples = _sample(conn, table, list(candidates))
    textual = [
        c.name for c in columns if c.name in candidates and looks_textual(samples[c.name], candidates[c.name])
    ]
    if any(is_prose(samples[n]) for n in textual):
        # Short categorical values (status, priority) would dilute the prose they sit beside.
        textual = [n for n in textual if not is_categorical(samples[n])]
    return tuple(textual)


def _present(values: Iterable[Any]) -> list[str]:
    return [str(v).strip() for v in values if v is not None and not isinstance(v, bytes) and str(v).strip()]


def is_prose(values: Iterable[Any]) -> bool:
    """Free text: mostly distinct values, 30+ characters on average."""
    present = _present(values)
    if not present:
        return False
    return sum(map(len, present)) / len(present) >= 30 and len(set(present)) * 2 >= len(present)


def is_categorical(values: Iterable[Any]) -> bool:
    """A handful of short labels repeated over many rows (status, priority, country)."""
    present = _present(values)
    if len(present) < 20:
        return False  # too few rows to tell
    distinct = set(present)
    return len(distinct) <= max(3, len(present) // 10) and sum(map(len, distinct)) / len(distinct) < 20


def _virtual_problem(conn: sqlite3.Connection, entry: _Entry) -> str | None:
    """Why a virtual table should not be read (None: read it like a table)."""
    m = _USING.search(entry.sql)
    module = m.group(1).lower() if m else ""
    args = (m.group(3) or "") if m else ""
    if module.startswith("fts") and _EXTERNAL_CONTENT.search(args):
        return "external-content or contentless FTS index (its text lives in another table)"
    try:
        conn.execute(f"SELECT * FROM {quote_ident(entry.name)} LIMIT 0").fetchall()
    except sqlite3.Error as exc:
        return f"virtual table not readable here ({exc})"
    if not module.startswith("fts"):
        return f"virtual table ({module or 'unknown module'})"
    return None


_COLLATE = re.compile(r"\bCOLLATE\s+(\"[^\"]+\"|'[^']+'|`[^`]+`|\[[^\]]+\]|\w+)", re.IGNORECASE)
_BUILTIN_COLLATIONS = frozenset({"binary", "nocase", "rtrim"})


def explain_table_error(exc: BaseException, kind: str, sql: str) -> str:
    """One line saying why a table or view cannot be read, naming an unknown collation when the
    schema uses one (SQLite then often only says "no query solution")."""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    names = {c.strip("\"'`[]") for c in _COLLATE.findall(sql or "")}
    custom = sorted((c for c in names if c.lower() not in _BUILTIN_COLLATIONS), key=str.lower)
    what = "view" if kind == "view" else "table"
    if custom and "collation" not in msg:
        return f"{what} cannot be read: it uses collation {', '.join(custom)} that this reader lacks ({msg})"
    return f"{what} cannot be read ({msg})"


def _whole_file(exc: sqlite3.Error) -> bool:
    low = str(exc).lower()
    return any(w in low for w in ("locked", "busy", "disk i/o", "unable to open", "not a database"))


def list_tables(
    conn: sqlite3.Connection,
    settings: SourcesSettings,
    skipped: dict[str, str],
    rejected: dict[str, str] | None = None,
) -> list[TableInfo]:
    """Readable tables (and views when ``settings.include_views``) that have something to embed.

    Tables left out on purpose (no text, views not asked for, configuration) go into ``skipped``;
    tables that hold data but cannot be read here (unknown collation or virtual-table module, a
    corrupt page, a view that errors) go into ``rejected`` with the reason (when given; else into
    ``skipped``).  Only an unreadable schema fails the whole file.
    """
    if rejected is None:
        rejected = skipped
    tables: list[TableInfo] = []
    for entry in _schema_entries(conn):
        name = entry.name
        if name.lower().startswith("sqlite_") or entry.kind == "shadow":
            continue
        if entry.kind == "view" and not settings.include_views:
            skipped[name] = "view (set include_views to read views)"
            continue
        if entry.kind == "virtual":
            problem = _virtual_problem(conn, entry)
            if problem:
                (rejected if "not readable" in problem else skipped)[name] = problem
                continue
        override = _override(settings, name)
        if override is not None and override.skip:
            skipped[name] = "skipped by configuration"
            continue
        try:
            columns = _columns(conn, name)
            text_columns = choose_text_columns(conn, name, columns, override)
        except sqlite3.Error as exc:
            # A broken view (missing table/function), an unknown collation, a corrupt page in this
            # table's b-tree: only this table is lost.  Errors about the whole file propagate.
            if _whole_file(exc):
                raise
            rejected[name] = explain_table_error(exc, entry.kind, entry.sql)
            continue
        template = override.template if override is not None else None
        if not text_columns and not template:
            skipped[name] = "no text columns"
            continue
        key_columns: tuple[str, ...] = ()
        if entry.without_rowid:
            key_columns = tuple(c.name for c in sorted(columns, key=lambda c: c.pk_index) if c.pk_index > 0)
        tables.append(
            TableInfo(
                name=name,
                kind="view" if entry.kind == "view" else "table",
                columns=columns,
                text_columns=text_columns,
                key_columns=key_columns,
                without_rowid=entry.without_rowid,
                template=template,
            )
        )
    return tables
