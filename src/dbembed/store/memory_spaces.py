"""Memory spaces: one model + dimension each, with its own memory table.

A pgvector column has a fixed dimension, and vectors of two models must never be
compared, so memory is kept per space (``dbembed.chat_memory_<id>``), recorded in
``dbembed.chat_memory_spaces`` with its model id and dimensions.  Using a space with
another model raises ``CollectionMismatch``.  In mapped mode the team's existing memory
table is the one space; its ``VECTOR(N)`` dimension and the ``model`` recorded in row
metadata are checked the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from psycopg import sql

from dbembed.store.chat_tables import NATIVE_MEMORY, MemoryTable, mapped_memory, mapping_from_settings
from dbembed.store.collections import check_same_space, default_collection_name

if TYPE_CHECKING:
    import psycopg

    from dbembed.config import StoreSettings

_SPACE_LOCK = 0x63_68_61_74  # "chat"


def space_name(settings: StoreSettings, model_id: str, dimensions: int) -> str:
    """``settings.collection`` if set, else the model's collection slug plus its dimension
    (``all-minilm-l6-v2-384``): the file index's naming of vector spaces."""
    return settings.collection or default_collection_name(model_id, dimensions)


def _native(row: tuple[Any, ...]) -> MemoryTable:
    sid, model, dims, vtype = row
    return MemoryTable(
        sql.Identifier("dbembed", f"chat_memory_{int(sid)}"),
        NATIVE_MEMORY,
        mapped=False,
        dimensions=int(dims),
        vector_type=str(vtype),
        distance="ip",
        space_id=int(sid),
        model=str(model),
    )


def memory_table(
    conn: psycopg.Connection,
    settings: StoreSettings,
    model_id: str,
    dims: int,
    *,
    create: bool,
    chat_tables: Mapping[str, str],
) -> MemoryTable | None:
    """The memory table for this model; created when ``create`` (sync), else None if absent.

    ``chat_tables`` is the chat section's table mapping (``settings.chat.tables``; empty: dbembed's
    own tables)."""
    mapping = mapping_from_settings(dict(chat_tables))
    if mapping is not None:
        table = mapped_memory(conn, mapping)
        where = f"memory table {mapping['memory_table']}"
        check_same_space(where, table.model, table.dimensions, model_id, dims)
        other = conn.execute(
            sql.SQL("SELECT {meta} ->> 'model' FROM {t} WHERE {meta} ->> 'model' <> %s LIMIT 1").format(
                meta=table.raw("metadata"), t=table.table
            ),
            (model_id,),
        ).fetchone()
        if other:
            check_same_space(where, str(other[0]), table.dimensions, model_id, dims)
        # The mapped table is registered as a space too (dbembed's schema, not the team's
        # tables): it records the model and holds the retention horizon.
        row = _space_row(
            conn, settings, f"mapped:{mapping['memory_table']}", model_id, dims, create, mapped=True
        )
        if row is not None:
            check_same_space(where, str(row[1]), int(row[2]), model_id, dims)
        sid = int(row[0]) if row is not None else None
        return dataclasses.replace(table, model=model_id, space_id=sid)
    name = space_name(settings, model_id, dims)
    row = _space_row(conn, settings, name, model_id, dims, create, mapped=False)
    if row is None:
        return None
    check_same_space(f"memory space {name!r}", str(row[1]), int(row[2]), model_id, dims)
    return _native(row)


def _space_row(
    conn: psycopg.Connection,
    settings: StoreSettings,
    name: str,
    model_id: str,
    dims: int,
    create: bool,
    *,
    mapped: bool,
) -> tuple[Any, ...] | None:
    row = conn.execute(
        "SELECT id, model, dimensions, vector_type FROM dbembed.chat_memory_spaces WHERE name = %s", (name,)
    ).fetchone()
    if row is None and create:
        return _create_space(conn, settings, name, model_id, dims, mapped=mapped)
    return tuple(row) if row else None


def horizon(conn: psycopg.Connection, table: MemoryTable) -> object:
    """Turns older than this were expired by retention and must not be synced again."""
    if table.space_id is None:
        return None
    row = conn.execute(
        "SELECT horizon FROM dbembed.chat_memory_spaces WHERE id = %s", (table.space_id,)
    ).fetchone()
    return row[0] if row else None


