"""The document-format benchmark's labelled set and documents (no model, no database)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from benchmarks.bench_formats import FORMATS, INTENTS, documents, labelled_set
from benchmarks.common import Results
from benchmarks.docs import sqlite_files
from benchmarks.report import render_markdown, render_table


def test_labelled_set_lists_exactly_the_rows_naming_the_item(tmp_path: Path) -> None:
    from dbembed.generate import generate, vocab

    root = tmp_path / "data"
    generate(root, files=4, rows=120, seed=11, dup_share=0.0, wal_share=0.0, ja_share=0.3)
    queries = labelled_set(root)
    assert {q.lang for q in queries} == {"en", "ja"} and {q.table for q in queries} <= set(INTENTS)
    for q in queries:
        item = next(i for i in (*vocab.ITEMS_EN, *vocab.ITEMS_JA) if i in q.text)
        cols = INTENTS[q.table][0]
        for path, table, key in q.relevant:
            conn = sqlite3.connect(path)
            try:
                values = conn.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE rowid = ?", (int(key),)).fetchone()
            finally:
                conn.close()
            assert table == q.table and item.casefold() in " ".join(v or "" for v in values).casefold()
        naming = 0  # and no row of that table that names the item is missing
        for path in sqlite_files(root):
            conn = sqlite3.connect(path)
            try:
                if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (q.table,)).fetchone():
                    for values in conn.execute(f"SELECT {', '.join(cols)} FROM {q.table}"):
                        naming += item.casefold() in " ".join(v or "" for v in values).casefold()
            finally:
                conn.close()
        assert naming == len(q.relevant)


def test_documents_align_row_by_row_across_formats(tmp_path: Path) -> None:
    from dbembed.generate import generate

    root = tmp_path / "data"
    generate(root, files=2, rows=40, seed=3, dup_share=0.0, wal_share=0.0, ja_share=0.3)
    docs = {f: documents(root, f) for f in FORMATS}
    assert len({len(d) for d in docs.values()}) == 1 and docs["values"]
    for full, cols, vals in zip(docs["table-columns"], docs["columns"], docs["values"], strict=True):
        assert full.endswith(cols) and len(vals) < len(cols) < len(full)


def test_results_render_section_tables() -> None:
    res = Results()
    res.tables["document formats"] = (["format", "tokens/doc"], [["values", "12.5"]])
    md = render_markdown(res)
    assert "## Document formats" in md and "| format | tokens/doc |" in md and "| values | 12.5 |" in md
    assert "| values | 12.5 |" in render_table(res)
