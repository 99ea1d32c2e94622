"""The nightly job, as users run it: day 1 indexes a load test's SQLite files, day 2 reruns
after 1% of the rows changed.  dbembed vs LangChain PGVector vs ``llm embed-multi``, on the
same files, the same documents and the same model, each as the process a cron job would start
(wall time, so process start and model load count for every tool, once per day).

    python -m benchmarks.bench_nightly [--files 8] [--rows 125] [--dup-share 0.3] [--append FILE]

How each tool does day 2:
* dbembed: ``dbembed run`` again (unchanged files cost a stat; changed rows are re-embedded);
* LangChain: PGVector has no change detection, so the documents are added again into a fresh
  collection (re-adding into the old one would duplicate every vector);
* llm: ``embed-multi`` again into the same database (it skips ids whose content hash is stored),
  both as one call over all documents pre-merged into one table (llm's best case) and as a user
  scripts it over a tree of files: one call per SQLite file, each paying process start + model load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

from benchmarks.bench_competitors import model_path
from benchmarks.common import REPO, PgServer, bench_env, dbembed_run, run_proc
from benchmarks.docs import Doc, row_documents, sqlite_files

COMPETITOR_PYTHON = "/tmp/venv-bench/bin/python"


def change_rows(docs: list[Doc], share: float) -> int:
    """Append a word to one text column of ``share`` of the rows (rowid tables only)."""
    step = max(1, int(1 / share))
    changed = 0
    for doc in docs[::step]:
        if not str(doc.key).isdigit():
            continue
        conn = sqlite3.connect(doc.file)
        quoted = '"' + doc.table.replace('"', '""') + '"'
        cols = [
            r[1]
            for r in conn.execute(f"PRAGMA table_info({quoted})")
            if "CHAR" in r[2].upper() or "TEXT" in r[2].upper()
        ]
        if cols:
            col = '"' + cols[-1].replace('"', '""') + '"'
            conn.execute(
                f"UPDATE {quoted} SET {col} = {col} || ' (updated)' WHERE rowid = ?", (int(doc.key),)
            )
            conn.commit()
            changed += 1
        conn.close()
    return changed


def langchain_day(docs: list[Doc], url: str, work: Path) -> float:
    path = work / "lc-docs.json"
    path.write_text(json.dumps([d.__dict__ for d in docs], ensure_ascii=False), encoding="utf-8")
    script = str(REPO / "benchmarks" / "competitors" / "langchain_pg.py")
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    p = run_proc([COMPETITOR_PYTHON, script, "--url", url, "--docs", str(path), "--model", model_path()])
    if p.rc != 0:
        raise RuntimeError(f"LangChain failed: {p.tail()}")
    return p.seconds


def llm_per_file_day(docs: list[Doc], work: Path) -> float:
    """llm as a user scripts it over a tree: one ``embed-multi`` per SQLite file (a shell loop)."""
    total = 0.0
    by_file: dict[str, list[Doc]] = {}
    for d in docs:
        by_file.setdefault(d.file, []).append(d)
    for i, file_docs in enumerate(by_file.values()):
        total += llm_day(file_docs, work, f"f{i}")
    return total


def llm_day(docs: list[Doc], work: Path, name: str = "all") -> float:
    llm_bin = str(Path(COMPETITOR_PYTHON).parent / "llm")
    env = bench_env(LLM_USER_PATH=str(work / "llm-home"))
    if not (work / "llm-home").exists():
        (work / "llm-home").mkdir()
        reg = run_proc(
            [llm_bin, "sentence-transformers", "register", model_path(), "--lazy", "-a", "m"], env=env
        )
        if reg.rc != 0:
            raise RuntimeError(f"llm register failed: {reg.tail()}")
    src = work / f"llm-src-{name}.db"
    src.unlink(missing_ok=True)
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE docs (id TEXT PRIMARY KEY, content TEXT)")
    conn.executemany(
        "INSERT INTO docs VALUES (?, ?)", [(f"{d.file}|{d.table}|{d.key}", d.text) for d in docs]
    )
    conn.commit()
    conn.close()
    cmd = [llm_bin, "embed-multi", f"nightly-{name}", "--attach", "src", str(src), "--sql",
           "SELECT id, content FROM src.docs", "-m", "m", "-d", str(work / "llm-out.db")]  # fmt: skip
    p = run_proc(cmd, env=env)
    if p.rc != 0:
        raise RuntimeError(f"llm embed-multi failed: {p.tail()}")
    return p.seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--rows", type=int, default=125)
    ap.add_argument("--dup-share", type=float, default=0.3)
    ap.add_argument("--change", type=float, default=0.01)
    ap.add_argument("--append", type=Path, help="Append the table to this results file.")
    args = ap.parse_args()
    from dbembed.generate import generate

    work = Path(tempfile.mkdtemp(prefix="dbembed-nightly-"))
    pg = PgServer(work)
    try:
        root = work / "data"
        generate(root, files=args.files, rows=args.rows, seed=11, dup_share=args.dup_share, wal_share=0.0)
        files = sqlite_files(root)
        docs, _ = row_documents(files)
        distinct = len({d.text for d in docs})
        url = pg.new_database("dbe")
        times: dict[str, list[float]] = {
            "dbembed": [],
            "LangChain PGVector": [],
            "llm embed-multi": [],
            "llm, one call per file": [],
        }
        embedded: list[int] = []
        for day in (1, 2):
            if day == 2:
                n_changed = change_rows(docs, args.change)
                docs, _ = row_documents(files)
            s = dbembed_run(root, url, "--no-sidecar")
            times["dbembed"].append(s["_wall_s"])
            embedded.append(s["texts_embedded"])
            times["LangChain PGVector"].append(langchain_day(docs, pg.new_database("lc"), work))
            times["llm embed-multi"].append(llm_day(docs, work))
            times["llm, one call per file"].append(llm_per_file_day(docs, work))
        lines = [
            f"nightly job: {len(files)} files, {len(docs)} rows ({distinct} distinct texts, dup-share {args.dup_share}); "
            f"day 2 after changing {n_changed} rows; process wall time incl. start + model load; "
            f"dbembed embedded {embedded[0]} texts on day 1, {embedded[1]} on day 2",
            f"{'tool':<22}{'day 1 s':>10}{'day 2 s':>10}{'total s':>10}{'dbembed faster by':>20}",
        ]
        ours = sum(times["dbembed"])
        for tool, (d1, d2) in times.items():
            lines.append(f"{tool:<22}{d1:>10.1f}{d2:>10.1f}{d1 + d2:>10.1f}{(d1 + d2) / ours:>19.2f}x")
        for tool in ("LangChain PGVector", "llm embed-multi", "llm, one call per file"):
            d1 = times[tool][0]
            lines.append(f"day 1 alone: {tool} / dbembed = {d1 / times['dbembed'][0]:.2f}x")
        text = "\n".join(lines)
        print(text)
        if args.append:
            with open(args.append, "a", encoding="utf-8") as fh:
                fh.write(
                    f"\n## Nightly job (benchmarks/bench_nightly.py --dup-share {args.dup_share})\n\n```\n{text}\n```\n"
                )
    finally:
        pg.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
