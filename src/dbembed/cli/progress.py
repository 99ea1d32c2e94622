"""Progress for ``dbembed run``: a rich bar on a TTY, plain log lines otherwise (CloudWatch, CI, pipes).

The bar counts rows, not files, so it moves within a file: the worker reports every embed+load
step (``on_progress``).  Its total is estimated before the first file is read from what discovery
learns cheaply (``dbembed.run.estimate``: SQLite ``max(rowid)`` per table, else bytes), and each
finished file replaces its estimate with its real row count.  The ETA is there from the start
when earlier runs on this machine and backend recorded a rows/s rate, and is refined by the rate
this run measures as soon as it has one.
"""

from __future__ import annotations

import sys
import time
from typing import Any

LOG_EVERY_S = 15.0  # plain mode: one progress line at most this often (besides one per file)
MEASURED_AFTER_S = 3.0  # trust this run's own rate after this many seconds of rows


def fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class RunProgress:
    def __init__(self, enabled: bool, console: Any = None) -> None:
        self.enabled = enabled
        self.console = console  # a rich Console (default: stderr)
        self.t0 = time.perf_counter()
        self.first_row_at: float | None = None
        self.nfiles = self.files = 0
        self.rows_done = 0  # rows of finished files (actual)
        self.chunks_done = 0  # chunks written by finished files
        self.in_file: dict[str, tuple[int, int]] = {}  # (rows read, chunks written) per file in progress
        self.estimates: dict[str, int] = {}
        self.est_total = 0
        self.prior_rate: float | None = None  # rows/s of earlier runs on this machine and backend
        self._last_log = 0.0
        self._progress: Any = None
        self._task: Any = None

    # -- numbers -------------------------------------------------------------------------------
    @property
    def completed(self) -> int:
        return self.rows_done + sum(r for r, _ in self.in_file.values())

    @property
    def chunks(self) -> int:
        return self.chunks_done + sum(c for _, c in self.in_file.values())

    @property
    def total(self) -> int:
        return max(self.est_total, self.completed)

    def rate(self) -> float | None:
        """rows/s: this run's own once it has measured some, else the earlier runs'."""
        if self.first_row_at is not None:
            elapsed = time.perf_counter() - self.first_row_at
            if elapsed >= MEASURED_AFTER_S and self.completed:
                return self.completed / elapsed
        return self.prior_rate

    def eta(self) -> float | None:
        rate = self.rate()
        if not rate:
            return None
        return max(0, self.total - self.completed) / rate

    # -- callbacks from the run ----------------------------------------------------------------
    def __enter__(self) -> RunProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("[bold]indexing"),
                BarColumn(),
                TextColumn("{task.fields[rows]} rows"),
                TextColumn("{task.fields[files]}/{task.fields[nfiles]} files, {task.fields[chunks]:,} chunks,"
                           " {task.fields[crate]} chunks/s"),
                TextColumn("ETA {task.fields[eta]}"),
                transient=False,
                console=self.console or Console(stderr=True),
            )  # fmt: skip
            self._progress.__enter__()
            self._task = self._progress.add_task(
                "index", total=None, rows="0", files=0, nfiles=0, chunks=0, crate=0, eta=fmt_eta(None)
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.__exit__(*exc)

    def on_start(self, queued: int) -> None:
        self.nfiles = queued
        if self._progress is None:
            print(f"dbembed: {queued} file(s) to index", file=sys.stderr, flush=True)
        self._refresh()

    def on_estimate(self, rows_by_file: dict[str, int], prior_rows_per_s: float | None) -> None:
        self.estimates = dict(rows_by_file)
        self.est_total = sum(self.estimates.values())
        self.prior_rate = prior_rows_per_s
        if self._progress is None:
            eta = self.eta()
            print(
                f"dbembed: ~{self.est_total:,} rows to read"
                + (f", ETA {fmt_eta(eta)} at earlier runs' {self.prior_rate:,.0f} rows/s" if eta is not None else ""),
                file=sys.stderr,
                flush=True,
            )
        self._refresh()

    def on_progress(self, path: str, rows: int, chunks: int) -> None:
        if self.first_row_at is None:
            self.first_row_at = time.perf_counter()
        r, c = self.in_file.get(path, (0, 0))
        self.in_file[path] = (r + rows, c + chunks)
        self._refresh()
        now = time.perf_counter()
        if self._progress is None and now - self._last_log >= LOG_EVERY_S:
            self._last_log = now
            print(f"dbembed: {self._line()}", file=sys.stderr, flush=True)

    def on_file(self, res: Any) -> None:
        self.files += 1
        self.in_file.pop(res.path, None)
        est = self.estimates.pop(res.path, None)
        if est is not None:
            self.est_total += res.rows - est
        else:
            self.est_total += res.rows
        self.rows_done += res.rows
        self.chunks_done += res.chunks_written
        self._refresh()
        if self._progress is None:
            extra = f" ({res.error})" if res.error else ""
            print(
                f"dbembed: {res.status} {res.path}: {res.rows} rows, {res.chunks_written} chunks,"
                f" {res.duration_s:.2f}s{extra} | {self._line()}",
                file=sys.stderr,
                flush=True,
            )

    def _line(self) -> str:
        pct = 100.0 * self.completed / self.total if self.total else 0.0
        return (
            f"{self.completed:,}/~{self.total:,} rows ({pct:.0f}%), {self.files}/{self.nfiles} files,"
            f" {self.chunks:,} chunks, ETA {fmt_eta(self.eta())}"
        )

    def _refresh(self) -> None:
        if self._progress is None:
            return
        elapsed = max(1e-6, time.perf_counter() - self.t0)
        self._progress.update(
            self._task,
            total=self.total or None,
            completed=self.completed,
            rows=f"{self.completed:,}/~{self.total:,}",
            files=self.files,
            nfiles=self.nfiles,
            chunks=self.chunks,
            crate=int(self.chunks / elapsed),
            eta=fmt_eta(self.eta()),
        )
