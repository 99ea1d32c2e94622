"""Realistic, deterministic SQLite load-test data (``dbembed generate``).

Why it exists: dbembed's inputs are SQLite files that load tests leave on shared volumes,
and its tests and benchmarks need many of them, of known content, in the shapes that
matter (nested folders, several schemas, English and Japanese text, repeated payloads,
WAL files, broken files, one big file).  Same ``seed`` -> byte-identical row contents.

Layout of OUT_DIR: ``<env>/[<date>/][run-NNNN/[node-N/]]<app>[-NNNN].{db,sqlite,sqlite3}``.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dbembed.errors import InvalidInput, echo, in_range
from dbembed.generate.files import (
    FileInfo,
    PlantedRow,
    write_bad_file,
    write_big_file,
    write_loadtest_file,
)
from dbembed.generate.hostile import write_hostile_files
from dbembed.generate.planted import PLANTS
from dbembed.generate.pool import get_pool
from dbembed.generate.schemas import SCHEMAS, Schema

__all__ = ["GenerateReport", "generate", "planted_records"]

SCHEMA_ORDER = ("support", "orders", "chat", "catalog")
ENVS = ("staging", "perf", "replay")
SUFFIXES = (".db", ".db", ".sqlite", ".sqlite3")
BAD_KINDS = ("truncated", "not_sqlite", "empty", "corrupt")

# Upper bounds no load test needs to exceed (named in `dbembed generate --help` and generate()'s docstring).
MAX_FILES = 1_000_000
MAX_ROWS = 100_000_000  # per database
MAX_BIG_GB = 1024.0
MAX_BIG_ROW_KB = 4096.0  # rows of the big file cut their blob from a 4 MiB buffer
SEED_RANGE = (-(2**63), 2**63 - 1)


@dataclass
class GenerateReport:
    out_dir: str
    seed: int
    files: list[FileInfo] = field(default_factory=list)
    planted: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["rows_per_s"] = round(self.rows_per_s)
        d["seconds"] = round(self.seconds, 3)
        return d


def _relpath(k: int, schema: Schema, rng: random.Random) -> str:
    env = ENVS[k % len(ENVS)]
    date = f"2024-03-{1 + (k // 5) % 28:02d}"
    stem = rng.choice(schema.file_stems)
    suffix = rng.choice(SUFFIXES)
    shape = k % 4
    if shape == 0:
        return f"{env}/{stem}-{k:04d}{suffix}"
    if shape == 1:
        return f"{env}/{date}/run-{k:04d}/{stem}{suffix}"
    if shape == 2:
        return f"{env}/{date}/run-{k:04d}/node-{k % 3}/{stem}{suffix}"
    return f"{env}/{date}/{stem}-{k:04d}{suffix}"


def planted_records(out_dir: Path, planted: list[PlantedRow]) -> list[dict[str, Any]]:
    """The ``--planted`` JSON entries.  ``file`` is relative to OUT_DIR; ``path`` is absolute;
    ``queries`` lists every labelled query of the row (``type`` from ``planted.QUERY_TYPES``)."""
    root = out_dir.resolve()
    return [
        {
            "query": p.plant.query,
            "file": p.file,
            "path": str(root / p.file),
            "table": p.plant.table,
            "row_key": p.row_key,
            "text": p.plant.values[p.plant.main],
            "lang": p.plant.lang,
            "queries": [{"type": t, "query": q} for t, q in p.plant.labelled()],
        }
        for p in planted
    ]


def _number(what: str, value: object, low: float, high: float) -> float:
    """``value`` when it is a finite number (not a bool) in ``low..high``, else ``InvalidInput``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidInput(f"{what}: must be between {low:g} and {high:g} (got {echo(value)})", what)
    return float(value)


def _check_options(
    *, big_gb: float, big_row_kb: float, big_dup_share: float | None, **values: object
) -> None:
    """Refuse (``InvalidInput`` naming the parameter) a value that is not finite, out of its bounds,
    or a big-file row bigger than the whole big file."""
    in_range("files", values["files"], 0, MAX_FILES)
    in_range("rows", values["rows"], 0, MAX_ROWS)
    in_range("seed", values["seed"], *SEED_RANGE)
    shares = {name: values[name] for name in ("ja_share", "dup_share", "wal_share")}
    if big_dup_share is not None:
        shares["big_dup_share"] = big_dup_share
    for name, share in shares.items():
        _number(name, share, 0.0, 1.0)
    _number("big_gb", big_gb, 0.0, MAX_BIG_GB)
    _number("big_row_kb", big_row_kb, 0.0, MAX_BIG_ROW_KB)
    if big_gb > 0 and big_row_kb * 1024 > big_gb * (1 << 30):
        raise InvalidInput(
            f"big_row_kb: a row of {big_row_kb:g} KB would be bigger than the whole big file"
            f" ({big_gb * (1 << 20):g} KB)",
            "big_row_kb",
        )


