"""Quiet by default: a normal command prints no third-party warning (platformdirs'
``RuntimeDirWarning`` where XDG_RUNTIME_DIR is unset, as in containers, cron and AWS Batch;
transformers/HF notices); ``dbembed -v`` shows them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import make_db, tickets_for

# A command that does what libraries do behind dbembed's back: ask platformdirs for the runtime
# dir, warn, and log at WARNING through a library logger.
NOISY = """
import logging, sys, warnings
import platformdirs
from dbembed.cli.main import app, main

@app.command("noisy")
def noisy() -> None:
    platformdirs.user_runtime_dir("dbembed")
    warnings.warn("a library deprecation", DeprecationWarning)
    warnings.warn("a library notice", UserWarning)
    logging.getLogger("transformers").warning("Some weights were not initialized")
    print("done")

sys.argv = ["dbembed", *sys.argv[1:]]
main()
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "PYTHONWARNINGS")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def test_library_warnings_are_hidden_unless_verbose(tmp_path: Path) -> None:
    quiet = subprocess.run(
        [sys.executable, "-c", NOISY, "noisy"], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "done\n" and quiet.stderr == ""
    loud = subprocess.run(
        [sys.executable, "-c", NOISY, "-v", "noisy"], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert loud.returncode == 0, loud.stderr
    assert "RuntimeDirWarning" in loud.stderr and "XDG_RUNTIME_DIR" in loud.stderr
    assert "a library notice" in loud.stderr and "Some weights were not initialized" in loud.stderr


def test_a_real_run_without_xdg_runtime_dir_prints_only_its_summary(tmp_path: Path, database_url: str) -> None:
    make_db(tmp_path / "data" / "a.db", tickets_for(1, 4))
    out = subprocess.run(
        [sys.executable, "-m", "dbembed.cli.main", "run", str(tmp_path / "data"), "--settle", "0",
         "--database-url", database_url],
        capture_output=True, text=True, env=_env(), timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("run ") and " 1 ok, 0 failed" in out.stdout
    noise = [line for line in out.stderr.splitlines() if not line.startswith("dbembed: ")]
    assert noise == [], out.stderr  # only dbembed's own progress lines
