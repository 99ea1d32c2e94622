"""`dbembed run --workers 2` without a terminal (CloudWatch, CI, a pipe): the parent's progress lists
every file, the children's too, not only those the parent indexed itself."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.helpers import make_db, tickets_for
from tests.test_signals import _cli, _env


def test_every_workers_files_are_listed_by_the_parent(tmp_path: Path, database_url: str) -> None:
    root = tmp_path / "data"
    paths = []
    for i in range(12):
        paths.append(make_db(root / f"f{i:02d}.db", tickets_for(i + 1, 200)))
    done = subprocess.run(
        _cli("run", str(root), "--database-url", database_url, "--settle", "0", "--no-sidecar", "--workers", "2"),
        env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = set(re.findall(r"^dbembed: indexed (\S+):", done.stderr, flags=re.MULTILINE))
    assert listed == {str(Path(p).resolve()) for p in paths}, done.stderr
    assert re.search(r"12/12 files", done.stderr), done.stderr  # the running count covers both workers
    assert "Traceback" not in done.stderr
