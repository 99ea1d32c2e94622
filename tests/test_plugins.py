"""Provider plugins: the ``dbembed.providers`` entry point group (docs/providers.md).

The example plugin in tests/plugins/dbembed_example_provider is installed with pip into a
temporary target, as a real distribution with its own entry_points.txt, and used by real
``dbembed run`` / ``dbembed search`` processes.  dbembed's own providers are found the same way.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dbembed.config import Settings
from dbembed.embed import registry
from dbembed.embed.offline import offline_profile
from dbembed.errors import ConfigError
from tests.helpers import PLANTED, make_db, tickets_for

PLUGIN_SRC = Path(__file__).parent / "plugins" / "dbembed_example_provider"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install`` the example plugin (a copy: the build writes beside its sources) into a folder."""
    pytest.importorskip("setuptools")
    tmp = tmp_path_factory.mktemp("plugin")
    src = shutil.copytree(PLUGIN_SRC, tmp / "src")
    site = tmp / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (site / "dbembed_example_provider-0.1.0.dist-info" / "entry_points.txt").is_file()
    return site


@pytest.fixture()
def on_path(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(plugin_site))
    yield plugin_site


def test_builtins_come_from_dbembeds_own_entry_points() -> None:
    ours = {ep.name: ep.value for ep in importlib.metadata.distribution("dbembed").entry_points
            if ep.group == "dbembed.providers"}  # fmt: skip
    assert set(ours) == {"local", "bedrock", "openai"}
    assert {"local", "bedrock", "openai"} <= set(registry.installed_schemes())
    assert registry.split_spec("bedrock:amazon.titan-embed-text-v2:0") == ("bedrock", "amazon.titan-embed-text-v2:0")
    assert registry.split_spec("all-MiniLM-L6-v2") == ("local", "all-MiniLM-L6-v2")
    assert registry.expected_model_id(Settings(), "minilm") == "local:all-MiniLM-L6-v2"


def test_unknown_scheme_lists_the_installed_providers(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        registry.get_provider(Settings(), "nosuch:model-1")
    message = str(err.value)
    assert "'nosuch'" in message and "bedrock, local, openai" in message and "dbembed.providers" in message
    # Not a scheme, or an existing path with a colon in it: a local model directory, as before.
    odd = tmp_path / "models:v2"
    odd.mkdir()
    assert registry.split_spec(str(odd)) == ("local", str(odd))
    assert registry.split_spec("./models/e5:v2") == ("local", "./models/e5:v2")


def test_plugin_found_on_sys_path_without_editing_dbembed(on_path: Path) -> None:
    assert "example" in registry.installed_schemes()
    provider = registry.get_provider(Settings(), "example:words-64")
    assert (provider.model_id, provider.dimensions) == ("example:words-64", 64)
    vectors = provider.embed_documents(["red apple pie", "apple pie red", "quarterly tax return"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert vectors[0] @ vectors[1] > 0.99 > vectors[0] @ vectors[2]
    # The default dry-run profile comes from the provider itself.
    profile = offline_profile(Settings(model="example:words-64"))
    assert (profile.model_id, profile.max_tokens, profile.count_tokens("one two three")) == ("example:words-64", 512, 3)
    with pytest.raises(ConfigError, match="example:words-<8..4096>"):
        registry.get_provider(Settings(), "example:sentences")


def test_broken_plugin_fails_alone_with_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "broken_provider-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-provider\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dbembed.providers]\nbroken = broken_provider_missing:Plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"'broken' \(broken_provider_missing:Plugin\) failed to load"):
        registry.get_provider(Settings(), "broken:x")
    assert registry.expected_model_id(Settings(), "local:minilm") == "local:all-MiniLM-L6-v2"


def _dbembed(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBEMBED_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["DBEMBED_DB_RESUME_WAIT_S"] = "0"
    return subprocess.run(
        [sys.executable, "-m", "dbembed.cli.main", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip


def test_run_and_search_with_a_plugin_model(plugin_site: Path, tmp_path: Path, database_url: str) -> None:
    root = tmp_path / "data"
    make_db(root / "support.db", [*tickets_for(40, 1), (999, "Damaged delivery", PLANTED)])
    common = ["--database-url", database_url, "--model", "example:words-256"]
    run = _dbembed(["run", str(root), *common, "--settle", "0", "--json"], plugin_site, tmp_path)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["files_ok"] == 1 and summary["model"] == "example:words-256"
    found = _dbembed(["search", "crushed package refund damaged order", *common, "--mode", "vector", "--json"],
                     plugin_site, tmp_path)  # fmt: skip
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    hits = hits["hits"] if isinstance(hits, dict) else hits
    assert PLANTED in hits[0]["text"]
    unknown = _dbembed(["run", str(root), "--database-url", database_url, "--model", "nosuch:x"], plugin_site, tmp_path)
    assert unknown.returncode == 2 and "example" in unknown.stderr and "Traceback" not in unknown.stderr
