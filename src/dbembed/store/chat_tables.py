"""Where chat history and memory live: dbembed's own tables, or a team's existing ones.

Native mode uses ``dbembed.chat_turns`` and one ``dbembed.chat_memory_<space id>`` table
per memory space.  Mapped mode (``chat_tables`` in the config) runs the same operations
on document 003's ``st_chat_history_table`` / ``st_chat_history_vector_table`` as they
are: columns are renamed through the mapping, and what those tables lack (turn number,
tenant, content hash, source time, model) is derived (turn number = order of the row in
its chat) or kept in the memory row's ``metadata`` jsonb.  Queries are composed from
``psycopg.sql`` identifiers only, never from strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from psycopg import sql

from dbembed.errors import ConfigError, echo

if TYPE_CHECKING:
    import psycopg

# Document 003's column names: the defaults of the mapping.
HISTORY_DEFAULTS = {
    "id": "primarykey",
    "user": "userid",
    "theme": "themename",
    "chat": "chatid",
    "input": "userinput",
    "response": "botresponse",
    "created": "timestamp",
}
MEMORY_DEFAULTS = {
    "id": "primarykey",
    "user": "userid",
    "theme": "theme",
    "chat": "chatid",
    "summary": "chat_summary",
    "metadata": "metadata",
    "vector": "chat_vector",
}
NATIVE_HISTORY = {
    "id": "id",
    "tenant": "tenant_id",
    "user": "user_id",
    "theme": "theme",
    "chat": "chat_id",
    "turn": "turn_no",
    "input": "user_input",
    "response": "bot_response",
    "created": "created_at",
}
NATIVE_MEMORY = {
    "id": "id",
    "tenant": "tenant_id",
    "user": "user_id",
    "theme": "theme",
    "chat": "chat_id",
    "summary": "summary",
    "metadata": "metadata",
    "vector": "embedding",
    "kind": "kind",
    "turn_id": "turn_id",
    "turn": "turn_no",
    "summary_model": "summary_model",
    "hash": "content_hash",
    "source_at": "source_at",
}
# Fields a mapped memory table keeps in metadata, with their SQL types.
VIRTUAL_MEMORY = {
    "kind": "text",
    "turn_id": "bigint",
    "turn": "integer",
    "summary_model": "text",
    "hash": "text",
    "source_at": "timestamptz",
}
_KEYS = {"history_table", "memory_table", "distance", "model"}
_KEYS |= {f"history_{k}" for k in HISTORY_DEFAULTS} | {f"memory_{k}" for k in MEMORY_DEFAULTS}


def qualified(name: str) -> sql.Identifier:
    """``schema.table`` or ``table`` -> a quoted identifier (no SQL text is ever spliced in)."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ConfigError(f"invalid table name {echo(name)} in chat_tables")
    return sql.Identifier(*parts)


@dataclass(frozen=True)
class HistoryTable:
    table: sql.Identifier
    cols: dict[str, str]
    mapped: bool

    def col(self, name: str, alias: str = "t") -> sql.Composable:
        """A column or, in mapped mode, what stands for it (tenant: the constant 'default')."""
        if name == "tenant" and self.mapped:
            return sql.Literal("default")
        return sql.Identifier(alias, self.cols[name])

    def raw(self, name: str) -> sql.Identifier:
        """The bare column name, for INSERT column lists."""
        return sql.Identifier(self.cols[name])


@dataclass(frozen=True)
class MemoryTable:
    table: sql.Identifier
    cols: dict[str, str]
    mapped: bool
    dimensions: int
    vector_type: str  # "vector" or "halfvec"
    distance: str = "ip"  # "ip" (native) or "l2" (document 003's index: vector_l2_ops)
    space_id: int | None = None
    model: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def col(self, name: str, alias: str = "m") -> sql.Composable:
        if name == "tenant" and self.mapped:
            return sql.Literal("default")
        if self.mapped and name in VIRTUAL_MEMORY:
            meta = sql.Identifier(alias, self.cols["metadata"])
            return sql.SQL("(({} ->> {})::{})").format(meta, sql.Literal(name), sql.SQL(VIRTUAL_MEMORY[name]))
        return sql.Identifier(alias, self.cols[name])

    def raw(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.cols[name])

    def distance_sql(self, alias: str = "m") -> sql.Composable:
        """Distance to the query vector %(q)s, with the operator the HNSW index serves."""
        op = "<#>" if self.distance == "ip" else "<->"
        return sql.SQL("({} {} %(q)s::{})").format(
            sql.Identifier(alias, self.cols["vector"]), sql.SQL(op), sql.SQL(self.vector_type)
        )

    def score_sql(self, alias: str = "m") -> sql.Composable:
        """Cosine similarity of normalized vectors: -inner product, or 1 - L2^2/2."""
        d = self.distance_sql(alias)
        if self.distance == "ip":
            return sql.SQL("(-{})").format(d)
        return sql.SQL("(1 - ({} * {}) / 2)").format(d, d)


def native_history() -> HistoryTable:
    return HistoryTable(sql.Identifier("dbembed", "chat_turns"), NATIVE_HISTORY, mapped=False)


def mapping_from_settings(mapping: dict[str, str]) -> dict[str, str] | None:
    """Validate ``settings.chat_tables``; None when chat uses dbembed's own tables."""
    if not mapping:
        return None
    unknown = set(mapping) - _KEYS
    if unknown:
        raise ConfigError(f"unknown chat_tables keys: {sorted(unknown)} (known: {sorted(_KEYS)})")
    for needed in ("history_table", "memory_table"):
        if not mapping.get(needed):
            raise ConfigError(f"chat_tables needs {needed}")
    if mapping.get("distance", "l2") not in ("l2", "ip"):
        raise ConfigError("chat_tables.distance must be 'l2' or 'ip'")
    return mapping


def mapped_history(mapping: dict[str, str]) -> HistoryTable:
    cols = {k: mapping.get(f"history_{k}", v) for k, v in HISTORY_DEFAULTS.items()}
    return HistoryTable(qualified(mapping["history_table"]), cols, mapped=True)


def mapped_memory(conn: psycopg.Connection, mapping: dict[str, str]) -> MemoryTable:
    """Describe the existing memory table, reading the vector column's type and dimension."""
    cols = {k: mapping.get(f"memory_{k}", v) for k, v in MEMORY_DEFAULTS.items()}
    name = mapping["memory_table"]
    schema, _, table = name.rpartition(".")
    row = conn.execute(
        """SELECT t.typname, a.atttypmod
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped""",
        (sql.Identifier(*([schema] if schema else []), table).as_string(conn), cols["vector"]),
    ).fetchone()
    if row is None:
        raise ConfigError(f"chat_tables.memory_table {name!r} has no column {cols['vector']!r}")
    typname, typmod = row
    if typname not in ("vector", "halfvec") or typmod <= 0:
        raise ConfigError(f"column {cols['vector']!r} of {name!r} is {typname}, not a vector(N) column")
    return MemoryTable(
        qualified(name),
        cols,
        mapped=True,
        dimensions=int(typmod),
        vector_type=typname,
        distance=mapping.get("distance", "l2"),
        model=mapping.get("model", ""),
    )
