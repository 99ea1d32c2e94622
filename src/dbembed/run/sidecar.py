"""The per-file metadata JSON that document 000 asks for, written next to each database.

``<file>.embedding_metadata.json`` with the document's keys (file_path, file_size,
processed_at, embedding_model, status, chunk_count) plus more that helps.  Written
atomically (temp file + rename) so readers never see half a file.  An unwritable
directory is a warning, never a failure: the index in PostgreSQL is the record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
SUFFIX = ".embedding_metadata.json"


def sidecar_path(db_path: str | Path) -> Path:
    return Path(str(db_path) + SUFFIX)


def write_sidecar(db_path: str | Path, payload: dict[str, Any]) -> Path | None:
    target = sidecar_path(db_path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".dbembed-", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh, ensure_ascii=False, indent=2, default=str)
                fh.write("\n")
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        log.warning("could not write metadata sidecar %s: %s", target, exc)
        return None
    return target
