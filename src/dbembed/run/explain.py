"""Every skip explained where it happens: the lines a run summary prints about what it did not do.

A run that indexes nothing must say why and what to do (files left pending by ``--settle``,
unchanged files, files that failed before and were not retried), and a run that indexed files
with rejected rows or chunks must say how many and where to see them.
"""

from __future__ import annotations

from typing import Any


def _files(n: int) -> str:
    return f"{n:,} file{'' if n == 1 else 's'}"


def _seconds(s: float) -> str:
    return f"{s:g} s"


def skip_notes(summary: Any, settle_s: float, verify: bool = False) -> list[str]:
    """One line per kind of skip in ``summary`` (a ``RunSummary``), with the flag or command that
    changes it (never one the run already had: ``verify`` says ``--verify`` was on).  Empty when
    every file found was indexed."""
    notes: list[str] = []
    if summary.files_pending:
        notes.append(
            f"{_files(summary.files_pending)} changed in the last {_seconds(settle_s)} "
            f"{'was' if summary.files_pending == 1 else 'were'} left for the next run (still being written?); "
            "--settle 0 indexes them now"
        )
    unchanged = summary.files_skipped
    if unchanged > 0:
        same = "same size, mtime and content hash" if verify else "same size and mtime"
        hint = "--force re-reads them" if verify else "--verify also compares content, --force re-reads them"
        notes.append(
            f"{_files(unchanged)} unchanged since {'its' if unchanged == 1 else 'their'} last index ({same})"
            f" and skipped; {hint}"
        )
    if summary.files_still_failed:
        notes.append(
            f"{_files(summary.files_still_failed)} failed in an earlier run and did not change since, so "
            "not retried; `dbembed files --status failed` shows why, `dbembed retry-failed` queues them again"
        )
    rej = summary.rejected
    if rej.get("rows") or rej.get("chunks") or rej.get("tables"):
        parts = [f"{rej[k]:,} {k}" for k in ("tables", "rows", "chunks") if rej.get(k)]
        notes.append(
            f"{', '.join(parts)} rejected in {_files(rej.get('files', 0))} (the rest of each file is indexed); "
            "`dbembed files --rejected --show-rejections` lists them with reasons"
        )
    if summary.files_failed:
        notes.append(
            f"{_files(summary.files_failed)} failed; `dbembed files --status failed` lists them with reasons"
        )
    if summary.files_missing:
        notes.append(
            f"{_files(summary.files_missing)} no longer found under the roots and marked missing"
            " (their chunks were removed unless --keep-missing)"
        )
    if not summary.files_found:
        notes.append(
            "no SQLite files found under the roots (patterns: --include/--exclude; a file counts by its header)"
        )
    return notes
