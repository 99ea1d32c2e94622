"""Writing the SQLite files: normal load-test files, WAL files, broken files, one big file.

Rows stream into ``executemany`` from a generator inside one transaction (no per-row
commits, no list of all rows in memory), which is what makes 50k+ rows/s possible.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbembed.generate.planted import Plant
from dbembed.generate.pool import TextPool, get_pool
from dbembed.generate.schemas import SCHEMAS, Ctx, Schema, Table, split_rows

BANK_SIZE = 48  # distinct payloads per table that duplicate rows repeat
HOT_WAL_SHARE = 0.1  # share of the last table's rows left un-checkpointed in a -wal file


@dataclass
class FileInfo:
    """One written file, as reported by ``generate`` (paths relative to the output dir)."""

    path: str
    kind: str  # "ok", or the way a bad file is broken: truncated/not_sqlite/empty/corrupt
    schema: str | None = None
    rows: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    wal: bool = False
    hot_wal: bool = False  # a -wal sidecar holds committed rows not yet in the main file
    size: int = 0
    expect: str | None = None  # broken/hostile files: how a correct deployment ends them (indexed|failed)


@dataclass
class PlantedRow:
    plant: Plant
    file: str
    row_key: str


@functools.lru_cache(maxsize=64)
def _bank(seed: int, schema_name: str, table_name: str, ja_share: float) -> list[tuple[Any, ...]]:
    """The payloads duplicate rows repeat: fixed per seed, so load tests repeat across files too."""
    pool = get_pool(seed)
    table = next(t for t in SCHEMAS[schema_name].tables if t.name == table_name)
    rng = random.Random(f"bank:{seed}:{schema_name}:{table_name}")
    ctx = Ctx(rng=rng, pool=pool, blob=rng.randbytes(4096))
    bank = []
    for n in range(BANK_SIZE):
        ctx.i = n + 1
        ctx.lang = "ja" if rng.random() < ja_share else "en"
        bank.append(tuple(table.columns[k].gen(ctx) for k in table.payload_idx))
    return bank


def _rows(
    table: Table,
    ctx: Ctx,
    count: int,
    *,
    schema: Schema,
    ja_share: float,
    dup_share: float,
    plants: dict[int, Plant],
) -> Iterator[tuple[Any, ...]]:
    """Row tuples for ``table``; row ``i`` (1-based) has key ``i``."""
    bank = _bank(ctx.pool.seed, schema.name, table.name, ja_share)
    gens = [c.gen for c in table.columns]
    payload_idx = table.payload_idx
    names = [c.name for c in table.columns]
    rng = ctx.rng
    for i in range(1, count + 1):
        ctx.i = i
        ctx.lang = "ja" if rng.random() < ja_share else "en"
        row = [g(ctx) for g in gens]
        if dup_share and rng.random() < dup_share:
            for k, v in zip(payload_idx, rng.choice(bank), strict=True):
                row[k] = v
        plant = plants.get(i)
        if plant is not None:
            for col, text in plant.values.items():
                row[names.index(col)] = text
        yield tuple(row)


def write_loadtest_file(
    path: Path,
    rel: str,
    schema: Schema,
    rows: int,
    *,
    pool: TextPool,
    seed_key: str,
    ja_share: float,
    dup_share: float,
    wal: bool,
    hot_wal: bool,
    plants: list[Plant],
) -> tuple[FileInfo, list[PlantedRow]]:
    """Write one load-test database; returns its description and where its plants landed."""
    rng = random.Random(f"file:{seed_key}")
    ctx = Ctx(rng=rng, pool=pool, blob=rng.randbytes(1 << 16))
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        p.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode={'WAL' if wal else 'DELETE'}")
    conn.execute("PRAGMA synchronous=OFF")
    counts = split_rows(schema, rows)
    info = FileInfo(rel, "ok", schema.name, rows=sum(counts), wal=wal)
    planted: list[PlantedRow] = []
    conn.execute("BEGIN")
    for table in schema.tables:
        for stmt in table.ddl():
            conn.execute(stmt)
    for view in schema.views:
        conn.execute(view)
    hot_rows: Iterator[tuple[Any, ...]] | None = None
    hot_sql = ""
    for table, count in zip(schema.tables, counts, strict=True):
        mine = [p for p in plants if p.table == table.name][:count]
        positions = sorted(rng.sample(range(1, count + 1), len(mine))) if mine else []
        by_pos = dict(zip(positions, mine, strict=True))
        planted += [PlantedRow(p, rel, str(i)) for i, p in by_pos.items()]
        gen = _rows(table, ctx, count, schema=schema, ja_share=ja_share, dup_share=dup_share, plants=by_pos)
        if wal and hot_wal and table is schema.tables[-1] and count > 0:
            # At least one row stays uncheckpointed in the -wal (a table of one row: that row).
            cut = count - min(count, max(1, int(count * HOT_WAL_SHARE)))
            conn.executemany(table.insert_sql(), itertools.islice(gen, cut))
            hot_rows, hot_sql = gen, table.insert_sql()
        else:
            conn.executemany(table.insert_sql(), gen)
        ctx.parent_rows[table.name] = count
        info.tables[table.name] = count
    conn.execute("COMMIT")
    if hot_rows is not None:
        # Checkpoint what we have, then commit the rest into the WAL only and copy the
        # file pair before closing (closing would checkpoint and delete the -wal file).
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("BEGIN")
        conn.executemany(hot_sql, hot_rows)
        conn.execute("COMMIT")
        shutil.copyfile(path, f"{path}.hot")
        shutil.copyfile(f"{path}-wal", f"{path}-wal.hot")
        conn.close()
        os.replace(f"{path}.hot", path)
        os.replace(f"{path}-wal.hot", f"{path}-wal")
        Path(f"{path}-shm").unlink(missing_ok=True)
        info.hot_wal = True
    else:
        conn.close()
    info.size = path.stat().st_size
    return info, planted


def write_bad_file(path: Path, rel: str, kind: str, *, pool: TextPool, seed_key: str) -> FileInfo:
    """A broken file with a normal-looking name: what crashed or misnamed load tests leave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"bad:{seed_key}")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "not_sqlite":
        path.write_text("order_id,status,notes\n1,shipped,left at door\n2,pending,\n", encoding="utf-8")
    elif kind in ("truncated", "corrupt"):
        write_loadtest_file(
            path, rel, SCHEMAS["orders"], 600, pool=pool, seed_key=seed_key, ja_share=0.0,
            dup_share=0.0, wal=False, hot_wal=False, plants=[],
        )  # fmt: skip
        data = path.read_bytes()
        if kind == "truncated":
            # Page 1 (header and schema) survives; data pages are cut off mid-file.
            path.write_bytes(data[: len(data) // 2 + 123])
        else:
            # A valid header followed by garbage: passes a header check, fails on reading.
            path.write_bytes(data[:100] + rng.randbytes(len(data) - 100))
    else:  # pragma: no cover - programming error
        raise ValueError(kind)
    return FileInfo(rel, kind, size=path.stat().st_size, expect="failed")


BIG_DDL = (
    "CREATE TABLE telemetry_events (event_id INTEGER PRIMARY KEY, recorded_at INTEGER NOT NULL, "
    "device_id INTEGER, level TEXT, message TEXT, payload BLOB)"
)


def write_big_file(
    path: Path,
    rel: str,
    gigabytes: float,
    *,
    pool: TextPool,
    seed_key: str,
    dup_share: float,
    ja_share: float,
    row_kb: float,
) -> FileInfo:
    """One large file of ~``gigabytes`` GB for memory tests: pool text plus a blob per row.

    Journal off and synchronous off: this is scratch data, and it writes at disk speed.
    """
    rng = random.Random(f"big:{seed_key}")
    buf = rng.randbytes(1 << 22)
    blob_len = max(0, int(row_kb * 1024) - 200)
    rows = max(1, int(gigabytes * (1 << 30) / max(256, int(row_kb * 1024))))
    bank = [pool.text("chat", "ja" if n % 3 == 0 else "en", rng) for n in range(BANK_SIZE)]
    levels = ("INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG")

    def gen() -> Iterator[tuple[Any, ...]]:
        for i in range(1, rows + 1):
            if rng.random() < dup_share:
                msg = rng.choice(bank)
            else:
                msg = pool.text("chat", "ja" if rng.random() < ja_share else "en", rng)
            start = rng.randrange(0, len(buf) - blob_len) if blob_len else 0
            level = levels[rng.randrange(6)]
            yield (i, 1_704_067_200 + i, rng.randint(1, 5000), level, msg, buf[start : start + blob_len])

    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("BEGIN")
    conn.execute(BIG_DDL)
    conn.executemany("INSERT INTO telemetry_events VALUES (?, ?, ?, ?, ?, ?)", gen())
    conn.execute("COMMIT")
    conn.close()
    return FileInfo(
        rel, "ok", "telemetry", rows=rows, tables={"telemetry_events": rows}, size=path.stat().st_size
    )
