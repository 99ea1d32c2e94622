"""The row documents every contender embeds: the same texts dbembed itself would embed.

Comparisons are only fair on identical inputs, so the raw model, LangChain and
``llm embed-multi`` all get exactly these strings.  They come from dbembed's own reader
and ``row_document`` when those modules are present, else from a stand-in with the same
format (``"{table} | {Col}: {val} | ..."`` over the TEXT columns that are not keys).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Doc:
    file: str
    table: str
    key: str
    text: str


def _dbembed_docs(files: list[Path]) -> list[Doc] | None:
    try:
        from dbembed.config import load_settings
        from dbembed.read import SqliteSource  # type: ignore[attr-defined]
        from dbembed.text.document import row_document  # type: ignore[import-not-found]
    except ImportError:
        return None
    settings = load_settings(settle_s=0.0)
    out: list[Doc] = []
    for path in files:
        with SqliteSource(path, settings.sources) as src:
            for table in src.tables():
                for row in src.rows(table):
                    text = row_document(table, row)
                    if text:
                        out.append(Doc(str(path), table.name, row.key, text))
    return out


def _fallback_docs(files: list[Path]) -> list[Doc]:
    out: list[Doc] = []
    for path in files:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
                cols = [c[1] for c in info if "TEXT" in (c[2] or "").upper() and not c[5]]
                rowid = not any(c[5] for c in info if "INT" not in (c[2] or "").upper())
                if not cols:
                    continue
                key = "rowid" if rowid else next(c[1] for c in info if c[5])
                sel = ", ".join(f'"{c}"' for c in cols)
                for k, *vals in conn.execute(f'SELECT {key}, {sel} FROM "{table}"'):
                    parts = [f"{c}: {v}" for c, v in zip(cols, vals, strict=True) if v not in (None, "")]
                    if parts:
                        out.append(Doc(str(path), table, str(k), " | ".join([table, *parts])))
        finally:
            conn.close()
    return out


def row_documents(files: list[Path]) -> tuple[list[Doc], str]:
    """The documents for ``files`` and which builder made them (reported in the results)."""
    docs = _dbembed_docs(files)
    if docs is not None:
        return docs, "dbembed.read + dbembed.text.document.row_document"
    return _fallback_docs(files), "stand-in builder (dbembed.text.document not available yet)"


def sqlite_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".db", ".sqlite", ".sqlite3") and p.is_file())
