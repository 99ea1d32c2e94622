"""How much work a run has, learned cheaply before it starts, so that progress has an ETA at once.

For each file a run will read, ``estimate_rows`` counts rows with ``dbembed.read.estimate.count_rows``
(SQLite ``max(rowid)`` per table that may hold text, exact counts for small tables).  Files that
cannot be opened, S3 objects and files beyond ``max_files`` are estimated from their size (with
their -wal's, where rows a crashed writer never checkpointed live) at the rows-per-byte measured on
the others.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from dbembed.discover.names import real_path
from dbembed.read.estimate import count_rows

DEFAULT_BYTES_PER_ROW = 200.0  # when no file could be measured (a typical small-row SQLite table)


def rows_in_file(path: str) -> int | None:
    """Estimated rows of one SQLite file (display form or ``s3://``), or None when it cannot be
    read cheaply."""
    if path.startswith("s3://"):
        return None
    try:
        return count_rows(Path(real_path(path)))
    except ValueError:
        return None


def _wal_bytes(path: str) -> int:
    """Size of a local file's -wal (rows not yet checkpointed live there), else 0."""
    if path.startswith("s3://"):
        return 0
    try:
        return os.stat(os.fsdecode(real_path(path)) + "-wal").st_size
    except (OSError, ValueError):
        return 0


def estimate_rows(files: Sequence[tuple[str, int | None]], max_files: int = 2000) -> dict[str, int]:
    """path -> estimated rows for ``(path, size in bytes)`` pairs (see the module docstring)."""
    out: dict[str, int] = {}
    measured_rows = measured_bytes = 0
    unknown: list[tuple[str, int]] = []
    for i, (path, size) in enumerate(files):
        rows = rows_in_file(path) if i < max_files else None
        if rows is None:
            unknown.append((path, int(size or 0) + _wal_bytes(path)))
            continue
        out[path] = rows
        measured_rows += rows
        measured_bytes += int(size or 0)
    bytes_per_row = measured_bytes / measured_rows if measured_rows and measured_bytes else DEFAULT_BYTES_PER_ROW
    for path, size in unknown:
        out[path] = int(size / bytes_per_row)
    return out
