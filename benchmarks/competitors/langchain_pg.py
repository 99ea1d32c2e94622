"""LangChain ``PGVector.add_texts`` over the benchmark documents (runs in the competitor venv).

Usage: python langchain_pg.py --url URL --docs docs.json --model PATH [--vectors vecs.npy]
With ``--vectors`` the Embeddings object returns precomputed vectors, so only the store
load is timed; without it the same bundled MiniLM is used through ``HuggingFaceEmbeddings``.
Prints one JSON object: n, model_load_s, add_s.
"""

from __future__ import annotations

import argparse
import json
import time

BATCH = 1000  # add_texts per call, as LangChain's docs do for bulk loads


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--docs", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--vectors")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    from langchain_core.embeddings import Embeddings
    from langchain_postgres import PGVector

    with open(args.docs, encoding="utf-8") as fh:
        docs = json.load(fh)
    texts = [d["text"] for d in docs]
    metas = [{"file": d["file"], "table": d["table"], "row_key": d["key"]} for d in docs]

    t0 = time.perf_counter()
    if args.vectors:
        import numpy as np

        vecs = np.load(args.vectors)
        lookup = {t: v.tolist() for t, v in zip(texts, vecs, strict=True)}

        class Precomputed(Embeddings):
            def embed_documents(self, texts: list[str]) -> list[list[float]]:
                return [lookup[t] for t in texts]

            def embed_query(self, text: str) -> list[float]:
                return lookup[text]

        emb: Embeddings = Precomputed()
    else:
        from langchain_huggingface import HuggingFaceEmbeddings

        emb = HuggingFaceEmbeddings(
            model_name=args.model,
            model_kwargs={"device": "cpu"},
            encode_kwargs={"normalize_embeddings": True, "batch_size": args.batch_size},
        )
        emb.embed_query("warm up")
    model_load_s = time.perf_counter() - t0

    store = PGVector(embeddings=emb, connection=args.url, collection_name="bench", use_jsonb=True)
    t1 = time.perf_counter()
    for i in range(0, len(texts), BATCH):
        store.add_texts(texts[i : i + BATCH], metadatas=metas[i : i + BATCH])
    add_s = time.perf_counter() - t1
    print(json.dumps({"n": len(texts), "model_load_s": model_load_s, "add_s": add_s}))


if __name__ == "__main__":
    main()
