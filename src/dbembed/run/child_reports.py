"""What ``--workers`` children report to their parent: each finished file and each embed+load step.

Without this the parent's progress (one line per file, the bar, the ETA) showed only the files the
parent itself indexed. Children put picklable tuples on a ``multiprocessing`` queue of the spawn
context; one thread in the parent drains it and calls the run's callbacks under the lock that also
wraps the parent's own calls, so the callbacks (not thread-safe) never run in two threads at once.
Reports are for display only: a report lost to a killed child, or a callback that raises, never
fails the run (the run record and the per-file rows in PostgreSQL are the truth).
"""

from __future__ import annotations

import logging
import queue as queue_mod
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

OnFile = Callable[[Any], None]
OnProgress = Callable[[str, int, int], None]


class ChildReports:
    """The parent's end: ``queue`` goes to each child, ``start``/``close`` around the children's life."""

    def __init__(self, ctx: Any, on_file: OnFile | None, on_progress: OnProgress | None) -> None:
        self.queue = ctx.Queue()
        self._lock = threading.Lock()
        self._on_file, self._on_progress = on_file, on_progress
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def parent_callbacks(self) -> tuple[OnFile | None, OnProgress | None]:
        """The run's callbacks, serialized with the children's reports (None stays None)."""
        on_file, on_progress = self._on_file, self._on_progress

        def file_cb(res: Any) -> None:
            with self._lock:
                on_file(res)  # type: ignore[misc]

        def progress_cb(path: str, rows: int, chunks: int) -> None:
            with self._lock:
                on_progress(path, rows, chunks)  # type: ignore[misc]

        return (file_cb if on_file else None), (progress_cb if on_progress else None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._drain, name="dbembed-child-reports", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Deliver what is queued (the children have ended or been stopped), then stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.queue.close()

    def _drain(self) -> None:
        while True:
            try:
                item = self.queue.get(timeout=0.2)
            except queue_mod.Empty:
                if self._stop.is_set():
                    return
                continue
            except (EOFError, OSError, ValueError) as exc:  # a child died mid-report: stop listening
                log.warning("worker reports stopped: %s", exc)
                return
            try:
                with self._lock:
                    self._dispatch(item)
            except Exception as exc:  # noqa: BLE001 - display only; the run's record is in PostgreSQL
                log.warning("could not show a worker's report: %s", exc)

    def _dispatch(self, item: tuple[Any, ...]) -> None:
        if item[0] == "file" and self._on_file is not None:
            self._on_file(item[1])
        elif item[0] == "progress" and self._on_progress is not None:
            self._on_progress(item[1], item[2], item[3])


def child_callbacks(reports: Any) -> tuple[OnFile | None, OnProgress | None]:
    """A child's callbacks that put its reports on the parent's queue (``reports`` None: none).

    The child never waits for the queue at exit (``cancel_join_thread``): a report may be lost
    if the parent is gone, but a child never hangs on it."""
    if reports is None:
        return None, None
    reports.cancel_join_thread()

    def on_file(res: Any) -> None:
        reports.put(("file", res))

    def on_progress(path: str, rows: int, chunks: int) -> None:
        reports.put(("progress", path, rows, chunks))

    return on_file, on_progress
