"""Writing and reading one collection's chunks: binary COPY loads, row-level diffs, vector reuse.

Everything here runs inside the caller's per-file transaction, so a file's old
chunks stay visible to searches until its new ones commit together.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import psycopg

    from dbembed.store.collections import Collection


@dataclass
class ChunkRecord:
    """One chunk ready to load (its vector is filled in before COPY)."""

    table_name: str
    row_key: str
    chunk_no: int
    row_hash: bytes
    content_hash: bytes
    text: str
    metadata: dict[str, Any] | None = None


def vector_binary(vec: np.ndarray, vector_type: str) -> bytes:
    """pgvector's binary wire format: uint16 dim, uint16 unused, then big-endian floats.

    Packed here rather than by pgvector-python's registered ``Vector``/``HalfVector`` binary
    dumpers (same bytes): measured 1.13-1.16x faster for a COPY of 384-d vectors
    (``benchmarks/bench_copy_vectors.py``)."""
    dim = vec.shape[0]
    if vector_type == "halfvec":
        return struct.pack(">HH", dim, 0) + vec.astype(">f2").tobytes()
    return struct.pack(">HH", dim, 0) + vec.astype(">f4").tobytes()


def copy_chunks(
    conn: psycopg.Connection,
    coll: Collection,
    source_id: int,
    records: Sequence[ChunkRecord],
    vectors: np.ndarray,
) -> int:
    """Load one file's chunks with binary COPY; returns rows written (see ``copy_chunk_groups``)."""
    return copy_chunk_groups(conn, coll, [(source_id, records, vectors)])


