"""The tools of the speed section, each run as the process a user starts (wall time).

* dbembed: ``dbembed run`` (full, no-op rerun, rerun after a one-row edit), fresh database per round;
* ``llm embed-multi`` (sentence-transformers plugin) over the same documents pre-merged into one
  table (its best case: one process, one model load); rerun = same call again (llm skips ids whose
  content hash it has stored), edit = the same documents with the edited row's new text;
* LangChain ``PGVector.add_texts``: full run only (it has no change detection: a rerun adds
  everything again).
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import bench_nightly as nightly
from benchmarks.common import PgServer, dbembed_cli
from benchmarks.docs import Doc, row_documents, sqlite_files
from benchmarks.speed_data import edit_one_row, find_editable

KINDS = ("full", "noop", "edit")


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


@dataclass
class Workload:
    """One data set, its documents, and every tool's times (tool -> kind -> seconds per round)."""

    name: str
    root: Path  # pristine data; every dbembed round works on its own copy
    docs: list[Doc] = field(default_factory=list)
    times: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    encode_s: dict[str, list[float]] = field(default_factory=dict)  # tool label -> one-call seconds
    target: tuple[Path, str, str, int] | None = None  # the row the edit changes (find_editable)

    def __post_init__(self) -> None:
        self.docs, _ = row_documents(sqlite_files(self.root))
        self.target = find_editable(self.root)

    def edit(self, tree: Path) -> Path:
        """Edit the target row in ``tree`` (a copy of ``root``); returns the edited file."""
        assert self.target is not None
        rel, table, column, key = self.target
        edit_one_row(tree / rel, table, column, key)
        return tree / rel

    def rec(self, tool: str, kind: str, seconds: float) -> None:
        self.times.setdefault(tool, {}).setdefault(kind, []).append(seconds)

    def median(self, tool: str, kind: str) -> float:
        return med(self.times.get(tool, {}).get(kind, []))


def dbembed_wall(root: Path, url: str, *extra: str) -> tuple[float, dict[str, Any]]:
    p = dbembed_cli(
        ["run", str(root), "--database-url", url, "--settle", "0", "--json", "--no-sidecar", *extra],
        timeout=3600,
    )
    if p.rc != 0:
        raise RuntimeError(f"dbembed run failed ({p.rc}): {p.tail()}")
    return p.seconds, p.json()


class OneCall:
    """In-process providers, one per runtime, that embed a list of texts in one call (the model's speed).

    Kept loaded for the whole section, so each timing is one ``embed_documents`` call right after
    the dbembed run it is compared with (side by side, under the same load)."""

    def __init__(self) -> None:
        self._providers: dict[str, Any] = {}

    def seconds(self, runtime: str, texts: list[str]) -> float:
        if runtime not in self._providers:
            from dbembed.config import Settings
            from dbembed.embed.backends import Runtime
            from dbembed.embed.local import bundled_model_path
            from dbembed.embed.local_factory import build

            backend, precision = runtime.split()
            md = bundled_model_path()
            provider = build(md, Settings(), "cpu", Runtime(backend, precision), None)
            provider.embed_documents(texts[:64])  # warm-up
            self._providers[runtime] = provider
        t = time.perf_counter()
        self._providers[runtime].embed_documents(texts)
        return time.perf_counter() - t

    def close(self) -> None:
        for p in self._providers.values():
            p.close()
        self._providers.clear()


def run_dbembed(
    w: Workload, work: Path, pg: PgServer, label: str, extra: tuple[str, ...], r: int, one: OneCall | None
) -> None:
    tree = work / f"{w.name}-{r}-{label.replace(' ', '_').strip('()')}"
    shutil.copytree(w.root, tree)
    url = pg.new_database("sp")
    s, summ = dbembed_wall(tree, url, *extra)
    w.rec(label, "full", s)
    w.summaries.append({"label": label, **summ})
    if one is not None and summ.get("runtime"):
        texts = list(dict.fromkeys(d.text for d in w.docs))
        w.encode_s.setdefault(label, []).append(one.seconds(str(summ["runtime"]), texts))
    s, summ_noop = dbembed_wall(tree, url, *extra)
    w.rec(label, "noop", s)
    w.edit(tree)
    s, summ_edit = dbembed_wall(tree, url, *extra)
    w.rec(label, "edit", s)
    if summ_noop.get("texts_embedded") or summ_edit.get("texts_embedded") != 1:
        w.notes.append(
            f"{label}: no-op rerun embedded {summ_noop.get('texts_embedded')}, "
            f"one-row edit embedded {summ_edit.get('texts_embedded')} texts"
        )
    shutil.rmtree(tree, ignore_errors=True)


def run_llm(w: Workload, work: Path, r: int) -> None:
    lw = work / f"llm-{w.name}-{r}"
    lw.mkdir()
    w.rec("llm embed-multi", "full", nightly.llm_day(w.docs, lw))
    w.rec("llm embed-multi", "noop", nightly.llm_day(w.docs, lw))
    assert w.target is not None
    rel = w.target[0]
    copy = lw / "edited" / rel
    copy.parent.mkdir(parents=True)
    shutil.copy2(w.root / rel, copy)
    w.edit(lw / "edited")
    orig = str(w.root / rel)
    new_docs = [Doc(orig, d.table, d.key, d.text) for d in row_documents([copy])[0]]
    docs = [d for d in w.docs if d.file != orig] + new_docs
    w.rec("llm embed-multi", "edit", nightly.llm_day(docs, lw))
    shutil.rmtree(lw, ignore_errors=True)


def run_langchain(w: Workload, work: Path, pg: PgServer, r: int) -> None:
    lc = work / f"lc-{w.name}-{r}"
    lc.mkdir()
    w.rec("LangChain PGVector", "full", nightly.langchain_day(w.docs, pg.new_database("lc"), lc))
    shutil.rmtree(lc, ignore_errors=True)
