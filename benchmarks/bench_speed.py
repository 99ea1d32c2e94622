"""The ``speed`` section of ``python -m benchmarks.run``: fastest on a CPU with the same model.

    python -m benchmarks.run --only speed [--rounds 2] [--big-rounds 1] [--short-rows 3500]
        [--tree 500x40] [--small-files 20000]

One run, tools in turn, medians of the rounds, whole processes (Python start, imports, model load,
work); the machine's CPU flags head the output.  Parts:

* workloads: a generated single-table file of short texts, the generated tree (20,000 rows) and
  20,000 one-row files (50 distinct texts): full run, no-op rerun and one-row edit of dbembed
  (default ``auto`` runtime; on the short texts also ``--backend torch --precision fp32``, the
  runtime before the inference backends), ``llm embed-multi`` and LangChain ``PGVector``
  (``benchmarks/speed_tools.py``);
* runtimes: every runtime available here on the short-text documents, in-process: seconds,
  speed-up and min/mean cosine to torch fp32, plus int8 (OpenVINO + NNCF) with its search quality
  (``benchmarks/speed_int8.py``);
* efficiency: dbembed's embed stage (``stage_s.embed``) / one in-process ``embed_documents`` call over
  the same distinct texts with the same runtime, timed right after each dbembed full run.

The OpenVINO export and the ``auto`` decision are made once before timing, as after installation.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import bench_nightly as nightly
from benchmarks.common import PgServer, Results
from benchmarks.speed_data import make_short_db, make_small_files, make_tree
from benchmarks.speed_tools import OneCall, Workload, dbembed_wall, med, run_dbembed, run_langchain, run_llm

VARIANTS = {
    "auto": ("dbembed (auto)", ()),
    "torch-fp32": ("dbembed (torch fp32)", ("--backend", "torch", "--precision", "fp32")),
    "openvino-fp32": ("dbembed (openvino fp32)", ("--backend", "openvino", "--precision", "fp32")),
}
AUTO = dict([VARIANTS["auto"]])


class Speed:
    """Collects the section's output lines (printed as they come) and its figures."""

    def __init__(self, res: Results, work: Path, pg: PgServer, competitor_python: str) -> None:
        self.res, self.work, self.pg = res, work, pg
        self.lines: list[str] = []
        self.one = OneCall()
        nightly.COMPETITOR_PYTHON = competitor_python

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(f"  | {line}", flush=True)

    def guarded(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - one missing tool must not sink the section
            self.say(f"{what} not available: {type(exc).__name__}: {str(exc)[:300]}")
            if __import__("os").environ.get("BENCH_DEBUG"):
                traceback.print_exc()
            return None

    # -- workloads ------------------------------------------------------------------------
    def workload(
        self,
        w: Workload,
        rounds: int,
        dbembed_labels: dict[str, tuple[str, ...]],
        one: bool,
        peer_rounds: int | None = None,
    ) -> None:
        t0 = time.perf_counter()
        peer_rounds = rounds if peer_rounds is None else peer_rounds
        for r in range(max(rounds, peer_rounds)):
            for label, extra in dbembed_labels.items() if r < rounds else ():
                calls = self.one if one else None
                self.guarded(label, run_dbembed, w, self.work, self.pg, label, extra, r, calls)
            if r < peer_rounds:
                self.guarded("llm embed-multi", run_llm, w, self.work, r)
                self.guarded("LangChain PGVector", run_langchain, w, self.work, self.pg, r)
        distinct = len({d.text for d in w.docs})
        self.say(
            f"{w.name}: {len(w.docs)} row documents ({distinct} distinct); whole processes; median of "
            f"{rounds} round(s) (llm, LangChain: {peer_rounds}); {time.perf_counter() - t0:.0f} s"
        )
        self.say(f"{'tool':<24}{'full run s':>12}{'no-op s':>10}{'1-row edit s':>14}")
        for tool in w.times:
            self.say(
                f"{tool:<24}{w.median(tool, 'full'):>12.2f}{w.median(tool, 'noop'):>10.2f}"
                f"{w.median(tool, 'edit'):>14.2f}"
            )
            for kind in ("full", "noop", "edit"):
                if w.times[tool].get(kind):
                    self.res.add(f"speed {w.name}", f"{tool} {kind}", w.median(tool, kind), "s")
        for note in w.notes:
            self.say(f"note: {note}")
        ours = w.median("dbembed (auto)", "full")
        peers = {t: w.median(t, "full") for t in ("llm embed-multi", "LangChain PGVector") if w.times.get(t)}
        if peers and ours == ours:
            fastest = min(peers, key=lambda t: peers[t])
            ratio = ours / peers[fastest]
            self.say(f"dbembed full run / fastest peer ({fastest}): {ratio:.2f}")
            self.res.ratio(f"{w.name}: dbembed full run / fastest peer", ratio, 0.6, "<=", fastest)
        if ours == ours:
            edit = w.median("dbembed (auto)", "edit") / ours
            self.say(f"dbembed one-row edit / full run: {edit:.3f}")
            self.res.ratio(f"{w.name}: dbembed one-row edit / full run", edit, 0.1, "<=")
        stages = [s.get("stage_s") for s in w.summaries if s["label"] == "dbembed (auto)"]
        if stages and stages[0]:
            self.say(
                "dbembed (auto) first full run stage_s: "
                + ", ".join(f"{k} {v:.1f}" for k, v in stages[0].items())
            )

    def efficiency(self, w: Workload) -> None:
        """Embed stage vs one call, per runtime, each pair measured back to back."""
        for label, calls in w.encode_s.items():
            runs = [s for s in w.summaries if s["label"] == label and s.get("stage_s")]
            stage = med([s["stage_s"]["embed"] for s in runs])
            call = med(calls)
            runtime = runs[0].get("runtime") if runs else "?"
            embedded = runs[0].get("texts_embedded") if runs else "?"
            ratio = call / stage if stage else float("nan")
            self.say(
                f"embed stage efficiency, {label} ({runtime}): one call over {len({d.text for d in w.docs})} "
                f"distinct texts {call:.2f} s; dbembed embed stage {stage:.2f} s ({embedded} texts); "
                f"ratio {ratio:.2f} (medians of {len(calls)})"
            )
            self.res.ratio(
                f"embed stage / one call ({runtime})", ratio, 0.95, ">=", "one call time / stage time"
            )

    # -- runtimes ---------------------------------------------------------------------------
    def runtimes(self, texts: list[str]) -> None:
        from dbembed.config import Settings
        from dbembed.embed.backends import measure_runtimes
        from dbembed.embed.local import bundled_model_path
        from dbembed.embed.local_factory import build

        md = bundled_model_path()
        rows = measure_runtimes(
            md, "cpu", lambda rt: build(md, Settings(), "cpu", rt, None), rounds=2, texts=texts
        )
        ref = next(
            (
                r["seconds"]
                for r in rows
                if r.get("seconds") and (r["backend"], r["precision"]) == ("torch", "fp32")
            ),
            None,
        )
        self.say(
            f"runtimes on the same {len(texts)} documents (in-process, interleaved, best of 2 after a warm-up):"
        )
        self.say(f"{'runtime':<18}{'seconds':>9}{'speed-up':>10}{'min cos':>10}{'mean cos':>10}")
        for r in rows:
            name = f"{r['backend']} {r['precision']}"
            if "error" in r or "seconds" not in r:
                self.say(f"{name:<18} error: {r.get('error')}")
                continue
            up = (ref or 0) / r["seconds"]
            self.say(
                f"{name:<18}{r['seconds']:>9.2f}{up:>9.2f}x{r['min_cosine']:>10.5f}{r['mean_cosine']:>10.5f}"
            )
            self.res.add(
                "speed runtimes", f"{name} speed-up vs torch fp32", up, "x", f"min cos {r['min_cosine']:.5f}"
            )
            if name == "openvino fp32":
                self.res.ratio("no-bf16 choice (openvino fp32) / torch fp32 speed", up, 1.0, ">=")

    def close(self) -> None:
        self.one.close()


def speed(
    res: Results,
    work: Path,
    pg: PgServer,
    competitor_python: str,
    *,
    short_rows: int = 3500,
    rounds: int = 2,
    big_rounds: int = 1,
    tree: tuple[int, int] = (500, 40),
    small_files: int = 20000,
    peer_rounds: int | None = None,
    variants: tuple[str, ...] | list[str] = ("auto", "torch-fp32"),
    runtime_docs: int = 0,
    int8_rows: int = 500,
) -> list[str]:
    """Run every part; returns the output lines (also stored as ``res.facts['speed output']``)."""
    from dbembed.embed.backends import cpu_description

    sp = Speed(res, work, pg, competitor_python)
    sp.say(f"machine: {cpu_description()}")
    t0 = time.perf_counter()
    try:
        warm = work / "speed-warm"
        make_short_db(warm / "w.db", 50)
        _, summ = dbembed_wall(warm, pg.new_database("warm"))
        sp.say(f"auto picked: {summ.get('runtime')} (decision and export made before timing)")
        short = Workload("short texts", make_short_db(work / "speed-short" / "tracks.db", short_rows).parent)
        labels = dict(VARIANTS[v] for v in ("auto", *variants))
        sp.workload(short, rounds, labels, one=True, peer_rounds=peer_rounds)
        sp.efficiency(short)
        sp.close()
        texts = [d.text for d in short.docs][: runtime_docs or None]
        sp.guarded("runtimes", lambda: sp.runtimes(texts))
        sp.guarded(
            "tree",
            lambda: sp.workload(
                Workload(
                    f"{tree[0] * tree[1]}-row tree ({tree[0]} files)", make_tree(work / "speed-tree", *tree)
                ),
                big_rounds,
                AUTO,
                one=False,
                peer_rounds=min(big_rounds, peer_rounds if peer_rounds is not None else big_rounds),
            ),
        )
        if small_files:
            t = time.perf_counter()
            root = make_small_files(work / "speed-small", small_files)
            sp.say(
                f"{small_files} one-row files made in {time.perf_counter() - t:.0f} s; dbembed with one worker (default)"
            )
            sp.guarded(
                "small files",
                lambda: sp.workload(
                    Workload(f"{small_files} one-row files", root),
                    big_rounds,
                    AUTO,
                    one=False,
                    peer_rounds=min(big_rounds, peer_rounds if peer_rounds is not None else big_rounds),
                ),
            )
        if int8_rows:  # last: slow, and only a verdict
            sp.guarded("int8", lambda: _int8(sp, texts, int8_rows))
    finally:
        sp.close()
        sp.say(f"(speed section took {time.perf_counter() - t0:.0f} s)")
        res.facts["speed output"] = "\n".join(sp.lines)
    return sp.lines


def _int8(sp: Speed, texts: list[str], rows: int) -> None:
    from benchmarks.speed_int8 import int8_quality

    for line in int8_quality(sp.res, sp.work, texts, rows=rows):
        sp.say(line)
