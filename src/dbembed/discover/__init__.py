"""Find the SQLite files to index: local folders (``local``) and S3 prefixes (``s3``, optional).

S3 support lives in ``dbembed.discover.s3``; it imports boto3 (the ``aws`` extra) only when an
``s3://`` root is walked, and says which extra to install when boto3 is missing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dbembed.discover import s3
from dbembed.discover.local import FileRef, FoundFile, discover_local, file_hash
from dbembed.discover.names import display_path, real_path
from dbembed.errors import UsageError

if TYPE_CHECKING:
    from dbembed.config import SourcesSettings

__all__ = ["FileRef", "FoundFile", "discover", "display_path", "file_hash", "materialize", "real_path"]


def discover(roots: Sequence[str | Path], settings: SourcesSettings) -> Iterator[FoundFile]:
    """Every candidate file under ``roots``, in order, each root walked lazily.

    Roots are checked up front, so a typo fails (``UsageError``/``ConfigError``)
    before anything is indexed rather than after the other roots were walked.
    """
    for root in roots:
        if not str(root).startswith("s3://") and not Path(real_path(str(root))).expanduser().exists():
            raise UsageError(f"source root does not exist: {root}")
    return _walk(roots, settings)


def _walk(roots: Sequence[str | Path], settings: SourcesSettings) -> Iterator[FoundFile]:
    for root in roots:
        if str(root).startswith("s3://"):
            yield from s3.discover_s3(str(root), settings)
        else:
            yield from discover_local(root, settings)


@contextlib.contextmanager
def materialize(found: FoundFile | FileRef, settings: SourcesSettings) -> Iterator[Path]:
    """A local path to read ``found`` from: the file itself, or a downloaded copy of an S3 object."""
    if found.path.startswith("s3://"):
        with s3.fetch(found, settings) as path:
            yield Path(path)
    else:
        yield Path(real_path(found.path))
