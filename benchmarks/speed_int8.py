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


def compress_weights(export: Path, out: Path) -> Path:
    """A weight-only int8 copy (``nncf.compress_weights``, INT8_ASYM): activations stay float."""
    import nncf
    import openvino as ov

    shutil.copytree(export, out, ignore=shutil.ignore_patterns("openvino"))
    model = ov.Core().read_model(str(export / "openvino" / "openvino_model.xml"))
    (out / "openvino").mkdir(parents=True, exist_ok=True)
    ov.save_model(
        nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM),
        str(out / "openvino" / "openvino_model.xml"),
    )
    return out


def _topk(corpus: np.ndarray, queries: np.ndarray) -> np.ndarray:
    scores = queries @ corpus.T
    return np.argsort(-scores, axis=1)[:, :K]


def int8_quality(
    res: Results, work: Path, short_texts: list[str], files: int = 4, rows: int = 500
) -> list[str]:
    from benchmarks.bench_quality import labelled_queries
    from dbembed.embed.backends import cpu_has_bf16, ensure_export
    from dbembed.embed.local import bundled_model_path
    from dbembed.embed.openvino_runtime import OpenVINOProvider
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
    int8_dir = quantize(export, work / "int8-export", calib)
    w8_dir = compress_weights(export, work / "int8-weights-export")
    quant_s = time.perf_counter() - t0
    hint = "bf16" if cpu_has_bf16() else "fp32"
    lines = [
        f"int8 (OpenVINO + NNCF: int8 = post-training quantization of weights and activations, calibrated on "
        f"{len(calib)} generated documents; weights only = compress_weights INT8_ASYM; prepared in {quant_s:.0f} s): {len(docs)} documents, {len(queries)} labelled queries, exact search"
    ]
    index = {(str(Path(d.file).resolve()), d.table, d.key): i for i, d in enumerate(docs)}
    want = [index.get(q.want) for q in queries if q.want is not None]
    out: dict[str, Any] = {}
    variants = [("fp32", export, "fp32"), ("int8", int8_dir, "fp32"), ("int8 weights only", w8_dir, "fp32")]
    if hint == "bf16":
        variants[1:1] = [("bf16 hint", export, "bf16")]
        variants += [("int8 + bf16 hint", int8_dir, "bf16"), ("int8 weights + bf16 hint", w8_dir, "bf16")]
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
    ref = out["fp32"]
    lines.append(
        f"{'model (inference hint)':<26}{'short texts s':>14}{'speed-up':>10}{'recall@10 vs fp32':>19}{'planted hit@10':>16}"
    )
    for name, o in out.items():
        recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(o["top"], ref["top"], strict=True)]))
        o["recall"] = recall
        lines.append(
            f"{name:<26}{o['secs']:>14.2f}{ref['secs'] / o['secs']:>9.2f}x{recall:>19.3f}{o['hit']:>16.3f}"
        )
        res.add("speed int8", f"openvino {name}: recall@10 vs fp32", recall, "", f"hit@10 {o['hit']:.3f}")
    best = max((o["recall"] for n, o in out.items() if n.startswith("int8")), default=None)
    res.ratio("int8: recall@10 vs fp32 search", best, 0.95, ">=", "OpenVINO + NNCF, best int8 variant")
    lines.append(
        f"int8 verdict: recall@10 {best:.3f} -> "
        + (
            "offer --precision int8"
            if best is not None and best >= 0.95
            else "keep refusing --precision int8"
        )
    )
    return lines
