"""``SqliteSource``: read one SQLite file safely, consistently and in bounded memory.

How a file is read depends on what it is doing:

* rollback-journal mode: read live through a read-only connection, one short
  read transaction per page.  The file's size, mtime and header change counter
  are compared after introspection and after every page; if a writer committed
  meanwhile, the rest is read from a private snapshot (backup API), continuing
  after the last key, so every row handed out is a committed version and none is
  repeated or skipped by paging.
* WAL mode: always from a private snapshot taken up front (see ``snapshot``), which
  includes the uncheckpointed ``-wal`` content and costs the writer nothing.
* a hot journal (a writer crashed) makes read-only opens fail: the file and its
  journal are copied and SQLite rolls the copy back.

Every failure surfaces as ``SourceError`` with a one-line reason.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from dbembed.errors import SourceError, TableReadError
from dbembed.read import header as hdr
from dbembed.read import snapshot as snap
from dbembed.read.introspect import TableInfo, list_tables
from dbembed.read.rows import Row, RowReader

if TYPE_CHECKING:
    from dbembed.config import SourcesSettings

log = logging.getLogger(__name__)


class SqliteSource:
    """Context manager over one SQLite file; temp snapshots are deleted on exit."""

    def __init__(self, path: Path, settings: SourcesSettings) -> None:
        self.path = Path(path)
        self.settings = settings
        self.used_snapshot = False
        self.skipped: dict[str, str] = {}  # table -> why it is not read (views, no text, config...)
        self.rejected: dict[str, str] = {}  # table -> why it could not be read (an error: a rejection)
        self._conn: sqlite3.Connection | None = None
        self._tmpdir: Path | None = None
        self._fp: hdr.Fingerprint | None = None  # set while reading the live file

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> SqliteSource:
        try:
            with self._errors():
                self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except SourceError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise snap.as_source_error(exc, self.path, self.settings.busy_timeout_ms) from exc

    # -- opening --------------------------------------------------------------------------------
    def _open(self) -> None:
        header, reason = hdr.check_file(self.path)
        if reason is not None or header is None:
            raise SourceError(reason or hdr.BAD_HEADER)
        if header.wal:
            self._snapshot_wal()
            return
        fp = hdr.fingerprint(self.path)
        conn = snap.open_readonly(self.path, self.settings.busy_timeout_ms)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # reads the schema: fails early
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        except sqlite3.OperationalError as exc:
            conn.close()
            if _needs_copy(exc):  # e.g. a hot journal that only a writer could roll back
                self._use_snapshot(snap.copy_snapshot(self.path, self._make_tmpdir()))
                return
            raise
        except BaseException:
            conn.close()
            raise
        if str(mode).lower() == "wal":  # switched to WAL after we looked at the header
            conn.close()
            self._snapshot_wal()
            return
        self._conn, self._fp = conn, fp

    def _make_tmpdir(self) -> Path:
        if self._tmpdir is None:
            base = self.settings.snapshot_dir
            if base is not None:
                Path(base).mkdir(parents=True, exist_ok=True)
            self._tmpdir = Path(tempfile.mkdtemp(prefix="dbembed-snap-", dir=base))
        return self._tmpdir

    def _use_snapshot(self, path: Path) -> None:
        self._conn = snap.open_private(path, self.settings.busy_timeout_ms)
        self._conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        self._fp = None
        self.used_snapshot = True

    def _snapshot_wal(self) -> None:
        """Snapshot a WAL-mode file: backup API when a -shm exists to share, else a file copy."""
        tmp = self._make_tmpdir()
        if Path(f"{self.path}-wal").exists() and Path(f"{self.path}-shm").exists():
            try:
                src = snap.open_readonly(self.path, self.settings.busy_timeout_ms)
                try:
                    path = snap.backup_snapshot(src, tmp)
                finally:
                    src.close()
            except sqlite3.OperationalError as exc:  # read-only dir/-shm, stale -shm needing recovery...
                log.debug("read-only open of %s failed (%s); copying db + -wal instead", self.path, exc)
                path = snap.copy_snapshot(self.path, tmp)
        else:
            # Without a -shm, even a read-only open would create -wal/-shm next to the file.
            path = snap.copy_snapshot(self.path, tmp)
        self._use_snapshot(path)

    def _switch_to_snapshot(self) -> None:
        """The live file changed while we read it: continue from a consistent private copy."""
        log.info("%s changed while being read; continuing from a snapshot", self.path)
        live = self._conn
        self._conn = None
        header, reason = hdr.check_file(self.path)
        if reason is not None or header is None:
            if live is not None:
                live.close()
            raise SourceError(f"{reason or hdr.BAD_HEADER} (while being read)")
        if header.wal or live is None:
            if live is not None:
                live.close()
            self._snapshot_wal()
            return
        try:
            path = snap.backup_snapshot(live, self._make_tmpdir())
        finally:
            live.close()
        self._use_snapshot(path)

    def _check_live(self) -> bool:
        """True when the file changed since we opened it (we then moved to a snapshot)."""
        if self._fp is None:
            return False
        try:
            now = hdr.fingerprint(self.path)
        except FileNotFoundError as exc:
            raise SourceError("file vanished while being read") from exc
        if now == self._fp:
            return False
        self._switch_to_snapshot()
        return True

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("SqliteSource is not open (use it as a context manager)")
        return self._conn

    # -- reading ----------------------------------------------------------------------------------
    def tables(self) -> list[TableInfo]:
        """Tables (and views when asked) with text to embed; reasons for the rest in ``skipped``."""
        with self._errors():
            skipped: dict[str, str] = {}
            rejected: dict[str, str] = {}
            found = list_tables(self.conn, self.settings, skipped, rejected)
            if self._check_live():
                skipped, rejected = {}, {}
                found = list_tables(self.conn, self.settings, skipped, rejected)
            self.skipped, self.rejected = skipped, rejected
            return found

    def rows(self, table: TableInfo) -> Iterator[Row]:
        """All rows of ``table``, ``settings.page_size`` at a time.

        Raises ``TableReadError`` when only this table cannot be read (the caller skips it) and
        ``SourceError`` when the whole file is at fault."""
        reader = RowReader(table, self.settings.page_size)
        while not reader.done:
            try:
                page = reader.next_page(self.conn)
            except sqlite3.Error as exc:
                if snap.is_file_level(exc, self.path):
                    raise snap.as_source_error(exc, self.path, self.settings.busy_timeout_ms) from exc
                raise TableReadError(snap.describe_error(exc, self.path), table.name) from exc
            with self._errors():
                self._check_live()
            yield from page


def _needs_copy(exc: sqlite3.OperationalError) -> bool:
    msg = str(exc).lower()
    return "readonly" in msg or "read-only" in msg or "unable to open" in msg or "recovery" in msg
