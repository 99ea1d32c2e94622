"""Collections: one vector space (model + dimensions) each, with its own chunk table.

A collection records the model id and dimensions that produced its vectors.
Indexing or searching a collection with another model is refused
(``CollectionMismatch``): vectors of different models never mix.  The chunk
table is ``dbembed.chunks_<id>`` because a pgvector column has a fixed dimension.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbembed.errors import CollectionMismatch, NotFound, echo

if TYPE_CHECKING:
    import psycopg

    from dbembed.config import StoreSettings


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    model: str
    dimensions: int
    vector_type: str  # "halfvec" or "vector"
    settings: dict[str, Any]

    @property
    def table(self) -> str:
        """Fully qualified, safe identifier of the chunk table (the id is an integer)."""
        return f"dbembed.chunks_{int(self.id)}"

    @property
    def hnsw_index(self) -> str:
        return f"chunks_{int(self.id)}_hnsw"

    @property
    def relname(self) -> str:
        """The chunk table's name inside the ``dbembed`` schema."""
        return f"chunks_{int(self.id)}"

    @property
    def column_type(self) -> str:
        return f"{self.vector_type}({int(self.dimensions)})"

    @property
    def ops(self) -> str:
        # Vectors are L2-normalized, so inner product ranks exactly like cosine and L2; it is the cheapest.
        return f"{self.vector_type}_ip_ops"


def default_collection_name(model_id: str, dimensions: int | None = None) -> str:
    """``local:all-MiniLM-L6-v2`` -> ``all-minilm-l6-v2``; ``bedrock:amazon.titan-embed-text-v2:0`` + 512 -> ``...-512``."""
    name = model_id.split(":", 1)[1] if ":" in model_id else model_id
    name = name.rstrip("/").split("/")[-1] or name
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "default"
    return f"{slug}-{dimensions}" if dimensions else slug


def _row_to_collection(row: tuple[Any, ...]) -> Collection:
    cid, name, model, dims, vtype, settings = row
    if isinstance(settings, str):
        settings = json.loads(settings)
    return Collection(int(cid), name, model, int(dims), vtype, settings or {})


def get_collection(conn: psycopg.Connection, name: str) -> Collection | None:
    row = conn.execute(
        "SELECT id, name, model, dimensions, vector_type, settings FROM dbembed.collections WHERE name = %s",
        (name,),
    ).fetchone()
    return _row_to_collection(row) if row else None


def list_collections(conn: psycopg.Connection) -> list[Collection]:
    rows = conn.execute(
        "SELECT id, name, model, dimensions, vector_type, settings FROM dbembed.collections ORDER BY id"
    ).fetchall()
    return [_row_to_collection(r) for r in rows]


def describe_collections(conn: psycopg.Connection) -> str:
    """Every collection as ``'name' (model M, D dimensions)``, for messages about one that does not exist."""
    known = "; ".join(f"{c.name!r} (model {c.model}, {c.dimensions} dimensions)" for c in list_collections(conn))
    return known or "none; nothing is indexed yet: run `dbembed run ROOT` first"


def require_collection(conn: psycopg.Connection, name: str) -> Collection:
    """The collection called ``name``; ``NotFound`` naming it and listing the ones that exist."""
    coll = get_collection(conn, name)
    if coll is None:
        raise NotFound(f"collection {echo(name)} does not exist; collections: {describe_collections(conn)}")
    return coll


def check_same_space(
    where: str, existing_model: str, existing_dims: int, model: str, dimensions: int
) -> None:
    """Refuse vectors of ``model`` in a vector space (a collection or a memory space) that holds
    another model's or another dimension's (``existing_model`` empty: unrecorded, dimensions
    decide).  Raises ``CollectionMismatch`` naming ``where``."""
    if existing_dims != dimensions or (existing_model and existing_model != model):
        raise CollectionMismatch(
            f"{where} holds vectors of {existing_model or 'an unrecorded model'} ({existing_dims} dimensions), "
            f"but the configured model is {model} ({dimensions} dimensions); vectors of different models "
            f"must not mix. Use --collection NAME for a separate one"
            + (f", or --model {existing_model}." if existing_model else ".")
        )


def check_compatible(coll: Collection, model: str, dimensions: int) -> None:
    check_same_space(f"collection {coll.name!r}", coll.model, coll.dimensions, model, dimensions)


