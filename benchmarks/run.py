"""One command for every benchmark: ``python -m benchmarks.run [--long] [--only SECTION ...]``.

Generates the data (``dbembed.generate``), runs each section side by side on this machine,
prints the ratios table and writes ``benchmarks/results/<date>-<machine>.md``.  A section
that cannot run (tool missing, offline, dbembed pipeline not landed yet) is reported as
"not available" with its reason; nothing is filled in by hand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks import bench_competitors as comp
from benchmarks import bench_dbembed as dbe
from benchmarks import bench_formats, bench_pipeline, bench_quality, bench_search
from benchmarks.common import REPO, PgServer, Results, Unavailable, machine_name
from benchmarks.docs import row_documents, sqlite_files
from benchmarks.report import render_markdown, render_table

SECTIONS = (
    "model",
    "langchain",
    "llm",
    "dbembed",
    "pipeline",
    "duplicates",
    "workers",
    "search",
    "quality",
    "formats",
    "memory",
    "speed",
)
DEFAULT_COMPETITOR_PYTHON = "/tmp/venv-bench/bin/python"


_REPORT: Path | None = None  # the results file, rewritten after every section


def _write(res: Results) -> None:
    _headline_ratios(res)
    if _REPORT is not None:
        _REPORT.parent.mkdir(parents=True, exist_ok=True)
        _REPORT.write_text(render_markdown(res), encoding="utf-8")


def _guard(res: Results, section: str, fn: Callable[[], object]) -> object:
    """Run one section; failures become a "not available" line with the reason.

    The results file is rewritten after each section, so a run cut short keeps what it measured.
    """
    print(f"== {section}", flush=True)
    t0 = time.perf_counter()
    try:
        return fn()
    except Unavailable as exc:
        res.skip(section, str(exc))
    except Exception as exc:  # noqa: BLE001 - a benchmark section must not sink the others
        res.skip(section, f"{type(exc).__name__}: {exc}")
        if os.environ.get("BENCH_DEBUG"):
            traceback.print_exc()
    finally:
        print(f"   ({time.perf_counter() - t0:.1f}s)", flush=True)
        _write(res)
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--long", action="store_true", help="Bigger data, 1M-vector search, 1 GB memory test.")
    ap.add_argument("--only", nargs="*", choices=SECTIONS, help="Run only these sections.")
    ap.add_argument(
        "--competitor-python",
        default=os.environ.get("BENCH_COMPETITOR_PYTHON", DEFAULT_COMPETITOR_PYTHON),
        help="Python of the venv with langchain-postgres and llm (see README).",
    )
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--keep", action="store_true", help="Keep the scratch directory.")
    ap.add_argument("--tag", help="Results file suffix: <date>-<machine>-<tag>.md (e.g. formats).")
    sp = ap.add_argument_group("speed section")
    sp.add_argument("--rounds", type=int, default=2, help="Rounds on the short-text file (medians).")
    sp.add_argument("--big-rounds", type=int, default=1, help="Rounds on the tree and the small files.")
    sp.add_argument("--short-rows", type=int, default=3500)
    sp.add_argument("--tree", default="500x40", help="FILESxROWS of the generated tree.")
    sp.add_argument("--small-files", type=int, default=20000, help="One-row files (0: skip).")
    sp.add_argument("--peer-rounds", type=int, help="Rounds of llm and LangChain (default: as dbembed).")
    sp.add_argument(
        "--variants", nargs="*", default=["auto", "torch-fp32"], choices=("auto", "torch-fp32", "openvino-fp32"),
        help="dbembed runtimes timed as whole processes on the short texts.",
    )  # fmt: skip
    sp.add_argument("--runtime-docs", type=int, default=0, help="Documents in the runtimes table (0: all).")
    sp.add_argument("--int8-rows", type=int, default=500, help="Rows per file (4 files) of the int8 data (0: skip).")
    args = ap.parse_args(argv)
    global _REPORT
    tag = ("-long" if args.long else "") + (f"-{args.tag}" if args.tag else "")
    _REPORT = args.out / f"{dt.date.today().isoformat()}-{machine_name()}{tag}.md"
    # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so the embedded server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    want = set(args.only or SECTIONS)
    long = args.long
    files, rows = (8, 1500) if long else (4, 250)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = Path(tempfile.mkdtemp(prefix="dbembed-bench-"))
    res = Results()
    started = time.perf_counter()
    res.facts.update(
        mode="long" if long else "default", python=sys.version.split()[0], cpus=os.cpu_count(),
        machine=platform.platform(), data=f"{files} files x {rows} rows, dup-share 0, ja-share 0.3",
        cpu=_cpu(),
    )  # fmt: skip
    print(f"scratch: {work}", flush=True)
    pg = PgServer(work)
    try:
        from dbembed.generate import generate

        root = work / "data"
        planted = work / "planted.json"
        generate(root, files=files, rows=rows, seed=1, dup_share=0.0, wal_share=0.25, planted=planted)
        docs, builder = row_documents(sqlite_files(root))
        res.facts["documents"] = f"{len(docs)} documents ({builder})"
        print(f"data: {files} files, {len(docs)} documents ({builder})", flush=True)

        vecs = None
        if want & {"model", "langchain", "search"}:
            vecs = _guard(res, "model", lambda: comp.raw_model(res, docs))
        if "langchain" in want:
            if vecs is None:
                res.skip("langchain", "needs the raw-model vectors (model section failed)")
            else:
                _guard(
                    res,
                    "langchain",
                    lambda: comp.langchain(res, docs, vecs, pg, args.competitor_python, work),
                )
        if "llm" in want:
            _guard(res, "llm", lambda: comp.llm_embed_multi(res, docs, args.competitor_python, work))

        url = None
        if "dbembed" in want:
            got = _guard(res, "dbembed", lambda: dbe.first_run(res, root, pg))
            if got:
                url, _first = got  # type: ignore[misc]
                _guard(res, "search quality", lambda: dbe.planted_hit_rate(res, url, planted, root))
        if "pipeline" in want:
            # Issues 2 and 3a/b: 20,000 rows over 500 files (the only section on data this large).
            _guard(res, "pipeline", lambda: bench_pipeline.pipeline(res, work, pg, files=500, rows=40))
        if "duplicates" in want:
            _guard(res, "duplicates", lambda: dbe.dup_heavy(res, work, pg, 4, 500 if not long else rows // 2))
        if "workers" in want:
            # Enough rows that each worker's model load (~5 s) does not dominate the run.
            wroot = root
            if not long:
                wroot = work / "workers-data"
                generate(wroot, files=8, rows=250, seed=4, dup_share=0.0, wal_share=0.0)
            _guard(res, "workers", lambda: dbe.worker_scaling(res, wroot, work, pg, (1, 2, 4)))
        if "search" in want:
            if vecs is None:
                res.skip("search", "needs the raw-model vectors as centres (model section failed)")
            else:
                for n in (100_000, 1_000_000) if long else (100_000,):
                    _guard(
                        res,
                        f"search {n // 1000}k",
                        lambda n=n: bench_search.hnsw_vs_exact(res, pg, vecs, n, (40, 100)),
                    )
        if "quality" in want:
            # Search quality per query type and mode (issue 12), then latency per mode at 100k chunks.
            qfiles, qrows = (16, 2000) if long else (8, 1000)
            got = _guard(res, "quality", lambda: bench_quality.quality(res, work, pg, files=qfiles, rows=qrows))
            if got:
                qurl, queries, _ = got  # type: ignore[misc]
                _guard(res, "search latency 100k", lambda: bench_quality.latency_100k(res, pg, qurl, queries))
        if "formats" in want:
            # Document formats: tokens, model time and search quality of each.
            ffiles, frows = (8, 1500) if long else (8, 400)
            _guard(res, "formats", lambda: bench_formats.formats(res, work, pg, files=ffiles, rows=frows))
        if "speed" in want:
            _guard(res, "speed", lambda: _speed(res, work, pg, args))
        if "memory" in want:
            sizes = (0.1, 1.0) if long else (0.01, 0.1)
            _guard(res, "memory", lambda: dbe.peak_memory(res, work, pg, sizes))
    finally:
        pg.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    res.facts["total_s"] = round(time.perf_counter() - started, 1)
    print()
    print(render_table(res))
    _write(res)
    print(f"\nwrote {_REPORT}")
    return 0


def _cpu() -> str:
    from dbembed.embed.backends import cpu_description

    return cpu_description()


def _speed(res: Results, work: Path, pg: PgServer, args: argparse.Namespace) -> None:
    from benchmarks.bench_speed import speed

    files, rows = (int(x) for x in args.tree.lower().split("x"))
    speed(
        res, work, pg, args.competitor_python, short_rows=args.short_rows, rounds=args.rounds,
        big_rounds=args.big_rounds, tree=(files, rows), small_files=args.small_files,
        peer_rounds=args.peer_rounds, variants=args.variants, runtime_docs=args.runtime_docs,
        int8_rows=args.int8_rows,
    )  # fmt: skip


def _headline_ratios(res: Results) -> None:
    """The per-issue ratios, computed only from figures measured above in this run."""
    dbe_rate = res.get("throughput", "dbembed run (end to end)")
    raw = res.get("throughput", "raw model")
    lc = res.get("throughput", "LangChain PGVector add_texts")
    llm = res.get("throughput", "llm embed-multi (minus startup)")
    first = [
        ("dbembed end-to-end / raw model (docs/s)", dbe_rate / raw if dbe_rate and raw else None, 0.9),
        ("dbembed / LangChain PGVector (docs/s)", dbe_rate / lc if dbe_rate and lc else None, 2.0),
        ("dbembed / llm embed-multi (docs/s)", dbe_rate / llm if dbe_rate and llm else None, 2.0),
    ]
    from benchmarks.common import Ratio

    names = {name for name, _, _ in first}
    res.ratios[:] = [Ratio(n, v, t, ">=") for n, v, t in first] + [
        r for r in res.ratios if r.name not in names
    ]


if __name__ == "__main__":
    sys.exit(main())