def copy_chunk_groups(
    conn: psycopg.Connection,
    coll: Collection,
    groups: Sequence[tuple[int, Sequence[ChunkRecord], np.ndarray]],
) -> int:
    """Load the chunks of one or more files (``(source_id, records, vectors)`` each) with one binary
    COPY (pgvector-python's loading pattern), their lexical tokens with them; returns rows written."""
    if not any(len(records) for _, records, _ in groups):
        return 0
    from psycopg.types.json import Jsonb

    from dbembed.text.lexical import lexical_tokens, tsvector_binary

    cols = "(source_id, table_name, row_key, chunk_no, row_hash, content_hash, text, metadata, embedding, lexical)"
    written = 0
    with conn.cursor() as cur, cur.copy(f"COPY {coll.table} {cols} FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "text", "text", "int4", "bytea", "bytea", "text", "jsonb", "bytea", "bytea"])
        for source_id, records, vectors in groups:
            for rec, vec in zip(records, vectors, strict=True):
                copy.write_row(
                    (
                        source_id,
                        rec.table_name,
                        rec.row_key,
                        rec.chunk_no,
                        rec.row_hash,
                        rec.content_hash,
                        rec.text,
                        Jsonb(rec.metadata) if rec.metadata is not None else None,
                        # bytea's binary dumper passes bytes through untouched: pre-encoded pgvector binary.
                        vector_binary(vec, coll.vector_type),
                        # The lexical index's tokens of the same text, in tsvector's binary format.
                        tsvector_binary(lexical_tokens(rec.text)),
                    )
                )
            written += len(records)
    return written


def existing_row_hashes(
    conn: psycopg.Connection, coll: Collection, source_id: int
) -> dict[tuple[str, str], bytes]:
    """(table, row_key) -> row_hash for what the index holds of this file (streamed server-side)."""
    out: dict[tuple[str, str], bytes] = {}
    with conn.cursor(name=f"rowhash_{source_id}") as cur:
        cur.itersize = 20000
        cur.execute(
            f"SELECT table_name, row_key, row_hash FROM {coll.table} WHERE source_id = %s"
            " AND (chunk_no = 0 OR row_hash = %s)",
            (source_id, STALE_ROW_HASH),
        )
        for table_name, row_key, row_hash in cur:
            out[(table_name, row_key)] = bytes(row_hash)
    return out


def existing_row_hashes_of(
    conn: psycopg.Connection, coll: Collection, source_ids: Sequence[int]
) -> dict[int, dict[tuple[str, str], bytes]]:
    """``existing_row_hashes`` of several small files in one query: {source_id: {(table, row_key): hash}}."""
    out: dict[int, dict[tuple[str, str], bytes]] = {sid: {} for sid in source_ids}
    if not source_ids:
        return out
    rows = conn.execute(
        f"SELECT source_id, table_name, row_key, row_hash FROM {coll.table} WHERE source_id = ANY(%s)"
        " AND (chunk_no = 0 OR row_hash = %s)",
        (list(source_ids), STALE_ROW_HASH),
    ).fetchall()
    for sid, table_name, row_key, row_hash in rows:
        out[int(sid)][(table_name, row_key)] = bytes(row_hash)
    return out


STALE_ROW_HASH = bytes(16)  # a row with a rejected chunk: re-read and retried by the next run


def mark_rows_stale(
    conn: psycopg.Connection, coll: Collection, source_id: int, keys: Iterable[tuple[str, str]]
) -> int:
    """Give the stored chunks of these rows a row hash no document has (``STALE_ROW_HASH``), so the
    next run sees the rows as changed and retries their rejected chunks."""
    keys = list(keys)
    if not keys:
        return 0
    cur = conn.execute(
        f"""UPDATE {coll.table} c SET row_hash = %s FROM unnest(%s::text[], %s::text[]) AS d(t, k)
            WHERE c.source_id = %s AND c.table_name = d.t AND c.row_key = d.k""",
        (STALE_ROW_HASH, [k[0] for k in keys], [k[1] for k in keys], source_id),
    )
    return cur.rowcount or 0


def delete_rows(
    conn: psycopg.Connection, coll: Collection, source_id: int, keys: Iterable[tuple[str, str]]
) -> int:
    keys = list(keys)
    if not keys:
        return 0
    tables = [k[0] for k in keys]
    row_keys = [k[1] for k in keys]
    cur = conn.execute(
        f"""DELETE FROM {coll.table} c USING unnest(%s::text[], %s::text[]) AS d(t, k)
            WHERE c.source_id = %s AND c.table_name = d.t AND c.row_key = d.k""",
        (tables, row_keys, source_id),
    )
    return cur.rowcount or 0


def delete_source_chunks(conn: psycopg.Connection, coll: Collection, source_id: int) -> int:
    cur = conn.execute(f"DELETE FROM {coll.table} WHERE source_id = %s", (source_id,))
    return cur.rowcount or 0


def cached_vectors(
    conn: psycopg.Connection, coll: Collection, hashes: Sequence[bytes]
) -> dict[bytes, np.ndarray]:
    """Reuse vectors already stored for the same text under this collection's model."""
    if not hashes:
        return {}
    rows = conn.execute(
        f"""SELECT DISTINCT ON (content_hash) content_hash, embedding
            FROM {coll.table} WHERE content_hash = ANY(%s)""",
        (list(hashes),),
        binary=True,
    ).fetchall()
    return {bytes(h): to_numpy(v) for h, v in rows}


def to_numpy(value: Any) -> np.ndarray:
    """A pgvector value as loaded by pgvector-python (ndarray, HalfVector or Vector) -> float32 array."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float32)
    return np.asarray(value.to_numpy(), dtype=np.float32)


def count_chunks_of(conn: psycopg.Connection, coll: Collection, source_ids: Sequence[int]) -> dict[int, int]:
    """Chunks each of these files holds: {source_id: count} (0 for a file with none)."""
    out = dict.fromkeys(source_ids, 0)
    if source_ids:
        rows = conn.execute(
            f"SELECT source_id, count(*) FROM {coll.table} WHERE source_id = ANY(%s) GROUP BY source_id",
            (list(source_ids),),
        ).fetchall()
        out.update({int(sid): int(n) for sid, n in rows})
    return out


def count_chunks(conn: psycopg.Connection, coll: Collection, source_id: int | None = None) -> int:
    if source_id is None:
        row = conn.execute(f"SELECT count(*) FROM {coll.table}").fetchone()
    else:
        row = conn.execute(f"SELECT count(*) FROM {coll.table} WHERE source_id = %s", (source_id,)).fetchone()
    return int(row[0]) if row else 0