def check_requested(
    coll: Collection, model: str | None, dimensions: int | None, *, source: str = "--model"
) -> None:
    """Refuse a request that names ``model`` (a model id) or ``dimensions`` other than the ones
    ``coll`` records, before any model is loaded (``None``: not named, anything goes).  Raises
    ``CollectionMismatch`` naming the collection, its model and dimensions, the requested ones and
    ``source``, where the model was named (``--model``, ``DBEMBED_MODEL``, request field ``model``...)."""
    if (model is None or model == coll.model) and (dimensions is None or dimensions == coll.dimensions):
        return
    asked = " with ".join(
        p for p in (f"model {model}" if model else "", f"{dimensions} dimensions" if dimensions else "") if p
    )
    raise CollectionMismatch(
        f"collection {coll.name!r} holds vectors of {coll.model} ({coll.dimensions} dimensions), but "
        f"{asked} was requested (by {source}); vectors of different models must not mix. Set {source} to "
        f"{coll.model} or leave it out for this collection, or name another collection."
    )


def ensure_collection(
    conn: psycopg.Connection, name: str, model: str, dimensions: int, settings: StoreSettings
) -> Collection:
    """Get or create the collection and its chunk table; refuse a different model/dimension."""
    existing = get_collection(conn, name)
    if existing is not None:
        check_compatible(existing, model, dimensions)
        return existing
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('dbembed.collections'))")
        existing = get_collection(conn, name)
        if existing is not None:
            check_compatible(existing, model, dimensions)
            return existing
        meta = {"hnsw_m": settings.hnsw_m, "hnsw_ef_construction": settings.hnsw_ef_construction}
        row = conn.execute(
            """INSERT INTO dbembed.collections (name, model, dimensions, vector_type, settings)
               VALUES (%s, %s, %s, %s, %s) RETURNING id, name, model, dimensions, vector_type, settings""",
            (name, model, dimensions, settings.vector_type, json.dumps(meta)),
        ).fetchone()
        assert row is not None
        coll = _row_to_collection(row)
        conn.execute(
            f"""CREATE TABLE {coll.table} (
                    id            bigserial PRIMARY KEY,
                    source_id     bigint NOT NULL REFERENCES dbembed.sources (id) ON DELETE CASCADE,
                    table_name    text NOT NULL,
                    row_key       text NOT NULL,
                    chunk_no      integer NOT NULL,
                    row_hash      bytea NOT NULL,
                    content_hash  bytea NOT NULL,
                    text          text NOT NULL,
                    metadata      jsonb,
                    embedding     {coll.column_type} NOT NULL,
                    lexical       tsvector,
                    UNIQUE (source_id, table_name, row_key, chunk_no))"""
        )
        conn.execute(f"CREATE INDEX chunks_{coll.id}_content_hash ON {coll.table} (content_hash)")
    return coll


def has_hnsw(conn: psycopg.Connection, coll: Collection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_indexes WHERE schemaname = 'dbembed' AND indexname = %s", (coll.hnsw_index,)
    ).fetchone()
    return row is not None


def ensure_hnsw(conn: psycopg.Connection, coll: Collection) -> bool:
    """Build the HNSW index and the lexical (GIN) index once, after the first bulk load (much
    faster than maintaining them row by row during the load).  Afterwards PostgreSQL maintains
    them.  Returns True if the HNSW index was built now.

    Only one worker builds them (advisory lock); others skip.  Needs an autocommit connection.
    """
    from dbembed.store.lexical import ensure_lexical_index, lexical_index_name

    lexical_ready = conn.execute(
        "SELECT 1 FROM pg_indexes WHERE schemaname = 'dbembed' AND indexname = %s",
        (lexical_index_name(coll.relname),),
    ).fetchone()
    if has_hnsw(conn, coll) and lexical_ready:
        return False
    got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (coll.hnsw_index,)).fetchone()
    if not got or not got[0]:
        return False
    try:
        built = False
        if not has_hnsw(conn, coll):
            m = int(coll.settings.get("hnsw_m", 16))
            efc = int(coll.settings.get("hnsw_ef_construction", 64))
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {coll.hnsw_index} ON {coll.table} "
                f"USING hnsw (embedding {coll.ops}) WITH (m = {m}, ef_construction = {efc})"
            )
            conn.execute("RESET maintenance_work_mem")
            built = True
        pending = conn.execute(
            "SELECT 1 FROM dbembed.lexical_backfill WHERE relname = %s", (coll.relname,)
        ).fetchone()
        if not pending:  # a collection still being backfilled gets its index when the backfill ends
            ensure_lexical_index(conn, coll.relname)
        return built
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (coll.hnsw_index,))
