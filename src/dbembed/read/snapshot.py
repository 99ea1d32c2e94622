"""Open someone else's SQLite file without disturbing it, or take a private snapshot.

The files we index belong to other programs that may be writing them right now,
possibly over NFS/SMB.  So:

* the live file is only ever opened with ``mode=ro`` (a percent-quoted ``file:``
  URI), ``query_only`` and a busy timeout; SQLite never writes to it and, in
  rollback-journal mode, creates nothing next to it;
* a WAL-mode file is copied with the backup API into a private temp directory
  (one read transaction: a consistent point in time that includes the
  uncheckpointed ``-wal`` content).  Opening it read-only needs an existing
  ``-shm``; when there is none (SQLite would create one next to the file) or
  opening fails (read-only directory, stale ``-shm``), the database and its
  ``-wal``/``-journal`` files are copied byte for byte instead, and SQLite
  recovers them inside the temp directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path
from urllib.parse import quote

from dbembed.errors import SourceError
from dbembed.read import header as hdr

SNAPSHOT_NAME = "snapshot.db"
COPY_ATTEMPTS = 3


def ro_uri(path: Path) -> str:
    """``file:`` URI for read-only access; the path is percent-quoted (``?``, ``#``, ``%``, spaces)."""
    posix = Path(path).absolute().as_posix()
    if not posix.startswith("/"):  # Windows drive paths: file:///C:/...
        posix = "/" + posix
    # Bytes, not str: a name that is not valid UTF-8 (lone surrogates in Python) is quoted byte by byte.
    return "file:" + quote(os.fsencode(posix), safe="/:") + "?mode=ro"


def _decode_text(raw: bytes) -> str:
    # Real-world files hold invalid UTF-8; the default text factory would abort the whole read.
    return raw.decode("utf-8", "replace")


def _configure(conn: sqlite3.Connection, busy_timeout_ms: int) -> sqlite3.Connection:
    conn.text_factory = _decode_text
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA query_only = 1")
    with contextlib.suppress(sqlite3.Error):  # SQLite >= 3.31: no app functions from untrusted schemas
        conn.execute("PRAGMA trusted_schema = 0")
    return conn


def open_readonly(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """A read-only, autocommit connection to a file we do not own.

    Autocommit (``isolation_level=None``) keeps every read transaction as short as
    one statement, so a rollback-journal writer is never blocked for long.
    """
    conn = sqlite3.connect(
        ro_uri(path),
        uri=True,
        timeout=busy_timeout_ms / 1000.0,
        isolation_level=None,
        check_same_thread=False,
    )
    return _configure(conn, busy_timeout_ms)


def open_private(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open our own snapshot (read-write at the file level so SQLite can recover a copied WAL/journal)."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.text_factory = _decode_text
    # Fold a copied -wal into the snapshot (or roll back a copied hot journal) once, up front.
    conn.execute("PRAGMA journal_mode = DELETE").fetchall()
    return _configure(conn, busy_timeout_ms)


def backup_snapshot(source: sqlite3.Connection, tmpdir: Path) -> Path:
    """Copy ``source`` into ``tmpdir`` with the backup API, in one step (one consistent read)."""
    dest_path = tmpdir / SNAPSHOT_NAME
    for leftover in (dest_path, tmpdir / (SNAPSHOT_NAME + "-journal"), tmpdir / (SNAPSHOT_NAME + "-wal")):
        leftover.unlink(missing_ok=True)
    dest = sqlite3.connect(str(dest_path), isolation_level=None)
    try:
        source.backup(dest)  # pages=-1: everything under a single read lock
    finally:
        dest.close()
    return dest_path


def _sidecars(path: Path) -> list[Path]:
    """The files SQLite needs along with the database to see committed data (never the -shm)."""
    return [p for p in (Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists()]


def _stats(paths: list[Path]) -> list[tuple[int, int]]:
    out = []
    for p in paths:
        try:
            st = p.stat()
        except FileNotFoundError:
            out.append((-1, -1))
        else:
            out.append((st.st_size, st.st_mtime_ns))
    return out


def copy_snapshot(path: Path, tmpdir: Path) -> Path:
    """Byte-copy the database and its -wal/-journal into ``tmpdir``; retry while it keeps changing.

    Used where a read-only SQLite open is impossible or would create files next to
    the source.  The copy is accepted only if size and mtime of every copied file
    are the same before and after (WAL frames carry checksums, so a torn -wal tail
    is ignored by SQLite anyway).
    """
    dest = tmpdir / SNAPSHOT_NAME
    for _attempt in range(COPY_ATTEMPTS):
        for old in tmpdir.glob(SNAPSHOT_NAME + "*"):
            old.unlink()
        sources = [path, *_sidecars(path)]
        before = _stats(sources)
        shutil.copyfile(path, dest)
        for side in sources[1:]:
            suffix = str(side)[len(str(path)) :]
            with contextlib.suppress(FileNotFoundError):  # a checkpoint may remove the -wal meanwhile
                shutil.copyfile(side, Path(f"{dest}{suffix}"))
        if _stats(sources) == before and _stats([path, *_sidecars(path)]) == _stats(sources):
            return dest
    raise SourceError(f"file kept changing while being copied ({COPY_ATTEMPTS} attempts)")


def describe_error(exc: BaseException, path: Path, busy_timeout_ms: int = 0) -> str:
    """One-line, user-facing reason for an error raised while opening or reading ``path``."""
    if isinstance(exc, SourceError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return "file vanished while being read"
    if isinstance(exc, PermissionError):
        return hdr.PERMISSION
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    low = msg.lower()
    if "malformed" in low or "corrupt" in low:
        truncated = _truncation(path)
        return truncated or "corrupt database (database disk image is malformed)"
    if "not a database" in low or "encrypted" in low:
        _, reason = hdr.check_file(path)
        return reason or f"corrupt database ({msg})"  # the header looked fine, the rest does not
    if "locked" in low or "busy" in low:
        return f"database is locked (still busy after {busy_timeout_ms} ms)"
    if "unable to open" in low:
        if not os.path.exists(path):
            return "file vanished while being read"
        if not os.access(path, os.R_OK):
            return hdr.PERMISSION
        return "unable to open database file"
    if "disk i/o" in low:
        return "disk I/O error while reading (file changed underneath us, or a network share hiccup)"
    if isinstance(exc, OSError):
        return f"cannot read file ({exc.strerror or msg})"
    return f"SQLite error: {msg}"


def is_file_level(exc: BaseException, path: Path) -> bool:
    """Whether an error met while reading one table concerns the whole file (locked, vanished,
    truncated, I/O) rather than that table alone (unknown collation or module, a corrupt page in
    the table's b-tree, a view that errors)."""
    if isinstance(exc, SourceError | OSError):
        return True
    low = str(exc).lower()
    if any(w in low for w in ("locked", "busy", "disk i/o", "unable to open", "not a database", "interrupt")):
        return True
    return ("malformed" in low or "corrupt" in low) and _truncation(path) is not None


def _truncation(path: Path) -> str | None:
    header, _ = hdr.check_file(path)
    if header is None or header.page_count == 0:
        return None
    try:
        size = os.stat(path).st_size
    except OSError:
        return None
    if size < header.expected_size:
        return f"truncated database file ({size} of {header.expected_size} bytes; database disk image is malformed)"
    return None


def as_source_error(exc: BaseException, path: Path, busy_timeout_ms: int = 0) -> SourceError:
    if isinstance(exc, SourceError):
        return exc
    err = SourceError(describe_error(exc, path, busy_timeout_ms))
    err.__cause__ = exc
    return err
