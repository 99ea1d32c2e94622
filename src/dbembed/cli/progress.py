"""Progress for ``dbembed run``: a rich bar on a TTY (files, rows, chunks, chunks/s, ETA),
plain log lines otherwise (CloudWatch, CI, pipes)."""

from __future__ import annotations

import sys
import time
from typing import Any


class RunProgress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.rows = self.chunks = self.files = 0
        self.t0 = time.perf_counter()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> RunProgress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]indexing"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("files"),
                TextColumn(
                    "{task.fields[rows]} rows, {task.fields[chunks]} chunks, {task.fields[rate]} chunks/s"
                ),
                TimeRemainingColumn(),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("index", total=None, rows=0, chunks=0, rate=0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def on_start(self, queued: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=queued)
        else:
            print(f"dbembed: {queued} file(s) to index", file=sys.stderr, flush=True)

    def on_file(self, res: Any) -> None:
        self.files += 1
        self.rows += res.rows
        self.chunks += res.chunks_written
        rate = int(self.chunks / max(1e-6, time.perf_counter() - self.t0))
        if self._progress is not None:
            self._progress.update(self._task, advance=1, rows=self.rows, chunks=self.chunks, rate=rate)
        else:
            extra = f" ({res.error})" if res.error else ""
            print(
                f"dbembed: {res.status} {res.path}: {res.rows} rows, {res.chunks_written} chunks,"
                f" {res.duration_s:.2f}s{extra}",
                file=sys.stderr,
                flush=True,
            )
