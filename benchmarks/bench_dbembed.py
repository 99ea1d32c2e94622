"""dbembed itself, through its CLI (``dbembed run ... --json``) and library search.

Each figure here is measured on a fresh database unless it is about reruns.  Times are
the run's own ``seconds`` (model load -> discover -> read -> embed -> store -> HNSW; note
that ``dbembed.run.index`` starts its clock before loading the model, ~4-5 s here, while the
competitors' times exclude it) with the process wall time reported alongside.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common import PgServer, Results, Unavailable, copy_tree, dbembed_run
from dbembed.generate import generate


def first_run(res: Results, root: Path, pg: PgServer) -> tuple[str, dict[str, Any]]:
    url = pg.new_database("dbe")
    s = dbembed_run(root, url)
    docs_s = s["chunks"] / s["seconds"] if s["seconds"] else None
    res.add(
        "throughput", "dbembed run (end to end)", docs_s, "docs/s",
        f"{s['chunks']} chunks, {s['rows']} rows in {s['seconds']:.1f}s (process wall {s['_wall_s']:.1f}s)",
    )  # fmt: skip
    res.facts["dbembed_first"] = s
    return url, s


def dup_heavy(res: Results, work: Path, pg: PgServer, files: int, rows: int) -> None:
    """Cache on vs ``--no-cache`` on duplicate-heavy data.

    The generator's ``dup_share`` counts rows repeating a payload, not duplicate chunk texts
    (0.8 gives ~55% duplicate chunks, 1.0 ~73%), so 1.0 is used and the real share is reported."""
    root = work / "dup-heavy"
    generate(root, files=files, rows=rows, seed=5, dup_share=1.0, wal_share=0.0)
    on = dbembed_run(copy_tree(root, work / "dup-on"), pg.new_database("dupon"))
    off = dbembed_run(copy_tree(root, work / "dup-off"), pg.new_database("dupoff"), "--no-cache")
    dup = 1 - on["texts_embedded"] / max(1, on["chunks"])
    res.add("duplicates", "cache on (dup-share 1.0)", on["seconds"], "s", f"{on['texts_embedded']} embedded")
    res.add("duplicates", "cache off (--no-cache)", off["seconds"], "s", f"{off['texts_embedded']} embedded")
    # --no-cache embeds every chunk, duplicates included: the true no-dedup baseline.
    res.ratio(
        "duplicate-heavy: time cache off / cache on", off["seconds"] / on["seconds"], 2.0, ">=",
        f"{on['chunks']} chunks, {dup:.0%} duplicate texts; texts embedded: cache on {on['texts_embedded']}, "
        f"off {off['texts_embedded']}",
    )  # fmt: skip


def worker_scaling(res: Results, root: Path, work: Path, pg: PgServer, counts: tuple[int, ...]) -> None:
    base = None
    for n in counts:
        s = dbembed_run(copy_tree(root, work / f"workers-{n}"), pg.new_database(f"w{n}"), "--workers", str(n))
        rate = s["chunks"] / s["seconds"]
        base = base or rate
        res.add(
            "workers",
            f"--workers {n}",
            rate,
            "docs/s",
            f"{rate / base:.2f}x vs 1 worker, {s['seconds']:.1f}s",
        )


def planted_hit_rate(res: Results, url: str, planted: Path, root: Path) -> None:
    try:
        import dbembed.service
    except ImportError as exc:
        raise Unavailable(f"dbembed.service not importable: {exc}") from exc
    # The English paraphrase pairs (the series this section has always reported); the other query
    # types are measured per mode by bench_quality.
    pairs = [p for p in json.loads(planted.read_text(encoding="utf-8")) if p.get("lang", "en") == "en"]
    hits, rr = 0, 0.0
    for pair in pairs:
        want = (str((root / pair["file"]).resolve()), pair["table"], pair["row_key"])
        found = dbembed.search(pair["query"], k=10, database_url=url)
        for rank, h in enumerate(found, 1):
            if (str(Path(h.path).resolve()), h.table, h.row_key) == want:
                hits += 1
                rr += 1 / rank
                break
    res.add("search quality", "planted hit rate @10", hits / len(pairs), "", f"{hits}/{len(pairs)} queries")
    res.add("search quality", "planted MRR@10", rr / len(pairs), "")


def peak_memory(res: Results, work: Path, pg: PgServer, sizes_gb: tuple[float, ...]) -> None:
    """Peak RSS of ``dbembed run`` (process tree) on one big file per size: it should stay flat."""
    peaks = []
    for gb in sizes_gb:
        root = work / f"big-{gb:g}"
        # Mostly-repeated messages with a blob per row: the file is big, the distinct text
        # small, so the run measures reading/storing memory rather than embedding time.
        rep = generate(root, files=0, big_gb=gb, big_row_kb=16, big_dup_share=0.97, seed=9)
        s = dbembed_run(root, pg.new_database("mem"), poll_rss=True)
        peaks.append(s["_peak_rss_mb"])
        res.add(
            "memory", f"peak RSS, one {rep.bytes / 1e6:,.0f} MB file ({s['rows']:,} rows)", s["_peak_rss_mb"], "MB",
            f"run {s['seconds']:.1f}s",
        )  # fmt: skip
    if len(peaks) == 2 and peaks[0]:
        res.ratio(
            f"peak RSS {sizes_gb[1]:g} GB file / {sizes_gb[0]:g} GB file", peaks[1] / peaks[0], 1.25, "<=",
            f"{peaks[0]:.0f} MB -> {peaks[1]:.0f} MB for {sizes_gb[1] / sizes_gb[0]:.0f}x the data",
        )  # fmt: skip