def _create_space(
    conn: psycopg.Connection, settings: StoreSettings, name: str, model_id: str, dims: int, *, mapped: bool
) -> tuple[Any, ...]:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SPACE_LOCK,))
        row = conn.execute(
            "SELECT id, model, dimensions, vector_type FROM dbembed.chat_memory_spaces WHERE name = %s",
            (name,),
        ).fetchone()
        if row is not None:
            return tuple(row)
        vtype = settings.vector_type
        got = conn.execute(
            """INSERT INTO dbembed.chat_memory_spaces (name, model, dimensions, vector_type)
               VALUES (%s, %s, %s, %s) RETURNING id, model, dimensions, vector_type""",
            (name, model_id, dims, vtype),
        ).fetchone()
        assert got is not None
        if mapped:
            return tuple(got)
        sid = int(got[0])
        t = f"dbembed.chat_memory_{sid}"
        conn.execute(
            f"""CREATE TABLE {t} (
                id            bigserial PRIMARY KEY,
                tenant_id     text NOT NULL CHECK (tenant_id <> ''),
                user_id       text NOT NULL CHECK (user_id <> ''),
                theme         text NOT NULL DEFAULT '',
                chat_id       bigint NOT NULL CHECK (chat_id >= 0),
                kind          text NOT NULL CHECK (kind IN ('turn', 'chat')),
                turn_id       bigint REFERENCES dbembed.chat_turns (id) ON DELETE CASCADE,
                turn_no       integer,
                summary       text NOT NULL,
                summary_model text,
                metadata      jsonb NOT NULL DEFAULT '{{}}'::jsonb,
                content_hash  text NOT NULL,
                embedding     {vtype}({int(dims)}) NOT NULL,
                lexical       tsvector,
                source_at     timestamptz NOT NULL,
                created_at    timestamptz NOT NULL DEFAULT now())"""
        )
        conn.execute(f"CREATE UNIQUE INDEX chat_memory_{sid}_turn ON {t} (turn_id) WHERE kind = 'turn'")
        conn.execute(
            f"CREATE UNIQUE INDEX chat_memory_{sid}_chat ON {t} (tenant_id, user_id, chat_id) WHERE kind = 'chat'"
        )
        conn.execute(f"CREATE INDEX chat_memory_{sid}_user ON {t} (tenant_id, user_id, source_at)")
        conn.execute(f"CREATE INDEX chat_memory_{sid}_source_at ON {t} (source_at)")
        conn.execute(f"CREATE INDEX chat_memory_{sid}_hash ON {t} (content_hash)")
        conn.execute(
            f"CREATE INDEX chat_memory_{sid}_hnsw ON {t} USING hnsw (embedding {vtype}_ip_ops) "
            f"WITH (m = {int(settings.hnsw_m)}, ef_construction = {int(settings.hnsw_ef_construction)})"
        )
        # Memory rows arrive a batch at a time, so the lexical index is kept up from the start (like HNSW).
        conn.execute(f"CREATE INDEX chat_memory_{sid}_lexical ON {t} USING gin (lexical)")
        conn.execute("SELECT dbembed.chat_apply_rls(%s)", (t,))
        conn.execute(f"GRANT USAGE ON SEQUENCE {t}_id_seq TO dbembed_app")
        return tuple(got)


def all_memory_tables(conn: psycopg.Connection, chat_tables: Mapping[str, str]) -> list[MemoryTable]:
    """Every memory table (all models): what delete-user and retention must reach.

    ``chat_tables`` is the chat section's table mapping (``settings.chat.tables``)."""
    mapping = mapping_from_settings(dict(chat_tables))
    if mapping is not None:
        table = mapped_memory(conn, mapping)
        row = conn.execute(
            "SELECT id FROM dbembed.chat_memory_spaces WHERE name = %s",
            (f"mapped:{mapping['memory_table']}",),
        ).fetchone()
        return [dataclasses.replace(table, space_id=int(row[0]) if row else None)]
    rows = conn.execute(
        "SELECT id, model, dimensions, vector_type FROM dbembed.chat_memory_spaces "
        "WHERE name NOT LIKE 'mapped:%' ORDER BY id"
    ).fetchall()
    return [_native(tuple(r)) for r in rows]
