"""int8 quality and speed: is an int8 model good enough to offer?

The packaged model's OpenVINO export (``dbembed.embed.backends.ensure_export``) is quantized offline
with NNCF post-training quantization (``nncf.quantize``, transformer preset), calibrated on row
documents of our own generator (seed 5, no overlap with the evaluation data).  Evaluation, in
process, exact search (cosine, numpy): the labelled queries of ``dbembed.generate --planted``
(seed 11, 4 files x 500 rows, 30% Japanese) against that data's row documents, once with the
fp32 model and once with the int8 model:

* recall@10 of int8 search against fp32 search (|top10 int8 & top10 fp32| / 10, mean over queries);
* planted-pair hit@10 for both (the query's planted row in the top 10);
* time over the short-text documents, fp32 vs int8 (same OpenVINO runtime, same inference hint).

Weight-only int8 comes in variants (``--weights``: NNCF modes, optionally keeping some op types'
weights in fp32).  The ``speed`` section of ``python -m benchmarks.run`` runs this last; alone::

    python -m benchmarks.speed_int8 [--files 4] [--rows 500] [--short-docs N]
        [--weights int8_asym,int8_sym,int8_asym:skip=Gather] [--no-full-int8]
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Results
from benchmarks.docs import row_documents, sqlite_files

K = 10


def quantize(export: Path, out: Path, calib_texts: list[str]) -> Path:
    """An int8 copy of the OpenVINO export ``export`` at ``out`` (same layout), via NNCF."""
    import nncf
    import openvino as ov
    from tokenizers import Tokenizer

    shutil.copytree(export, out, ignore=shutil.ignore_patterns("openvino"))
    model = ov.Core().read_model(str(export / "openvino" / "openvino_model.xml"))
    tok = Tokenizer.from_file(str(export / "tokenizer.json"))
    tok.enable_truncation(max_length=256)
    names = {i.get_any_name() for i in model.inputs}

    def feed(text: str) -> dict[str, np.ndarray]:
        e = tok.encode(text)
        d = {"input_ids": np.array([e.ids]), "attention_mask": np.array([e.attention_mask])}
        if "token_type_ids" in names:
            d["token_type_ids"] = np.array([e.type_ids])
        return d

    q = nncf.quantize(
        model,
        nncf.Dataset(calib_texts, feed),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(calib_texts),
    )
    (out / "openvino").mkdir(parents=True, exist_ok=True)
    ov.save_model(q, str(out / "openvino" / "openvino_model.xml"))
    return out


def compress_weights(export: Path, out: Path, spec: str = "int8_asym") -> Path:
    """A weight-only copy of ``export`` at ``out`` (``nncf.compress_weights``): activations stay float.

    ``spec`` is an NNCF ``CompressWeightsMode`` value, then optionally ``:g<N>`` (group size N;
    NNCF refuses groups for the int8 modes) or ``:skip=<OpType>+<OpType>`` (weights of those ops
    stay float, e.g. ``Gather``: the embeddings; ``Gather+MatMul`` leaves nothing compressed, a
    control that must match fp32)."""
    import nncf
    import openvino as ov

    mode, *opts = spec.split(":")
    kwargs: dict[str, Any] = {"mode": nncf.CompressWeightsMode(mode)}
    for opt in opts:
        if opt.startswith("g"):
            kwargs["group_size"] = int(opt[1:])
        elif opt.startswith("skip="):
            kwargs["ignored_scope"] = nncf.IgnoredScope(types=opt[5:].split("+"))
        else:
            raise ValueError(f"unknown option {opt!r} in weight spec {spec!r}")
    shutil.copytree(export, out, ignore=shutil.ignore_patterns("openvino"))
    model = ov.Core().read_model(str(export / "openvino" / "openvino_model.xml"))
    (out / "openvino").mkdir(parents=True, exist_ok=True)
    ov.save_model(nncf.compress_weights(model, **kwargs), str(out / "openvino" / "openvino_model.xml"))
    return out


def _topk(corpus: np.ndarray, queries: np.ndarray) -> np.ndarray:
    scores = queries @ corpus.T
    return np.argsort(-scores, axis=1)[:, :K]


def int8_quality(
    res: Results,
    work: Path,
    short_texts: list[str],
    files: int = 4,
    rows: int = 500,
    weights: tuple[str, ...] = ("int8_asym",),
    full_int8: bool = True,
) -> list[str]:
    """Measure fp32 vs int8 variants; returns the output lines (see the module docstring).

    ``weights``: weight-only variants (``compress_weights`` specs); ``full_int8``: also the
    post-training quantization of weights and activations."""
    from benchmarks.bench_quality import labelled_queries
    from dbembed.embed.backends import cpu_has_bf16, ensure_export
    from dbembed.embed.local import bundled_model_path
    from dbembed.generate import generate

    t0 = time.perf_counter()
    calib_root, eval_root = work / "int8-calib", work / "int8-eval"
    generate(calib_root, files=2, rows=150, seed=5, dup_share=0.0, wal_share=0.0)
    planted = work / "int8-planted.json"
    generate(eval_root, files=files, rows=rows, seed=11, dup_share=0.0, wal_share=0.0, planted=planted)
    calib = [d.text for d in row_documents(sqlite_files(calib_root))[0]][:200]
    docs, _ = row_documents(sqlite_files(eval_root))
    queries = [q for q in labelled_queries(planted) if q.want is not None]
    export = ensure_export(bundled_model_path(), "openvino")
    models: list[tuple[str, Path]] = []
    if full_int8:
        models.append(("int8", quantize(export, work / "int8-export", calib)))
    for spec in weights:
        name = "int8 weights only" if spec == "int8_asym" else f"weights {spec}"
        name += " (control)" if "MatMul" in spec else ""
        dest = work / ("int8-weights-" + "".join(c if c.isalnum() else "-" for c in spec))
        models.append((name, compress_weights(export, dest, spec)))
    quant_s = time.perf_counter() - t0
    lines = [
        f"int8 (OpenVINO + NNCF: int8 = post-training quantization of weights and activations, calibrated on "
        f"{len(calib)} generated documents; weights only = compress_weights INT8_ASYM; prepared in {quant_s:.0f} s):"
        f" {len(docs)} documents, {len(queries)} labelled queries, exact search"
    ]
    hints = ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]
    variants = [("fp32", export, "fp32")] + ([("bf16 hint", export, "bf16")] if "bf16" in hints else [])
    variants += [
        (name if hint == "fp32" else f"{name} + bf16 hint", path, hint)
        for hint in hints
        for name, path in models
    ]
    out = _evaluate(variants, docs, queries, short_texts)
    return lines + _report(res, out)


def _evaluate(
    variants: list[tuple[str, Path, str]], docs: list[Any], queries: list[Any], short_texts: list[str]
) -> dict[str, dict[str, Any]]:
    from dbembed.embed.openvino_runtime import OpenVINOProvider

    index = {(str(Path(d.file).resolve()), d.table, d.key): i for i, d in enumerate(docs)}
    want = [index.get(q.want) for q in queries]
    out: dict[str, dict[str, Any]] = {}
    for name, path, prec in variants:
        p = OpenVINOProvider(path, model_id="int8-probe", precision=prec)
        p.embed_documents(short_texts[:64])
        t = time.perf_counter()
        p.embed_documents(short_texts)
        secs = time.perf_counter() - t
        corpus = p.embed_documents([d.text for d in docs])
        qv = np.stack([p.embed_query(q.text) for q in queries])
        p.close()
        top = _topk(corpus, qv)
        hit = float(np.mean([w is not None and w in row for w, row in zip(want, top, strict=True)]))
        out[name] = {"top": top, "secs": secs, "hit": hit}
    return out


def _report(res: Results, out: dict[str, dict[str, Any]]) -> list[str]:
    ref = out["fp32"]
    lines = [
        f"{'model (inference hint)':<40}{'short texts s':>14}{'speed-up':>10}{'recall@10 vs fp32':>19}{'planted hit@10':>16}"
    ]
    for name, o in out.items():
        recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(o["top"], ref["top"], strict=True)]))
        o["recall"] = recall
        lines.append(
            f"{name:<40}{o['secs']:>14.2f}{ref['secs'] / o['secs']:>9.2f}x{recall:>19.3f}{o['hit']:>16.3f}"
        )
        res.add("speed int8", f"openvino {name}: recall@10 vs fp32", recall, "", f"hit@10 {o['hit']:.3f}")
    best = max(  # controls (nothing compressed) do not count
        (o["recall"] for n, o in out.items() if n not in ("fp32", "bf16 hint") and "(control)" not in n),
        default=None,
    )
    res.ratio("int8: recall@10 vs fp32 search", best, 0.95, ">=", "OpenVINO + NNCF, best int8 variant")
    verdict = (
        "offer --precision int8" if best is not None and best >= 0.95 else "keep refusing --precision int8"
    )
    lines.append(f"int8 verdict: recall@10 {best if best is not None else float('nan'):.3f} -> {verdict}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.speed_int8``: only the int8 part of the speed section, at full size."""
    import argparse
    import tempfile

    from benchmarks.speed_data import make_short_db
    from dbembed.embed.backends import cpu_description

    ap = argparse.ArgumentParser(prog="python -m benchmarks.speed_int8", description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=4, help="evaluation files (default 4)")
    ap.add_argument("--rows", type=int, default=500, help="rows per evaluation file (default 500)")
    ap.add_argument("--short-rows", type=int, default=3500, help="short-text rows to time (default 3500)")
    ap.add_argument("--short-docs", type=int, default=0, help="time only the first N short texts (0: all)")
    ap.add_argument(
        "--weights",
        default="int8_asym",
        help="comma-separated weight-only variants: NNCF modes, optionally :g<group> (default int8_asym)",
    )
    ap.add_argument("--no-full-int8", action="store_true", help="skip weights+activations quantization")
    ap.add_argument("--work", type=Path, default=None, help="work directory (default: a temporary one)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dbembed-int8-") as tmp:
        work = args.work or Path(tmp)
        short = make_short_db(work / "speed-short" / "tracks.db", args.short_rows)
        texts = [d.text for d in row_documents([short])[0]][: args.short_docs or None]
        print(f"machine: {cpu_description()}", flush=True)
        t0 = time.perf_counter()
        lines = int8_quality(
            Results(),
            work,
            texts,
            files=args.files,
            rows=args.rows,
            weights=tuple(w.strip() for w in args.weights.split(",") if w.strip()),
            full_int8=not args.no_full_int8,
        )
        lines.append(f"(int8 part took {time.perf_counter() - t0:.0f} s; {len(texts)} short texts timed)")
        print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
