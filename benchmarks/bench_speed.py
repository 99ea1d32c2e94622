"""Issue 15: fastest on a CPU with the same model.  Whole processes as users run them.

    python -m benchmarks.bench_speed [--rows 3500] [--rounds 2] [--small-files 20000] [--out FILE]

Sections, one run, tools in turn, medians of ``--rounds``:

* short: a generated single-table SQLite file of short texts (track titles + composers, ~10 words a
  row): full run, no-op rerun and one-row edit, each a fresh process (Python start, imports, model
  load, work): dbembed (default runtime, and ``--backend torch --precision fp32`` = before issue 15)
  vs ``llm embed-multi`` (sentence-transformers plugin) and LangChain ``PGVector.add_texts``.
* backends: every runtime available here on the same documents: time, speed-up and min/mean cosine
  to torch fp32.
* efficiency: dbembed's embed stage (``stage_s.embed`` of a full run) vs one call embedding the same
  distinct texts with the same runtime in-process (the model's own speed).
* small: N one-row files holding 50 distinct texts: first run (one worker), no-op rerun, one edit.

The competitors run from a separate venv (``BENCH_COMPETITOR_PYTHON``, see benchmarks/README.md).
The export and the ``auto`` decision are made once before timing (as after installation).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import bench_nightly as nightly
from benchmarks.common import PgServer, dbembed_cli
from benchmarks.docs import row_documents, sqlite_files

WORDS = [
    "love",
    "night",
    "river",
    "fire",
    "heart",
    "dream",
    "blue",
    "road",
    "home",
    "rain",
    "summer",
    "light",
    "shadow",
    "gold",
    "city",
    "song",
    "dance",
    "wild",
    "angel",
    "storm",
    "moon",
    "sun",
    "king",
    "queen",
    "street",
    "fever",
    "rock",
    "ocean",
    "ghost",
    "train",
    "morning",
]
FIRST = [
    "John",
    "Paul",
    "Maria",
    "Ken",
    "Yuki",
    "Anna",
    "Lee",
    "Carlos",
    "Sofia",
    "Omar",
    "Ivan",
    "Grace",
    "Hiro",
    "Nina",
    "Tom",
    "Eva",
]
LAST = [
    "Smith",
    "Young",
    "Garcia",
    "Tanaka",
    "Kim",
    "Müller",
    "Rossi",
    "Silva",
    "Brown",
    "Novak",
    "Sato",
    "Jones",
    "Dubois",
    "Berg",
]


def make_short_db(path: Path, rows: int, seed: int = 15) -> Path:
    """One table ``Track(TrackId, Name, Composer)``; about 10 words a row, every row distinct."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE Track (TrackId INTEGER PRIMARY KEY, Name TEXT NOT NULL, Composer TEXT)")
    data = []
    for i in range(rows):
        title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6))).title()
        composers = ", ".join(f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(rng.randint(1, 2)))
        data.append((i + 1, f"{title} ({i})", composers))
    conn.executemany("INSERT INTO Track VALUES (?, ?, ?)", data)
    conn.commit()
    conn.close()
    return path


def make_small_files(root: Path, n: int, distinct: int = 50) -> None:
    """``n`` one-row databases in 100 folders; row texts cycle through ``distinct`` sentences."""
    rng = random.Random(7)
    texts = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(distinct)]
    template = root / "_template.db"
    root.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(template)
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, message TEXT)")
    conn.execute("INSERT INTO events VALUES (1, 'x')")
    conn.commit()
    conn.close()
    blob = template.read_bytes()
    template.unlink()
    for i in range(n):
        d = root / f"d{i % 100:03d}"
        d.mkdir(exist_ok=True)
        p = d / f"f{i:05d}.db"
        p.write_bytes(blob)
        c = sqlite3.connect(p)
        c.execute("UPDATE events SET message = ? WHERE id = 1", (texts[i % distinct],))
        c.commit()
        c.close()


def edit_one_row(db: Path, table: str, column: str, key: int = 1) -> None:
    conn = sqlite3.connect(db)
    conn.execute(f"UPDATE {table} SET {column} = {column} || ' (live)' WHERE rowid = ?", (key,))
    conn.commit()
    conn.close()
    os.utime(db, (time.time() - 120, time.time() - 120))


