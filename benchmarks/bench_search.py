"""HNSW vs exact search in pgvector: recall@10 and latency, halfvec(384), as dbembed stores it.

Vectors: real MiniLM document embeddings (from the raw-model section) as cluster centres
plus Gaussian noise, L2-normalised.  Uniform random vectors on the sphere have no
neighbourhood structure and understate HNSW recall; pure real embeddings of 100k rows
would take minutes to compute here.  Queries are fresh perturbations, not stored rows.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks.common import PgServer, Results, timer

QUERIES = 50
K = 10


def _vectors(centres: np.ndarray, n: int, rng: np.random.Generator, sigma: float = 0.035) -> np.ndarray:
    idx = rng.integers(0, len(centres), n)
    v = centres[idx] + rng.normal(0, sigma, (n, centres.shape[1])).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float16)


def _topk(conn, q: np.ndarray) -> tuple[list[int], float]:  # noqa: ANN001
    from pgvector import HalfVector

    t0 = time.perf_counter()
    rows = conn.execute(
        "SELECT id FROM items ORDER BY v <=> %s LIMIT %s", (HalfVector(q.astype(np.float32)), K)
    ).fetchall()
    return [r[0] for r in rows], time.perf_counter() - t0


def hnsw_vs_exact(
    res: Results, pg: PgServer, centres: np.ndarray, n: int, ef_values: tuple[int, ...]
) -> None:
    import psycopg
    from pgvector import HalfVector
    from pgvector.psycopg import register_vector

    section = f"search {n // 1000}k"
    rng = np.random.default_rng(42)
    url = pg.new_database("search")
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, v halfvec(384))")
        with timer() as t:
            step = 50_000
            for start in range(0, n, step):
                block = _vectors(centres, min(step, n - start), rng)
                with conn.cursor().copy("COPY items (id, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
                    copy.set_types(["int4", "halfvec"])
                    for i, v in enumerate(block):
                        copy.write_row((start + i, HalfVector(v.astype(np.float32))))
        res.add(section, "load (COPY binary)", n / t["s"], "vectors/s")
        conn.execute("SET maintenance_work_mem = '2GB'")
        with timer() as t:
            conn.execute(
                "CREATE INDEX ON items USING hnsw (v halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
        res.add(section, "HNSW build (m=16, ef_construction=64)", t["s"], "s")
        conn.execute("ANALYZE items")
        queries = _vectors(centres, QUERIES, rng).astype(np.float32)

        conn.execute("SET enable_indexscan = off")
        exact, exact_lat = [], []
        for q in queries:
            ids, dt = _topk(conn, q)
            exact.append(set(ids))
            exact_lat.append(dt)
        conn.execute("RESET enable_indexscan")
        exact_ms = statistics.median(exact_lat) * 1000
        res.add(section, "exact p50 latency", exact_ms, "ms")
        for ef in ef_values:
            conn.execute(f"SET hnsw.ef_search = {ef}")
            recalls, lat = [], []
            for q, truth in zip(queries, exact, strict=True):
                ids, dt = _topk(conn, q)
                recalls.append(len(truth & set(ids)) / K)
                lat.append(dt)
            ms = statistics.median(lat) * 1000
            res.add(section, f"HNSW ef_search={ef} recall@10", statistics.mean(recalls), "")
            res.add(
                section,
                f"HNSW ef_search={ef} p50 latency",
                ms,
                "ms",
                f"{exact_ms / ms:.1f}x faster than exact",
            )
            res.ratio(
                f"{section}: HNSW recall@10 (ef_search={ef})", statistics.mean(recalls), 0.95, ">=",
                f"latency HNSW/exact = {ms / exact_ms:.3f}",
            )  # fmt: skip
