"""Document formats: what each costs (tokens, model time) and what it buys (search quality).

``document_format`` (``dbembed.text.document``) lays out a row's text columns as
``table-columns`` (``tickets | subject: ... | description: ...``), ``columns``
(``subject: ... | description: ...``) or ``values`` (``... | ...``).  The same generated files
(30% Japanese rows) are indexed once per format, each into its own database, with the default
model (all-MiniLM-L6-v2, torch fp32: the reference runtime).

Quality, per format and search mode (vector, hybrid = the default, lexical):

- planted pairs (``generate/planted.py``): hit@10 and MRR@10 of English queries on English rows
  (paraphrase + exact phrase) and of Japanese queries on Japanese rows, apart;
- a labelled set with many relevant rows per query, built from the generator: the generator's
  templates write item names (``vocab.ITEMS_EN`` / ``ITEMS_JA``) into chat messages, tickets,
  reviews and order notes, and also into product listings and other tables.  A query asks for
  one item in one kind of row ("customer review of the desk lamp", "デスクライトの商品レビュー");
  its relevant rows are the rows of that table whose text columns name the item (found by
  reading the generated files).  recall@10 = relevant rows in the top 10 / min(10, relevant).
  This is where labels could earn their tokens: the same item appears in every table, and only
  the table's kind of text (or its name, in ``table-columns``) tells them apart.

Cost: tokens per document over every row (the model's tokenizer, special tokens excluded) and
model time: ``embed_documents`` over the same ``sample`` rows in each format, formats interleaved,
several rounds, medians, one loaded model.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.bench_quality import Query, labelled_queries
from benchmarks.common import PgServer, Results, Unavailable, dbembed_run
from benchmarks.docs import sqlite_files

FORMATS = ("table-columns", "columns", "values")
MODES = ("vector", "hybrid", "lexical")
K = 10
MODEL = "local:all-MiniLM-L6-v2"
RUNTIME = {"backend": "torch", "precision": "fp32"}
# table -> (columns whose text names the item, English query, Japanese query)
INTENTS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "messages": (("body",), "team chat message about the {item}", "{item}についてのチャットメッセージ"),
    "tickets": (("subject", "description"), "customer support ticket about the {item}", "{item}についてのサポートへの問い合わせ"),
    "product_reviews": (("title", "review_text"), "customer review of the {item}", "{item}の商品レビュー"),
    "orders": (("notes",), "delivery note on an order containing a {item}", "{item}が入った注文の配送メモ"),
}  # fmt: skip
PLANTED_GROUPS = {"en": ("paraphrase", "exact_phrase"), "ja": ("ja_paraphrase", "ja_exact_phrase")}

RowId = tuple[str, str, str]  # (resolved path, table, row_key)


@dataclass(frozen=True)
class Labelled:
    lang: str
    table: str
    text: str
    relevant: frozenset[RowId]


def labelled_set(root: Path) -> list[Labelled]:
    """Queries with every relevant row, read from the generated files (see the module docstring)."""
    from dbembed.generate import vocab

    mentions: dict[tuple[str, str], set[RowId]] = {}  # (table, item) -> rows naming it
    items = [*vocab.ITEMS_EN, *vocab.ITEMS_JA]
    for path in sqlite_files(root):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for table, (cols, _, _) in INTENTS.items():
                if table not in have:
                    continue
                sel = ", ".join(f"coalesce({c}, '')" for c in cols)
                for rowid, *texts in conn.execute(f"SELECT rowid, {sel} FROM {table}"):
                    text = " ".join(texts).casefold()
                    for item in items:
                        if item.casefold() in text:
                            mentions.setdefault((table, item), set()).add((str(path.resolve()), table, str(rowid)))
        finally:
            conn.close()
    out = []
    for lang, names in (("en", vocab.ITEMS_EN), ("ja", vocab.ITEMS_JA)):
        for table, (_, en, ja) in INTENTS.items():
            for item in names:
                rel = mentions.get((table, item))
                if rel:
                    out.append(Labelled(lang, table, (en if lang == "en" else ja).format(item=item), frozenset(rel)))
    return out


def _ranked_rows(hits: list[Any]) -> list[RowId]:
    """Distinct rows in hit order (a long row may fill several places with its chunks)."""
    out: list[RowId] = []
    for h in hits:
        rid = (str(Path(h.path).resolve()), h.table, h.row_key)
        if rid not in out:
            out.append(rid)
    return out


def _search(url: str, text: str, mode: str) -> list[RowId]:
    import dbembed

    return _ranked_rows(dbembed.search(text, K, database_url=url, model=MODEL, mode=mode, **RUNTIME))


def evaluate(url: str, planted: list[Query], labelled: list[Labelled]) -> dict[str, float]:
    """Metric name (e.g. ``"planted en hybrid hit"``, ``"labelled ja vector recall"``) -> value."""
    acc: dict[str, list[float]] = {}
    for mode in MODES:
        for lang, types in PLANTED_GROUPS.items():
            for q in (q for q in planted if q.type in types and q.want is not None):
                ranked = _search(url, q.text, mode)
                rank = ranked.index(q.want) + 1 if q.want in ranked else None
                acc.setdefault(f"planted {lang} {mode} hit", []).append(1.0 if rank else 0.0)
                acc.setdefault(f"planted {lang} {mode} mrr", []).append(1.0 / rank if rank else 0.0)
        for lq in labelled:
            ranked = _search(url, lq.text, mode)
            got = len(lq.relevant.intersection(ranked[:K]))
            acc.setdefault(f"labelled {lq.lang} {mode} recall", []).append(got / min(K, len(lq.relevant)))
    return {k: statistics.fmean(v) for k, v in acc.items()}


def documents(root: Path, fmt: str) -> list[str]:
    """Every row document of the files under ``root`` in format ``fmt``, as a run builds them."""
    from dbembed.config import load_settings
    from dbembed.read import SqliteSource
    from dbembed.text.document import row_document

    settings = load_settings(settle_s=0.0, document_format=fmt)
    out = []
    for path in sqlite_files(root):
        with SqliteSource(path, settings.sources) as src:
            for table in src.tables():
                for row in src.rows(table):
                    doc = row_document(table, row, fmt)
                    if doc:
                        out.append(doc)
    return out


def cost(res: Results, root: Path, rounds: int, sample: int) -> dict[str, dict[str, float]]:
    """Tokens per document and model time per format (interleaved rounds, medians)."""
    from dbembed.config import load_settings
    from dbembed.embed.offline import offline_profile
    from dbembed.embed.registry import get_provider

    settings = load_settings(model=MODEL, **RUNTIME)
    profile = offline_profile(settings)
    docs = {f: documents(root, f) for f in FORMATS}  # row by row: the same rows in every format
    step = max(1, len(docs["values"]) // sample)
    picked = {f: d[::step][:sample] for f, d in docs.items()}
    provider = get_provider(settings)
    provider.embed_documents(picked["values"][:64])  # warm-up: first-call allocations
    times: dict[str, list[float]] = {f: [] for f in FORMATS}
    for _ in range(rounds):
        for f in FORMATS:
            t0 = time.perf_counter()
            provider.embed_documents(picked[f])
            times[f].append(time.perf_counter() - t0)
    out = {}
    for f in FORMATS:
        tokens = [profile.count_tokens(d) for d in docs[f]]
        out[f] = {
            "docs": len(docs[f]),
            "tokens": statistics.fmean(tokens),
            "chars": statistics.fmean(len(d) for d in docs[f]),
            "model_s": statistics.median(times[f]),
        }
        res.add(
            "formats cost", f"{f}: tokens per document", out[f]["tokens"], "tokens",
            f"{len(docs[f])} row documents, {out[f]['chars']:.0f} characters each on average",
        )  # fmt: skip
        res.add(
            "formats cost", f"{f}: model time", out[f]["model_s"], "s",
            f"embed_documents over the same {len(picked[f])} rows, median of {rounds}: "
            + ", ".join(f"{t:.1f}" for t in times[f]),
        )  # fmt: skip
    return out


def formats(
    res: Results, work: Path, pg: PgServer, *, files: int, rows: int, rounds: int = 2, sample: int = 600
) -> None:
    """The ``formats`` section; see the module docstring."""
    from dbembed.generate import generate

    load_before = os.getloadavg()[1]
    root = work / "formats-data"
    planted_file = work / "formats-planted.json"
    generate(
        root, files=files, rows=rows, seed=11, dup_share=0.0, wal_share=0.0, ja_share=0.3, planted=planted_file
    )
    planted = labelled_queries(planted_file)
    labelled = labelled_set(root)
    if not labelled:
        raise Unavailable("the generated files name no item in the labelled tables")
    n_pl = {lang: sum(1 for q in planted if q.type in t) for lang, t in PLANTED_GROUPS.items()}
    n_lb = {lang: sum(1 for q in labelled if q.lang == lang) for lang in ("en", "ja")}
    rel = statistics.median(len(q.relevant) for q in labelled)
    res.facts["formats data"] = (
        f"{files} files x {rows} rows (30% Japanese); planted queries: {n_pl['en']} English, {n_pl['ja']} "
        f"Japanese; labelled queries: {n_lb['en']} English, {n_lb['ja']} Japanese, median {rel:.0f} "
        f"relevant rows each; model {MODEL} ({RUNTIME['backend']} {RUNTIME['precision']})"
    )
    quality: dict[str, dict[str, float]] = {}
    for fmt in FORMATS:
        url = pg.new_database("formats")
        summary = dbembed_run(
            root, url, "--model", MODEL, "--no-sidecar", "--document-format", fmt,
            "--backend", RUNTIME["backend"], "--precision", RUNTIME["precision"],
        )  # fmt: skip
        if summary.get("files_failed"):
            raise Unavailable(f"`dbembed run --document-format {fmt}` failed {summary['files_failed']} file(s)")
        embed_s = (summary.get("stage_s") or {}).get("embed")
        res.add(
            "formats index", f"{fmt}: index run", summary["seconds"], "s",
            f"{summary['chunks']} chunks; embed stage {embed_s if embed_s is None else f'{embed_s:.1f}'} s",
        )  # fmt: skip
        quality[fmt] = got = evaluate(url, planted, labelled)
        for name, value in got.items():
            res.add("formats quality", f"{fmt}: {name}", value, "")
    costs = cost(res, root, rounds, sample)
    res.facts["formats machine load"] = (
        f"5-minute load average {load_before:.1f} at the start, {os.getloadavg()[1]:.1f} at the end "
        f"on {os.cpu_count()} cores (other processes shared the machine: times are comparable only "
        "within this run)"
    )
    _table(res, quality, costs)
    _ratios(res, quality, costs)


def _table(res: Results, quality: dict[str, dict[str, float]], costs: dict[str, dict[str, float]]) -> None:
    base = costs["table-columns"]["model_s"]
    header = [
        "format", "mode", "planted EN hit@10", "planted EN MRR", "planted JA hit@10", "planted JA MRR",
        "labelled EN recall@10", "labelled JA recall@10", "tokens/doc", "model time",
    ]  # fmt: skip
    rows = []
    for fmt in FORMATS:
        q, c = quality[fmt], costs[fmt]
        for mode in MODES:
            rows.append([
                fmt, mode + (" (default)" if mode == "hybrid" else ""),
                f"{q[f'planted en {mode} hit']:.3f}", f"{q[f'planted en {mode} mrr']:.3f}",
                f"{q[f'planted ja {mode} hit']:.3f}", f"{q[f'planted ja {mode} mrr']:.3f}",
                f"{q[f'labelled en {mode} recall']:.3f}", f"{q[f'labelled ja {mode} recall']:.3f}",
                f"{c['tokens']:.1f}", f"{c['model_s']:.2f} s ({c['model_s'] / base:.2f}x)",
            ])  # fmt: skip
    res.tables["document formats"] = (header, rows)


def _ratios(res: Results, quality: dict[str, dict[str, float]], costs: dict[str, dict[str, float]]) -> None:
    base = costs["table-columns"]
    for fmt in FORMATS[1:]:
        c = costs[fmt]
        res.ratio(
            f"model time {fmt} / table-columns", c["model_s"] / base["model_s"], 1.0, "<=",
            f"tokens per document {c['tokens']:.1f} vs {base['tokens']:.1f}",
        )  # fmt: skip
        for metric in ("planted en hybrid hit", "planted ja hybrid hit", "labelled en hybrid recall",
                       "labelled ja hybrid recall"):  # fmt: skip
            res.ratio(
                f"{metric} (hybrid, the default mode): {fmt} - table-columns",
                quality[fmt][metric] - quality["table-columns"][metric], 0.0, ">=",
                f"{quality[fmt][metric]:.3f} vs {quality['table-columns'][metric]:.3f}",
            )  # fmt: skip
