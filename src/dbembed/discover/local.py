"""Find SQLite files under local (or mounted NFS/SMB) folders.

The walk is our own rather than ``os.walk(followlinks=True)`` because shared
folders contain symlinks: following one that leaves the root would index
someone else's data (and can loop), while a symlink that stays inside the root
would otherwise index the same file twice.  So symlinks are resolved, kept only
when the target is inside the root, and every file is reported once, under its
real (non-symlink) path when the walk sees that too.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dbembed.discover.names import display_path, real_path
from dbembed.errors import UsageError
from dbembed.read.header import check_file

if TYPE_CHECKING:
    from dbembed.config import SourcesSettings

log = logging.getLogger(__name__)

SIDE_FILES = ("-wal", "-shm", "-journal")  # SQLite's companions: never databases of their own


@dataclass(frozen=True)
class FoundFile:
    path: str  # absolute local path, or "s3://bucket/key"
    root: str  # the root it was found under
    size: int
    mtime: float  # epoch seconds
    header_ok: bool  # first 16 bytes == b"SQLite format 3\x00"
    reason: str | None = None  # why header_ok is False
    etag: str | None = None


@dataclass(frozen=True)
class FileRef:
    """A file known only by where it is and what was last seen of it: what a worker has after
    claiming a queued file and stat-ing it again.  Unlike ``FoundFile`` it says nothing about the
    header (that was checked at discovery, maybe by another process) or the root it came from."""

    path: str  # absolute local path (display form), or "s3://bucket/key"
    size: int
    mtime: float  # epoch seconds
    etag: str | None = None  # S3: the ETag seen at discovery (a download must match it)


def file_hash(path: Path | str) -> str:
    """Streaming BLAKE2b of the file's bytes (for ``--verify``: size+mtime can lie on network shares).
    ``path`` may be a display form (``dbembed.discover.names``)."""
    h = hashlib.blake2b(digest_size=32)
    with open(real_path(str(path)), "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _matches(patterns: Sequence[str], name: str, rel: str) -> bool:
    """Glob on the file name; patterns with a '/' match the path relative to the root.  Case-insensitive."""
    name, rel = name.casefold(), rel.casefold()
    for pat in patterns:
        p = pat.casefold()
        if "/" in p:
            if fnmatch.fnmatchcase(rel, p.lstrip("/")) or fnmatch.fnmatchcase(rel, p.lstrip("/") + "/*"):
                return True
        elif fnmatch.fnmatchcase(name, p):
            return True
    return False


def is_side_file(name: str) -> bool:
    return name.endswith(SIDE_FILES)


def _inside(path: str, root_real: str) -> bool:
    return path == root_real or path.startswith(root_real.rstrip(os.sep) + os.sep)


def probe(path: str, root: str) -> FoundFile | None:
    """Stat and header-check one file (``path`` as ``os`` gives it); None when it vanished meanwhile.

    The FoundFile carries the display form of the path (see ``dbembed.discover.names``)."""
    shown, shown_root = display_path(path), display_path(root)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except PermissionError:
        return FoundFile(shown, shown_root, 0, 0.0, False, "permission denied")
    _, reason = check_file(path)
    if reason == "file vanished":
        return None
    return FoundFile(shown, shown_root, st.st_size, st.st_mtime, reason is None, reason)


def discover_local(root: str | Path, settings: SourcesSettings) -> Iterator[FoundFile]:
    """Yield candidate SQLite files under ``root`` (a folder, or a single file), sorted, once each."""
    root_abs = os.path.abspath(os.path.expanduser(real_path(str(root))))
    if not os.path.exists(root_abs):
        raise UsageError(f"source root does not exist: {root}")
    if os.path.isfile(root_abs):  # named explicitly: no include/exclude filtering
        found = probe(root_abs, root_abs)
        if found is not None:
            yield found
        return
    root_real = os.path.realpath(root_abs)
    include = settings.include or ["*"]
    exclude = settings.exclude
    seen: set[str] = set()  # resolved paths already yielded
    linked: list[tuple[str, str]] = []  # (path as found, resolved) of symlinked files: yielded last
    visited_dirs: set[str] = {root_real}
    linked_dirs: list[tuple[str, str]] = []  # symlinked folders: walked after the real tree, if still new
    stack = [root_abs]
    while stack or linked_dirs:
        if not stack:
            path, real = linked_dirs.pop(0)
            if real not in visited_dirs:
                visited_dirs.add(real)
                stack.append(path)
            continue
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except PermissionError:
            if folder == root_abs:
                raise UsageError(f"cannot read source root (permission denied): {root}") from None
            log.warning("skipping %s: permission denied", folder)
            continue
        except (FileNotFoundError, NotADirectoryError):
            continue
        subdirs = []
        for entry in entries:
            rel = os.path.relpath(entry.path, root_abs).replace(os.sep, "/")
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                continue
            if exclude and _matches(exclude, entry.name, rel):
                continue
            target = os.path.realpath(entry.path) if is_link else None
            if target is not None and not _inside(target, root_real):
                log.debug("not following %s: it points outside %s", entry.path, root_abs)
                continue
            if is_dir:
                if target is not None:
                    linked_dirs.append((entry.path, target))
                    continue
                real = os.path.realpath(entry.path)
                if real not in visited_dirs:  # aliases of folders already walked (symlink loops)
                    visited_dirs.add(real)
                    subdirs.append(entry.path)
                continue
            if is_side_file(entry.name) or not _matches(include, entry.name, rel):
                continue
            if target is not None:
                linked.append((entry.path, target))
                continue
            real = os.path.realpath(entry.path)
            if real in seen:
                continue
            seen.add(real)
            found = probe(entry.path, root_abs)
            if found is not None:
                yield found
        stack.extend(reversed(subdirs))
    for path, target in linked:
        if target in seen or is_side_file(os.path.basename(target)):
            continue
        seen.add(target)
        found = probe(path, root_abs)
        if found is not None:
            yield found
