"""Issue 2 and 3 (a, b) on realistic volume: >= 20,000 rows of varied text over >= 500 files.

* dbembed end to end vs the raw model **on the same texts**: the distinct chunk texts that
  dbembed embeds (built here with dbembed's own reader, ``row_document`` and chunker), timed
  through ``SentenceTransformerProvider().embed_documents`` before and after the run (mean,
  as the machine drifts), plus the run's per-stage breakdown (``RunSummary.stage_s``);
* a rerun with nothing changed, as a share of the first run;
* a rerun after editing ~1% of the rows spread over the files: the texts it embedded must
  equal the new distinct chunk texts of the changed rows, computed here independently.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

from benchmarks.common import PgServer, Results, dbembed_run, timer
from benchmarks.docs import sqlite_files
from dbembed.generate import generate

ChunkMap = dict[tuple[str, str, str], list[str]]


def chunk_map(root: Path, provider: Any) -> ChunkMap:
    """{(file, table, row key): chunk texts} exactly as ``dbembed run`` builds them."""
    from dbembed.config import load_settings
    from dbembed.read import SqliteSource
    from dbembed.text.chunk import make_chunker
    from dbembed.text.document import row_document

    settings = load_settings(settle_s=0.0)
    chunker = make_chunker(settings.text, provider.new_tokenizer(), provider.max_tokens, provider.max_chars)
    out: ChunkMap = {}
    for path in sqlite_files(root):
        with SqliteSource(path, settings.sources) as src:
            for table in src.tables():
                for row in src.rows(table):
                    doc = row_document(table, row)
                    if doc is not None:
                        out[(str(path), table.name, row.key)] = chunker.chunk(doc)
    return out


def distinct_texts(chunks: ChunkMap) -> list[str]:
    return list(dict.fromkeys(t for pieces in chunks.values() for t in pieces))


def raw_seconds(provider: Any, texts: list[str]) -> float:
    """Seconds for the provider alone to embed ``texts`` (dbembed's batch size and threads)."""
    provider.embed_documents(["warm up"] * 8)
    with timer() as t:
        provider.embed_documents(texts)
    return t["s"]


def edit_rows(root: Path, share: float, total_rows: int) -> int:
    """Append " (edited)" to one TEXT column of ~``share`` of the rows, spread evenly over the files.

    Returns the number of rows updated (the run's own diff decides which documents changed)."""
    files = sqlite_files(root)
    target = max(1, round(total_rows * share))
    per_file = math.ceil(target / len(files))
    nfiles = math.ceil(target / per_file)
    picked = [files[i * len(files) // nfiles] for i in range(nfiles)]
    updated = 0
    for i, path in enumerate(picked):
        conn = sqlite3.connect(path)
        tables = []
        for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"):
            if "WITHOUT ROWID" in (sql or "").upper():
                continue
            cols = [c[1] for c in conn.execute(f'PRAGMA table_info("{name}")') if c[2] == "TEXT" and not c[5]]
            if cols:
                tables.append((name, cols[-1]))
        if tables:
            table, col = tables[i % len(tables)]
            n = min(per_file, target - updated)
            for offset in (i % 7, 0):  # a row somewhere in the table; the first one if it is short
                cur = conn.execute(
                    f'UPDATE "{table}" SET "{col}" = "{col}" || \' (edited)\' WHERE rowid IN '
                    f'(SELECT rowid FROM "{table}" WHERE "{col}" <> \'\' ORDER BY rowid LIMIT {n} OFFSET {offset})'
                )
                if cur.rowcount:
                    updated += cur.rowcount
                    break
            conn.commit()
        conn.close()
    return updated


def pipeline(res: Results, work: Path, pg: PgServer, files: int, rows: int, dup_share: float = 0.3) -> None:
    from dbembed.embed.local import SentenceTransformerProvider

    root = work / "pipeline"
    generate(root, files=files, rows=rows, seed=3, dup_share=dup_share, wal_share=0.0)
    provider = SentenceTransformerProvider()
    before = chunk_map(root, provider)
    texts = distinct_texts(before)
    nchunks = sum(len(p) for p in before.values())
    res.facts["pipeline_data"] = (
        f"{files} files x {rows} rows, dup-share {dup_share}: {len(before)} row documents, "
        f"{nchunks} chunks, {len(texts)} distinct chunk texts"
    )
    print(f"  pipeline data: {res.facts['pipeline_data']}", flush=True)

    raw_before = raw_seconds(provider, texts)
    url = pg.new_database("pipe")
    first = dbembed_run(root, url)
    raw_after = raw_seconds(provider, texts)
    raw_s = (raw_before + raw_after) / 2
    raw_rate = len(texts) / raw_s
    secs = first["seconds"]
    res.add(
        "pipeline", "raw model, distinct chunk texts", raw_rate, "texts/s",
        f"{len(texts)} texts; {raw_before:.1f}s before, {raw_after:.1f}s after the run (mean used)",
    )  # fmt: skip
    res.add(
        "pipeline", "dbembed run, chunks/s", first["chunks"] / secs, "chunks/s",
        f"{first['chunks']} chunks, {first['rows']} rows, {first['files_ok']} files in {secs:.1f}s "
        f"(process wall {first['_wall_s']:.1f}s); embedded {first['texts_embedded']} texts "
        f"(distinct chunk texts computed here: {len(texts)})",
    )  # fmt: skip
    res.ratio(
        "pipeline: dbembed / raw model, per distinct text", first["texts_embedded"] / secs / raw_rate, 0.9, ">=",
        f"{first['texts_embedded']} texts in {secs:.1f}s vs {len(texts)} in {raw_s:.1f}s",
    )  # fmt: skip
    res.ratio(
        "pipeline: dbembed chunks/s / raw model texts/s", first["chunks"] / secs / raw_rate, 0.9, ">=",
        f"{first['chunks']} chunks (dup-share {dup_share}) in {secs:.1f}s",
    )  # fmt: skip
    stages = first.get("stage_s") or {}
    main_thread = sum(stages.get(k, 0.0) for k in ("lookup", "embed", "load"))
    for name in ("read", "chunk", "lookup", "embed", "load"):
        v = stages.get(name)
        res.add("pipeline stages", name, v, "s", "" if v is None else f"{v / secs:.1%} of the run")
    res.add(
        "pipeline stages", "other (model load, discovery, commit, HNSW)", secs - main_thread, "s",
        f"{(secs - main_thread) / secs:.1%} of the run; read+chunk run in a background thread, overlapping embed",
    )  # fmt: skip

    again = dbembed_run(root, url)
    res.add("pipeline", "rerun, nothing changed", again["seconds"], "s", f"wall {again['_wall_s']:.1f}s")
    res.ratio(
        "pipeline: no-op rerun / first run (time)", again["seconds"] / secs, 0.01, "<=",
        f"{again['seconds']:.2f}s vs {secs:.1f}s; the model is loaded only when a run has work",
    )  # fmt: skip

    updated = edit_rows(root, 0.01, first["rows"])
    after = chunk_map(root, provider)
    changed = [k for k, v in after.items() if before.get(k) != v]
    changed_chunks = sum(len(after[k]) for k in changed)
    expected = len(set(distinct_texts(after)) - set(texts))
    edit = dbembed_run(root, url)
    res.add(
        "pipeline", f"rerun after editing {updated} rows ({updated / first['rows']:.2%})", edit["seconds"], "s",
        f"{len(changed)} documents changed with {changed_chunks} chunks, {expected} of them new distinct texts; "
        f"dbembed embedded {edit['texts_embedded']}, reused {edit['texts_reused']}",
    )  # fmt: skip
    res.ratio(
        "pipeline: change-1% texts embedded / new chunk texts", edit["texts_embedded"] / max(1, expected), 1.0, "==",
        f"embedded {edit['texts_embedded']}, expected {expected} ({changed_chunks} chunks in {len(changed)} changed rows)",
    )  # fmt: skip
    res.ratio(
        "pipeline: change-1% rerun / first run (time)", edit["seconds"] / secs, 0.1, "<=",
        f"{edit['seconds']:.2f}s vs {secs:.1f}s",
    )  # fmt: skip
