"""The whole pipeline over ``dbembed generate --bad``: one hostile file per fault class.

Real processes (the console script), the embedded PostgreSQL and the real model: every file ends
``indexed`` or ``failed`` with a reason, as the generator says it should; the run exits 1 (some
files are broken beyond reading), never 3; no traceback; source files are byte-identical afterwards
and nothing outside the tree is touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import psycopg

SIDECAR = ".embedding_metadata.json"


def _cli(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBEMBED_")}
    env["DBEMBED_DB_RESUME_WAIT_S"] = "0"
    env["DBEMBED_DATA_DIR"] = str(cwd / "state")
    return subprocess.run(
        [sys.executable, "-m", "dbembed.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _snapshot(root: Path) -> dict[bytes, str]:
    """Every regular file under ``root`` (byte paths) -> content hash; FIFOs are only listed."""
    out: dict[bytes, str] = {}
    for dirpath, _dirs, files in os.walk(os.fsencode(root)):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as fh:
                    out[path] = hashlib.blake2b(fh.read(), digest_size=16).hexdigest()
            else:
                out[path] = "special"
    return out


def test_hostile_tree_every_file_settled_with_a_reason(tmp_path: Path, database_url: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    tree = tmp_path / "tree"
    gen = _cli(["generate", str(tree), "--files", "2", "--rows", "40", "--bad", "--json"], work)
    assert gen.returncode == 0, gen.stderr
    expected = {f["path"]: f["expect"] or "indexed" for f in json.loads(gen.stdout)["files"]}
    assert {"nul_values", "unknown_collation", "missing_module", "corrupt_table_page", "fifo"} <= {
        f["kind"] for f in json.loads(gen.stdout)["files"]
    }
    before = _snapshot(tree)
    outside = sorted(p.name for p in tmp_path.iterdir())

    done = _cli(
        ["run", str(tree), "--database-url", database_url, "--settle", "0", "--views", "--json"], work
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    summary = json.loads(done.stdout)
    assert summary["files_failed"] == sum(1 for e in expected.values() if e == "failed")

    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT path, status, error FROM dbembed.sources").fetchall()
    root = str(tree.resolve()) + "/"
    got = {p[len(root) :]: (s, e) for p, s, e in rows}
    assert set(got) == set(expected)
    for rel, (status, error) in got.items():
        assert status == expected[rel], (rel, status, error)
        if status == "failed":
            assert error and "\n" not in error and "Traceback" not in error, rel

    # Source files byte-identical; the only new files are the sidecars; nothing written outside the tree.
    after = _snapshot(tree)
    assert {p: h for p, h in after.items() if not p.endswith(SIDECAR.encode())} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == outside

    st = _cli(["status", "--database-url", database_url, "--json"], work)
    assert st.returncode == 0, st.stderr
    rej = json.loads(st.stdout)["collections"][0]["rejections"]
    by_file = {f["file"][len(root) :]: f for f in rej["by_file"]}
    reasons = {rel: " ".join(i["reason"] for i in f["items"]) for rel, f in by_file.items()}
    assert "klingon" in reasons["hostile/unknown_collation.db"]
    assert "vec0" in reasons["hostile/missing_module.db"]
    assert "malformed" in reasons["hostile/corrupt_table_page.db"]
    assert "no_such_function" in reasons["hostile/broken_view.db"]
    text = _cli(["status", "--database-url", database_url], work)
    assert "rejected:" in text.stdout and "klingon" in text.stdout

    # The good table of every partly bad file is searchable.
    for rel in ("hostile/unknown_collation.db", "hostile/missing_module.db", "hostile/caf\\xe9.db"):
        hit = _cli(
            [
                "search",
                "blender grinding noise",
                "--file",
                f"*{rel}",
                "--database-url",
                database_url,
                "--json",
            ],
            work,
        )
        assert hit.returncode == 0, hit.stderr
        hits = json.loads(hit.stdout)
        hits = hits.get("hits", hits) if isinstance(hits, dict) else hits
        assert hits and hits[0]["path"] == root + rel
