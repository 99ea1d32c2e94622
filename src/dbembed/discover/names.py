r"""File and folder names that are not valid UTF-8: one stable, reversible text form.

POSIX file names are bytes.  Python hands undecodable bytes over as lone surrogates
(``surrogateescape``: ``caf\xe9.db`` -> ``'caf\udce9.db'``), which PostgreSQL, JSON and
terminals cannot hold.  dbembed therefore stores and shows every local path in its
**display form** and opens files through :func:`real_path`:

* a path that is valid UTF-8 (nearly all) is its own display form, unchanged;
* otherwise each byte that is not part of valid UTF-8 is written ``\xHH`` (two lowercase
  hex digits, as ``ls -b`` and Python show it) and every backslash is doubled (``\\``).
  ``/data/caf\xe9.db`` (the byte 0xE9, Latin-1 "é") is stored as ``/data/caf\xe9.db``.
* a valid path that happens to contain the text ``\x`` followed by two hex digits
  80-ff is escaped the same way (its backslashes doubled), so the forms never collide.

A display form is escaped exactly when it contains ``\x`` + two hex digits 80-ff; decoding
turns ``\\`` into ``\`` and ``\xHH`` into the byte HH.  The same form appears in
``sources.path``, the sidecar's ``file_path``, search hits, ``status`` and every JSON output,
and works as a CLI argument (``dbembed search --file``).  Windows paths are always valid
Unicode and are never escaped.
"""

from __future__ import annotations

import os
import re

_ESCAPED = re.compile(r"\\x[89a-fA-F][0-9a-fA-F]")
_TOKEN = re.compile(r"\\\\|\\x([0-9a-fA-F]{2})")
_SURROGATE = re.compile("[\udc80-\udcff]")


def display_path(path: str) -> str:
    """The stored/shown form of a path from ``os`` functions (which may hold lone surrogates)."""
    if os.name == "nt":
        return path
    if not _SURROGATE.search(path) and not _ESCAPED.search(path):
        return path
    raw = os.fsencode(path)
    out = []
    text = raw.decode("utf-8", "surrogateescape")
    for ch in text:
        if "\udc80" <= ch <= "\udcff":
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        else:
            out.append(ch)
    return "".join(out)


def real_path(display: str) -> str:
    """The path to hand to ``os`` functions for a display form (inverse of :func:`display_path`)."""
    if os.name == "nt" or display.startswith("s3://") or not _ESCAPED.search(display):
        return display
    parts: list[bytes] = []
    pos = 0
    for m in _TOKEN.finditer(display):
        parts.append(display[pos : m.start()].encode("utf-8", "surrogateescape"))
        parts.append(b"\\" if m.group(1) is None else bytes([int(m.group(1), 16)]))
        pos = m.end()
    parts.append(display[pos:].encode("utf-8", "surrogateescape"))
    return os.fsdecode(b"".join(parts))