def _make_dir(what: str, path: Path, shown: Path | None = None) -> Path:
    """``path`` made a directory (with its parents), else ``InvalidInput`` about parameter ``what``
    (a file in the way, no permission, a read-only file system)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = "" if shown is None else f" for {echo(str(shown))}"
        raise InvalidInput(
            f"{what}: cannot create the directory {echo(str(path))}{where} ({reason})", what
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InvalidInput(f"{what}: cannot write in the directory {echo(str(path))} (no permission)", what)
    return path


def generate(
    out_dir: Path | str,
    *,
    files: int = 10,
    rows: int = 1000,
    seed: int = 0,
    ja_share: float = 0.3,
    dup_share: float = 0.3,
    wal_share: float = 0.2,
    hot_wal: bool = True,
    bad: bool = False,
    planted: Path | str | None = None,
    big_gb: float = 0.0,
    big_row_kb: float = 8.0,
    big_dup_share: float | None = None,
) -> GenerateReport:
    """Write the load-test files under ``out_dir`` and return what was written.

    Files are assigned schemas round-robin (support, orders, chat, catalog), so any
    ``files >= 4`` covers all four; the ~20 planted rows go to files of their schema.

    Bounds: ``files`` 0..1,000,000, ``rows`` 0..100,000,000 per database, shares 0..1,
    ``big_gb`` 0..1024 (GB, 0 = no big file), ``big_row_kb`` 0..4096 (KB) and at most the big
    file's size, ``seed`` a signed 64-bit integer.  Raises ``InvalidInput`` naming the parameter
    for a value out of bounds (or not a finite number), and for an ``out_dir`` or ``planted``
    path that cannot be made (a file in the way, no permission); nothing is written then.
    """
    _check_options(
        files=files, rows=rows, seed=seed, ja_share=ja_share, dup_share=dup_share, wal_share=wal_share,
        big_gb=big_gb, big_row_kb=big_row_kb, big_dup_share=big_dup_share,
    )  # fmt: skip
    started = time.perf_counter()
    if planted is not None:
        if Path(planted).is_dir():
            raise InvalidInput(
                f"planted: is a directory, give a file name (got {echo(str(planted))})", "planted"
            )
        _make_dir("planted", Path(planted).parent, shown=Path(planted))
    out = _make_dir("out_dir", Path(out_dir))
    pool = get_pool(seed)
    layout = random.Random(f"layout:{seed}")
    wal_files = set(layout.sample(range(files), round(files * wal_share)))
    schemas = [SCHEMAS[SCHEMA_ORDER[k % len(SCHEMA_ORDER)]] for k in range(files)]
    # Plants go round-robin over the files of their schema.
    plants_for: dict[int, list] = {k: [] for k in range(files)}
    seen: dict[str, int] = {}
    for plant in PLANTS:
        candidates = [k for k in range(files) if schemas[k].name == plant.schema]
        if candidates and rows > 0:
            j = seen.get(plant.schema, 0)
            plants_for[candidates[j % len(candidates)]].append(plant)
            seen[plant.schema] = j + 1
    report = GenerateReport(out_dir=str(out.resolve()), seed=seed)
    all_planted: list[PlantedRow] = []
    for k in range(files):
        rel = _relpath(k, schemas[k], layout)
        info, got = write_loadtest_file(
            out / rel, rel, schemas[k], rows, pool=pool, seed_key=f"{seed}:{k}", ja_share=ja_share,
            dup_share=dup_share, wal=k in wal_files, hot_wal=hot_wal, plants=plants_for[k],
        )  # fmt: skip
        report.files.append(info)
        all_planted += got
    if bad:
        for n, kind in enumerate(BAD_KINDS):
            rel = f"{ENVS[n % len(ENVS)]}/crashed/run-{9000 + n}/{SCHEMA_ORDER[n]}.db"
            report.files.append(write_bad_file(out / rel, rel, kind, pool=pool, seed_key=f"{seed}:bad{n}"))
        report.files.extend(write_hostile_files(out))
    if big_gb > 0:
        rel = f"big/telemetry-{big_gb:g}gb.db"
        report.files.append(
            write_big_file(
                out / rel, rel, big_gb, pool=pool, seed_key=str(seed),
                dup_share=dup_share if big_dup_share is None else big_dup_share,
                ja_share=ja_share, row_kb=big_row_kb,
            )
        )  # fmt: skip
    report.planted = planted_records(out, all_planted)
    if planted is not None:
        Path(planted).write_text(
            json.dumps(report.planted, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    report.rows = sum(f.rows for f in report.files)
    report.bytes = sum(f.size for f in report.files)
    report.seconds = time.perf_counter() - started
    return report
