"""The lexical index: a ``tsvector`` of :mod:`dbembed.text.lexical` tokens beside the vectors.

- Write side: chunk loads COPY the tokens with the vectors (``store/chunks.py``); chat memory
  inserts them with the memory row.
- Index: GIN on the ``lexical`` column, built like HNSW after the first bulk load.
- Query side: :func:`query_plan` weighs the query's tokens by inverse document frequency
  estimated from PostgreSQL's own column statistics (``pg_stats.most_common_elems``, which
  ``ANALYZE`` keeps for ``tsvector`` columns), so no vocabulary table has to be maintained.
  Tokens found in more than :data:`COMMON_FREQ` of the rows (``the``, ``です``) still count
  towards a row's score but do not select candidates, which keeps the GIN scan small.
  Candidates must hold two neighbouring selective tokens of the query (for a CJK phrase: three
  characters in a row; for words: two of the query's rarer words); only when no row does are
  rows holding any one of them taken (:attr:`QueryPlan.fallback`).  Scoring every row that
  shares one token with a long query would cost tens of milliseconds at 100k rows, and such
  rows are noise whenever a better match exists.
- Backfill: collections created before the lexical index (migration 0005) are filled from
  their stored text, in batches, by :func:`backfill_pending`; nothing is re-embedded.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbembed.text.lexical import lexical_tokens, query_tokens, tsquery_text, tsvector_text

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

COMMON_FREQ = 0.05  # tokens in more rows than this do not select candidates (they still score)
BACKFILL_BATCH = 2000
_STATS_TTL_S = 300.0
_stats_lock = threading.Lock()
_stats: dict[tuple[str, str], tuple[float, dict[str, float], float | None]] = {}


@dataclass(frozen=True)
class QueryPlan:
    """How one query is matched: ``select`` picks candidate rows (GIN), ``tokens``/``weights`` score them."""

    select: str  # tsquery text
    tokens: list[str]
    weights: list[float]
    fallback: str | None = None  # a wider tsquery, used when ``select`` finds no row

    def widened(self) -> QueryPlan | None:
        """The plan with the fallback as its selection (None if there is none)."""
        if self.fallback is None:
            return None
        return QueryPlan(self.fallback, self.tokens, self.weights)

    @property
    def total(self) -> float:
        return sum(self.weights) or 1.0

    def params(self) -> dict[str, Any]:
        return {
            "lex_select": self.select,
            "lex_tokens": [tsquery_text([t]) for t in self.tokens],
            "lex_weights": self.weights,
            "lex_total": self.total,
        }


def score_sql(alias: str = "c") -> str:
    """Score of row ``alias``: the idf-weighted share of the query's tokens it holds, in [0, 1]."""
    return (
        "(SELECT coalesce(sum(w.w), 0) FROM unnest(%(lex_tokens)s::tsquery[], %(lex_weights)s::float8[])"
        f" AS w(q, w) WHERE {alias}.lexical @@ w.q) / %(lex_total)s"
    )


def tiebreak_sql(alias: str = "c") -> str:
    """Among rows of equal score: cover density (tokens close together), shorter rows first."""
    return f"ts_rank_cd({alias}.lexical, %(lex_select)s::tsquery, 1)"


def match_sql(alias: str = "c") -> str:
    """Candidate rows (served by the GIN index)."""
    return f"{alias}.lexical @@ %(lex_select)s::tsquery"


SCORE_SQL, TIEBREAK_SQL, MATCH_SQL = score_sql(), tiebreak_sql(), match_sql()


def token_frequencies(conn: psycopg.Connection, relname: str) -> tuple[dict[str, float], float | None]:
    """(most common lexemes -> fraction of rows holding them, the smallest listed fraction);
    empty when the table was never analysed.  Cached per table for a few minutes."""
    key = (conn.info.dbname or "", relname)
    now = time.monotonic()
    with _stats_lock:
        hit = _stats.get(key)
        if hit is not None and now - hit[0] < _STATS_TTL_S:
            return hit[1], hit[2]
    row = conn.execute(
        """SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats
           WHERE schemaname = 'dbembed' AND tablename = %s AND attname = 'lexical'""",
        (relname,),
    ).fetchone()
    freqs: dict[str, float] = {}
    floor: float | None = None
    if row is not None and row[0] is not None and row[1] is not None:
        elems, fr = list(row[0]), [float(x) for x in row[1]]
        freqs = dict(zip(elems, fr[: len(elems)], strict=True))
        floor = fr[len(elems)] if len(fr) > len(elems) else (min(freqs.values()) if freqs else None)
    with _stats_lock:
        _stats[key] = (now, freqs, floor)
    return freqs, floor


def forget_stats(relname: str | None = None) -> None:
    """Drop cached statistics (after ANALYZE, or in tests)."""
    with _stats_lock:
        for key in [k for k in _stats if relname is None or k[1] == relname]:
            del _stats[key]


_JOINED_TOKEN = re.compile(r"[-_./:#@+]")  # text.lexical's joiners: a token made of parts


