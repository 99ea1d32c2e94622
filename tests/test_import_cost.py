"""No wasted process time: with ``--backend auto`` resolved to OpenVINO, a run that embeds a handful
of texts (the one-row edit) and a cold ``dbembed search`` never import torch, sentence-transformers
or transformers (about 7 s a process); checked with ``python -X importtime`` on real CLI processes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dbembed.embed import backends

needs_openvino = pytest.mark.skipif(not backends.have_module("openvino"), reason="openvino not installed")
HEAVY = ("torch", "sentence_transformers", "transformers", "optimum")


def _imported(stderr: str) -> set[str]:
    """Top-level package names of every module a ``-X importtime`` process imported."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:"):
            parts = line.split("|")
            if len(parts) == 3 and parts[1].strip().isdigit():
                names.add(parts[2].strip().split(".")[0])
    return names


def _cli(*args: str) -> tuple[dict[str, object] | list[object], set[str]]:
    env = {**os.environ, "DBEMBED_BACKEND": "auto", "DBEMBED_PRECISION": "auto"}
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dbembed.cli.main", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout), _imported(p.stderr)


@needs_openvino
def test_auto_edit_and_cold_search_never_import_torch(database_url: str, tmp_path: Path) -> None:
    from dbembed.embed.local import bundled_model_path

    model = bundled_model_path()
    backends.ensure_export(model, "openvino")  # as after the first run on this machine
    decision = backends.decision_path(model, "cpu", "auto")
    decision.parent.mkdir(parents=True, exist_ok=True)
    decision.write_text(json.dumps({"backend": "openvino", "precision": "fp32"}))  # fp32: any CPU
    db = tmp_path / "data" / "tracks.db"
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE Track (TrackId INTEGER PRIMARY KEY, Name TEXT, Composer TEXT)")
    conn.executemany(
        "INSERT INTO Track VALUES (?, ?, ?)",
        [(i, f"Song number {i} about the river", "Ann Lee") for i in range(1, 41)],
    )
    conn.commit()
    conn.close()
    old = db.stat().st_mtime - 600
    os.utime(db, (old, old))
    run = ("run", str(db.parent), "--database-url", database_url, "--settle", "0", "--no-sidecar")

    first, mods = _cli(*run)
    assert isinstance(first, dict) and first["runtime"] == "openvino fp32" and first["texts_embedded"] == 40
    assert "openvino" in mods and not mods & set(HEAVY), mods & set(HEAVY)

    conn = sqlite3.connect(db)
    conn.execute("UPDATE Track SET Name = 'A new song about the sea' WHERE TrackId = 7")
    conn.commit()
    conn.close()
    os.utime(db, (old + 60, old + 60))
    edit, mods = _cli(*run)
    assert isinstance(edit, dict) and edit["texts_embedded"] == 1
    assert "openvino" in mods and not mods & set(HEAVY), mods & set(HEAVY)

    hits, mods = _cli("search", "a song about the sea", "--database-url", database_url)
    assert hits, "the edited row is found"
    assert not mods & set(HEAVY), mods & set(HEAVY)
