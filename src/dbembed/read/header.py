"""The 100-byte SQLite file header: is this SQLite, is it WAL, has it changed?

Discovery and the reader both look at the header before they hand the file to
SQLite, because SQLite's own errors for non-database files ("file is not a
database") are vague, and because the header tells us cheaply whether the file
is in WAL mode (bytes 18/19 == 2) and whether a writer committed since we last
looked (the file change counter at offset 24).  Only plain ``open(..., "rb")``
reads are used, so nothing is ever written to the file.

Reference: https://www.sqlite.org/fileformat.html#the_database_header
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"SQLite format 3\x00"
HEADER_SIZE = 100

EMPTY = "empty file (0 bytes)"
BAD_HEADER = "not an SQLite database (bad header)"
ENCRYPTED = "not an SQLite database (bad header; encrypted?)"
PERMISSION = "permission denied"
VANISHED = "file vanished"


@dataclass(frozen=True)
class Header:
    """The fields of the header that dbembed cares about."""

    page_size: int
    wal: bool  # file format read/write versions are 2 (journal_mode=WAL)
    change_counter: int
    page_count: int  # "in-header database size"; 0 when not valid (written by very old SQLite)

    @property
    def expected_size(self) -> int:
        return self.page_size * self.page_count


@dataclass(frozen=True)
class Fingerprint:
    """What must stay equal while we read a file for the read to be consistent."""

    size: int
    mtime_ns: int
    change_counter: int


def looks_encrypted(data: bytes) -> bool:
    """Random-looking bytes (many distinct values, many non-printable) suggest encryption (SQLCipher...)."""
    sample = data[:256]
    if len(sample) < 32:
        return False
    distinct = len(set(sample))
    unprintable = sum(1 for b in sample if b < 9 or 13 < b < 32 or b > 126)
    return distinct >= len(sample) // 2 and unprintable >= len(sample) // 4


def parse_header(data: bytes) -> Header | None:
    """Parse a header; None when ``data`` does not start with the SQLite magic string."""
    if len(data) < HEADER_SIZE or not data.startswith(MAGIC):
        return None
    raw_page_size = int.from_bytes(data[16:18], "big")
    page_size = 65536 if raw_page_size == 1 else raw_page_size
    change_counter = int.from_bytes(data[24:28], "big")
    page_count = int.from_bytes(data[28:32], "big")
    version_valid_for = int.from_bytes(data[92:96], "big")
    if version_valid_for != change_counter:
        page_count = 0  # the in-header size is only trustworthy when these match
    return Header(
        page_size=page_size,
        wal=data[18] == 2 and data[19] == 2,
        change_counter=change_counter,
        page_count=page_count,
    )


def problem_with(data: bytes, size: int) -> str | None:
    """Why ``data`` (the first bytes of a file of ``size`` bytes) is not a readable SQLite header."""
    if size == 0:
        return EMPTY
    if not data.startswith(MAGIC):
        return ENCRYPTED if looks_encrypted(data) else BAD_HEADER
    if len(data) < HEADER_SIZE:
        return "truncated database file (shorter than the 100-byte header)"
    return None


def read_prefix(path: Path | str, n: int = 256) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def check_file(path: Path | str) -> tuple[Header | None, str | None]:
    """(header, None) for a plausible SQLite file, else (None, one-line reason).  Never raises OSError."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            return None, "is a directory"
        if not stat.S_ISREG(st.st_mode):  # a FIFO, socket or device named *.db: opening one may block
            return None, "not a regular file (FIFO, socket or device)"
        size = st.st_size
        data = read_prefix(path)
    except FileNotFoundError:
        return None, VANISHED
    except PermissionError:
        return None, PERMISSION
    except IsADirectoryError:
        return None, "is a directory"
    except OSError as exc:
        return None, f"cannot read file ({exc.strerror or exc})"
    reason = problem_with(data, size)
    if reason is not None:
        return None, reason
    return parse_header(data), None


def fingerprint(path: Path | str) -> Fingerprint:
    """Size, mtime and change counter.  Raises OSError (FileNotFoundError when the file vanished).

    Only call this while no SQLite statement on ``path`` is active: closing any file
    descriptor of a file drops the process's POSIX locks on it (a known SQLite caveat).
    """
    st = os.stat(path)
    with open(path, "rb") as fh:
        fh.seek(24)
        counter = int.from_bytes(fh.read(4), "big")
    return Fingerprint(size=st.st_size, mtime_ns=st.st_mtime_ns, change_counter=counter)