def dbembed_wall(root: Path, url: str, *extra: str) -> tuple[float, dict[str, Any]]:
    p = dbembed_cli(
        ["run", str(root), "--database-url", url, "--settle", "0", "--json", "--no-sidecar", *extra]
    )
    if p.rc != 0:
        raise RuntimeError(f"dbembed run failed ({p.rc}): {p.tail()}")
    return p.seconds, p.json()


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def short_section(work: Path, pg: PgServer, rows: int, rounds: int, out: list[str]) -> dict[str, Any]:
    data = work / "short"
    db = make_short_db(data / "tracks.db", rows)
    files = sqlite_files(data)
    docs, builder = row_documents(files)
    times: dict[str, dict[str, list[float]]] = {}
    summaries: list[dict[str, Any]] = []

    def rec(tool: str, kind: str, s: float) -> None:
        times.setdefault(tool, {}).setdefault(kind, []).append(s)

    for r in range(rounds):
        for label, extra in (
            ("dbembed (auto)", ()),
            ("dbembed (torch fp32)", ("--backend", "torch", "--precision", "fp32")),
        ):
            tree = work / f"short-{r}-{label.split()[1][1:-1]}"
            shutil.copytree(data, tree)
            url = pg.new_database("sp")
            s, summ = dbembed_wall(tree, url, *extra)
            rec(label, "full", s)
            summaries.append({"label": label, **summ})
            s, _ = dbembed_wall(tree, url, *extra)
            rec(label, "noop", s)
            edit_one_row(tree / "tracks.db", "Track", "Name", key=rows // 2)
            s, summ2 = dbembed_wall(tree, url, *extra)
            rec(label, "edit", s)
            if summ2.get("texts_embedded") != 1:
                out.append(f"note: {label} one-row edit embedded {summ2.get('texts_embedded')} texts")
        try:
            lw = work / f"llm-{r}"
            lw.mkdir()
            rec("llm embed-multi", "full", nightly.llm_day(docs, lw))
            rec("llm embed-multi", "noop", nightly.llm_day(docs, lw))
        except Exception as exc:  # noqa: BLE001 - a missing competitor is reported, not fatal
            out.append(f"llm not available: {exc}")
        try:
            lc = work / f"lc-{r}"
            lc.mkdir()
            rec("LangChain PGVector", "full", nightly.langchain_day(docs, pg.new_database("lc"), lc))
        except Exception as exc:  # noqa: BLE001
            out.append(f"LangChain not available: {exc}")
    out.append(
        f"short texts: {db.name}, {rows} rows, {len(docs)} documents ({builder}); whole processes; "
        f"median of {rounds} rounds"
    )
    out.append(f"{'tool':<24}{'full run s':>12}{'no-op s':>10}{'1-row edit s':>14}")
    for tool, kinds in times.items():
        out.append(
            f"{tool:<24}{med(kinds.get('full', [])):>12.2f}{med(kinds.get('noop', [])):>10.2f}"
            f"{med(kinds.get('edit', [])):>14.2f}"
        )
    peers = [med(times[t]["full"]) for t in ("llm embed-multi", "LangChain PGVector") if t in times]
    ours = med(times["dbembed (auto)"]["full"])
    result: dict[str, Any] = {"times": times, "docs": docs, "summaries": summaries}
    if peers:
        result["vs_peer"] = ours / min(peers)
        out.append(f"dbembed full run / fastest peer: {ours / min(peers):.2f}")
    result["edit_ratio"] = med(times["dbembed (auto)"]["edit"]) / ours
    out.append(f"dbembed one-row edit / full run: {result['edit_ratio']:.3f}")
    return result


def backends_section(texts: list[str], out: list[str]) -> list[dict[str, Any]]:
    from dbembed.config import Settings
    from dbembed.embed.backends import measure_runtimes
    from dbembed.embed.local import bundled_model_path
    from dbembed.embed.local_factory import build

    md = bundled_model_path()
    s = Settings()
    rows = measure_runtimes(md, "cpu", lambda rt: build(md, s, "cpu", rt, None), rounds=2, texts=texts)
    ref = next(
        (
            r["seconds"]
            for r in rows
            if r.get("seconds") and r["backend"] == "torch" and r["precision"] == "fp32"
        ),
        None,
    )
    out.append(f"runtimes on the same {len(texts)} documents (in-process, best of 2 after a warm-up):")
    out.append(f"{'runtime':<18}{'seconds':>9}{'speed-up':>10}{'min cos':>10}{'mean cos':>10}")
    for r in rows:
        name = f"{r['backend']} {r['precision']}"
        if "error" in r:
            out.append(f"{name:<18} error: {r['error']}")
            continue
        out.append(
            f"{name:<18}{r['seconds']:>9.2f}{(ref or 0) / r['seconds']:>9.2f}x{r['min_cosine']:>10.5f}"
            f"{r['mean_cosine']:>10.5f}"
        )
    return rows


def efficiency_section(summaries: list[dict[str, Any]], texts: list[str], out: list[str]) -> None:
    """stage_s.embed of the default-runtime full runs vs one in-process call on the same texts."""
    from dbembed.config import Settings
    from dbembed.embed.registry import get_provider

    provider = get_provider(Settings())
    distinct = list(dict.fromkeys(texts))
    provider.embed_documents(distinct[:64])
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        provider.embed_documents(distinct)
        best = min(best, time.perf_counter() - t)
    stages = [s["stage_s"]["embed"] for s in summaries if s["label"] == "dbembed (auto)" and s.get("stage_s")]
    runtime = getattr(provider, "runtime", "?")
    out.append(
        f"embed stage efficiency ({runtime}): one call over {len(distinct)} distinct texts {best:.2f} s; "
        f"dbembed embed stage {med(stages):.2f} s (median); ratio {best / med(stages):.2f}"
    )


def small_section(work: Path, pg: PgServer, n: int, out: list[str]) -> None:
    root = work / "small"
    t = time.perf_counter()
    make_small_files(root, n)
    old = time.time() - 300
    for p in root.rglob("*.db"):
        os.utime(p, (old, old))
    out.append(f"{n} one-row files, 50 distinct texts (made in {time.perf_counter() - t:.0f} s); one worker")
    url = pg.new_database("small")
    first, s1 = dbembed_wall(root, url, "--workers", "1")
    noop, _ = dbembed_wall(root, url, "--workers", "1")
    edit_one_row(next(root.rglob("f00003.db")), "events", "message")
    edit, s3 = dbembed_wall(root, url, "--workers", "1")
    out.append(
        f"first run {first:.1f} s ({s1['files_ok']} files ok, {s1['texts_embedded']} texts embedded, "
        f"stage_s {json.dumps({k: round(v, 1) for k, v in (s1.get('stage_s') or {}).items()})}); "
        f"no-op rerun {noop:.2f} s; one-file edit {edit:.2f} s ({s3['texts_embedded']} embedded)"
    )


def warm_up(work: Path, pg: PgServer) -> str:
    """Export and auto decision once (as after installation); returns the chosen runtime."""
    d = work / "warm"
    make_short_db(d / "w.db", 50)
    _, s = dbembed_wall(d, pg.new_database("warm"))
    return str(s.get("runtime"))


def main() -> None:
    from dbembed.embed.backends import cpu_description

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=3500)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--small-files", type=int, default=20000)
    ap.add_argument("--only", nargs="*", default=["short", "backends", "efficiency", "small"])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    nightly.COMPETITOR_PYTHON = os.environ.get("BENCH_COMPETITOR_PYTHON", nightly.COMPETITOR_PYTHON)
    work = Path(tempfile.mkdtemp(prefix="dbembed-speed-"))
    pg = PgServer(work)
    out = [f"machine: {cpu_description()}; shared with other jobs (figures are side by side in one run)"]
    try:
        t0 = time.perf_counter()
        out.append(f"auto picked: {warm_up(work, pg)} (decision and export made before timing)")
        short: dict[str, Any] = {}
        if "short" in args.only:
            short = short_section(work, pg, args.rows, args.rounds, out)
        texts = [d.text for d in short.get("docs", [])] or [
            d.text
            for d in row_documents(sqlite_files(make_short_db(work / "s2" / "t.db", args.rows).parent))[0]
        ]
        if "backends" in args.only:
            backends_section(texts, out)
        if "efficiency" in args.only and short:
            efficiency_section(short["summaries"], texts, out)
        if "small" in args.only:
            small_section(work, pg, args.small_files, out)
        out.append(f"(benchmark took {time.perf_counter() - t0:.0f} s)")
    finally:
        text = "\n".join(out)
        print(text)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(f"\n## Speed on a CPU (benchmarks/bench_speed.py)\n\n```\n{text}\n```\n")
        pg.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