def query_plan(conn: psycopg.Connection, relname: str, query: str) -> QueryPlan | None:
    """The tokens of ``query`` with idf weights, and which of them select candidates; None if
    the query has no token at all (only punctuation or spaces)."""
    tokens = query_tokens(query)
    if not tokens:
        return None
    freqs, floor = token_frequencies(conn, relname)
    rare = (floor / 2) if floor else None
    weights: list[float] = []
    selective: list[str] = []
    for tok in tokens:
        f = freqs.get(tok, rare)
        # idf = ln(1/f), at least a small positive weight; without statistics every token weighs 1.
        weights.append(max(0.1, math.log(1.0 / f)) if f else 1.0)
        if f is None or f <= COMMON_FREQ:
            selective.append(tok)
    # A code typed in part ("INV-2024" of "INV-2024-0042") is not a whole token of the row, but its
    # parts are: when the selected tokens find nothing, rows holding every plain part are next.
    parts = [t for t in tokens if not _JOINED_TOKEN.search(t)]
    by_parts = tsquery_text(parts, "&") if parts and len(parts) < len(tokens) else None
    if not selective:
        # Only common tokens (a query of stop words, or of a phrase found everywhere): rows must hold all.
        return QueryPlan(tsquery_text(tokens, "&"), tokens, weights, fallback=by_parts)
    if len(selective) == 1:
        return QueryPlan(tsquery_text(selective, "|"), tokens, weights, fallback=by_parts)
    pairs = [f"({tsquery_text([a, b], '&')})" for a, b in zip(selective, selective[1:], strict=False)]
    return QueryPlan(" | ".join(pairs), tokens, weights, fallback=tsquery_text(selective, "|"))


def lexical_index_name(relname: str) -> str:
    return f"{relname}_lexical"


def ensure_lexical_index(conn: psycopg.Connection, relname: str, *, concurrently: bool = True) -> bool:
    """Build the GIN index on ``dbembed.<relname>.lexical`` unless it exists, then ANALYZE the
    column so query weights have statistics.  Needs an autocommit connection when concurrent."""
    index = lexical_index_name(relname)
    exists = conn.execute(
        "SELECT 1 FROM pg_indexes WHERE schemaname = 'dbembed' AND indexname = %s", (index,)
    ).fetchone()
    if exists:
        return False
    how = "CONCURRENTLY " if concurrently else ""
    conn.execute(f"CREATE INDEX {how}IF NOT EXISTS {index} ON dbembed.{relname} USING gin (lexical)")
    conn.execute(f"ANALYZE dbembed.{relname} (lexical)")
    forget_stats(relname)
    return True


def backfill_table(
    conn: psycopg.Connection, relname: str, text_column: str, batch: int = BACKFILL_BATCH
) -> int:
    """Fill ``lexical`` where it is NULL from the stored text, one committed batch at a time
    (resumable: an interrupted backfill continues where it stopped).  Returns rows filled."""
    table = f"dbembed.{relname}"
    done, last = 0, 0
    while True:
        rows = conn.execute(
            f"SELECT id, {text_column} FROM {table} WHERE lexical IS NULL AND id > %s ORDER BY id LIMIT %s",
            (last, batch),
        ).fetchall()
        if not rows:
            return done
        ids = [int(r[0]) for r in rows]
        vecs = [tsvector_text(lexical_tokens(r[1] or "")) for r in rows]
        with conn.transaction():
            conn.execute(
                f"""UPDATE {table} t SET lexical = d.lex FROM unnest(%s::bigint[], %s::tsvector[]) AS d(id, lex)
                    WHERE t.id = d.id AND t.lexical IS NULL""",
                (ids, vecs),
            )
        done += len(rows)
        last = ids[-1]


def backfill_pending(conn: psycopg.Connection) -> dict[str, int]:
    """Backfill every table listed by migration 0005 (skipping any another process is filling);
    build its GIN index when the table is already indexed, and unlist it.  Needs autocommit."""
    if conn.execute("SELECT to_regclass('dbembed.lexical_backfill')").fetchone() in (None, (None,)):
        return {}
    pending = conn.execute("SELECT relname, text_column, kind FROM dbembed.lexical_backfill ORDER BY relname")
    filled: dict[str, int] = {}
    for relname, text_column, kind in pending.fetchall():
        lock = f"dbembed.lexical:{relname}"
        got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (lock,)).fetchone()
        if not got or not got[0]:
            continue
        try:
            if conn.execute(f"SELECT to_regclass('dbembed.{relname}')").fetchone() in (None, (None,)):
                conn.execute("DELETE FROM dbembed.lexical_backfill WHERE relname = %s", (relname,))
                continue
            started = time.perf_counter()
            filled[relname] = backfill_table(conn, relname, text_column)
            # Chunk tables get the index with HNSW after their first load; one that has HNSW is loaded.
            has_vector_index = conn.execute(
                "SELECT 1 FROM pg_indexes WHERE schemaname = 'dbembed' AND tablename = %s"
                " AND indexdef LIKE '%%USING hnsw%%'",
                (relname,),
            ).fetchone()
            if kind == "memory" or has_vector_index:
                ensure_lexical_index(conn, relname)
            conn.execute("DELETE FROM dbembed.lexical_backfill WHERE relname = %s", (relname,))
            log.info(
                "lexical index of %s: %d rows filled in %.1fs (no re-embedding)",
                relname, filled[relname], time.perf_counter() - started,
            )  # fmt: skip
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock,))
    return filled
