"""Inference backends for local models: settings, the OpenVINO runtime's fidelity to torch fp32,
the export cache (atomic, never poisoned), the auto choice, the torch-free run path, and a real
CLI run whose vectors share the collection with torch fp32 ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dbembed.embed import backends
from dbembed.embed.backends import Runtime
from dbembed.errors import ConfigError
from tests.helpers import PLANTED, make_tree

needs_openvino = pytest.mark.skipif(not backends.have_module("openvino"), reason="openvino not installed")
needs_bf16 = pytest.mark.skipif(not backends.cpu_has_bf16(), reason="CPU without native bf16")
JAPANESE = [
    "注文した商品がまだ届いていません。配送状況を教えてください。",
    "返品の手続き方法を知りたいです。",
]


@pytest.fixture(scope="session")
def ov_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export cache per session (the export takes seconds)."""
    return Path(os.environ["DBEMBED_CACHE_DIR"])


def _settings(**kw: Any) -> Any:
    from dbembed.config import Settings

    return Settings(**kw)


# -- settings ---------------------------------------------------------------------------------
def test_backend_and_precision_come_from_flags_env_and_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbembed.config import load_settings

    toml = tmp_path / "dbembed.toml"
    toml.write_text('backend = "openvino"\nprecision = "fp32"\n')
    monkeypatch.delenv("DBEMBED_BACKEND", raising=False)
    s = load_settings(toml)
    assert (s.backend, s.precision) == ("openvino", "fp32")
    monkeypatch.setenv("DBEMBED_PRECISION", "bf16")
    assert load_settings(toml).precision == "bf16"
    assert load_settings(toml, backend="torch").backend == "torch"
    with pytest.raises(ConfigError, match="backend"):
        load_settings(toml, backend="tensorrt")
    with pytest.raises(ConfigError, match=r"argument precision: must be one of .*\(got 'fp8'\)"):
        load_settings(toml, precision="fp8")


def test_backend_and_precision_values_are_case_insensitive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    from typer.testing import CliRunner

    from dbembed.cli.main import app
    from dbembed.config import load_settings

    monkeypatch.delenv("DBEMBED_BACKEND", raising=False)
    toml = tmp_path / "dbembed.toml"
    toml.write_text('backend = "OpenVINO"\nprecision = " FP32 "\n')
    assert (load_settings(toml).backend, load_settings(toml).precision) == ("openvino", "fp32")
    monkeypatch.setenv("DBEMBED_PRECISION", "BF16")
    assert load_settings(toml).precision == "bf16"
    assert load_settings(toml, backend="TORCH").backend == "torch"
    # `--precision INT8` gets the int8 answer (not offered, with the measured numbers), not "must be
    # one of ..., int8"; the dry run says the same as the run.
    make_tree(tmp_path / "tree", files=1, rows=2)
    base = ["run", str(tmp_path / "tree"), "--database-url", database_url, "--settle", "0", "--no-sidecar"]
    for extra in ([], ["--dry-run"]):
        res = CliRunner().invoke(app, [*base, *extra, "--precision", "INT8", "--backend", "OpenVINO"])
        assert res.exit_code == 2, (extra, res.stderr)
        assert "int8 is not offered" in res.stderr and "must be one of" not in res.stderr


def test_impossible_combinations_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="fp16 needs --backend torch on a CUDA"):
        backends.check_choice("torch", "fp16", "cpu")
    for backend in ("auto", "openvino", "torch"):
        with pytest.raises(ConfigError, match=r"int8 is not offered: .*recall@10.* 0\.944"):
            backends.check_choice(backend, "int8", "cpu")
    with pytest.raises(ConfigError, match="CPU only"):
        backends.check_choice("openvino", "fp32", "cuda")


def test_dry_run_refuses_what_the_run_refuses() -> None:
    """A dry run never plans a model the run would refuse (it planned 'all-MiniLM-L6-v2-int8')."""
    from dbembed.embed.offline import offline_profile

    with pytest.raises(ConfigError, match="int8 is not offered"):
        offline_profile(_settings(precision="int8"))
    assert offline_profile(_settings(backend="openvino", precision="bf16")).max_tokens > 0


def test_int8_would_get_its_own_model_id_and_collection() -> None:
    from dbembed.embed.registry import expected_model_id

    assert expected_model_id(_settings()) == "local:all-MiniLM-L6-v2"
    assert expected_model_id(_settings(backend="openvino", precision="bf16")) == "local:all-MiniLM-L6-v2"
    assert expected_model_id(_settings(precision="int8")).endswith("-int8")


# -- OpenVINO runtime ---------------------------------------------------------------------------
@needs_openvino
@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=needs_bf16)])
def test_openvino_vectors_match_torch_fp32(minilm: Any, ov_cache: Path, precision: str) -> None:
    from dbembed.embed.local_factory import make_local_provider

    ov = make_local_provider(None, _settings(backend="openvino", precision=precision))
    assert ov.model_id == minilm.model_id and ov.dimensions == minilm.dimensions
    assert ov.max_tokens == minilm.max_tokens
    texts = backends.probe_texts() + JAPANESE + [PLANTED, "word " * 400]  # one past the 256-token window
    a, b = minilm.embed_documents(texts), ov.embed_documents(texts)
    cos = np.sum(a * b, axis=1)
    assert cos.min() >= backends.MIN_COSINE, (precision, float(cos.min()))
    q = ov.embed_query("parcel damaged, customer wants money back")
    assert abs(float(np.linalg.norm(q)) - 1.0) < 1e-5
    # Chunk sizing is the model's own: the same token counts as the torch provider's tokenizer.
    for t in texts[:20]:
        assert ov.tokenizer().count(t) == minilm.tokenizer().count(t)


@needs_openvino
def test_failed_export_leaves_no_cache_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dbembed.embed.local import bundled_model_path

    monkeypatch.setenv("DBEMBED_CACHE_DIR", str(tmp_path / "cache"))
    model = bundled_model_path()

    def half_written(model_dir: Path, out: Path) -> None:
        (out / "openvino").mkdir()
        (out / "openvino" / "openvino_model.xml").write_text("<net>")  # truncated file, then the crash
        raise RuntimeError("killed mid-export")

    monkeypatch.setattr(backends, "_export_openvino", half_written)
    with pytest.raises(ConfigError, match="could not export"):
        backends.ensure_export(model, "openvino")
    target = backends.export_dir(model, "openvino")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # the temp directory is gone too
    # A directory without the completion marker (say, from an older version) is not trusted either.
    target.mkdir(parents=True)
    (target / "junk").write_text("x")
    monkeypatch.undo()
    monkeypatch.setenv("DBEMBED_CACHE_DIR", str(tmp_path / "cache"))
    out = backends.ensure_export(model, "openvino")
    assert (out / "COMPLETE").is_file() and not (out / "junk").exists()
    assert (out / "openvino" / "openvino_model.xml").stat().st_size > 1000


@needs_openvino
def test_openvino_run_path_does_not_import_torch(ov_cache: Path) -> None:
    from dbembed.embed.local import bundled_model_path

    backends.ensure_export(bundled_model_path(), "openvino")  # the one-time export may use torch
    code = (
        "import sys\n"
        "from dbembed.config import Settings\n"
        "from dbembed.embed.registry import get_provider\n"
        "p = get_provider(Settings(backend='openvino', precision='fp32'))\n"
        "v = p.embed_documents(['hello world', 'a parcel arrived damaged'])\n"
        "assert v.shape == (2, 384), v.shape\n"
        "print(p.runtime, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)\n"
    )
    env = {**os.environ, "DBEMBED_CACHE_DIR": str(ov_cache)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["openvino", "fp32", "False", "False"]


# -- auto ---------------------------------------------------------------------------------------
class _Fake:
    """A stand-in provider with chosen speed and chosen vector error (tests the choice logic only)."""

    def __init__(self, delay: float, noise: float) -> None:
        self.delay, self.noise = delay, noise

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        import time

        time.sleep(self.delay)
        rng = np.random.default_rng(len(texts))
        base = rng.normal(size=(len(texts), 8))
        v = base + self.noise * np.random.default_rng(7).normal(size=base.shape)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def close(self) -> None:
        pass


def test_auto_picks_the_fastest_runtime_that_keeps_the_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBEMBED_CACHE_DIR", str(tmp_path))
    cands = [
        Runtime("torch", "fp32"),
        Runtime("torch", "bf16"),
        Runtime("openvino", "fp32"),
        Runtime("openvino", "bf16"),
    ]
    monkeypatch.setattr(backends, "candidates", lambda device: cands)
    monkeypatch.setattr(backends, "runtime_available", lambda rt: True)
    speed = {cands[0]: (0.03, 0.0), cands[1]: (0.02, 0.0001), cands[2]: (0.015, 0.0), cands[3]: (0.001, 0.3)}
    made: list[Runtime] = []

    def make(rt: Runtime) -> _Fake:
        made.append(rt)
        return _Fake(*speed[rt])

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    # openvino bf16 is fastest but its vectors drift (cosine < 0.999): openvino fp32 wins.
    assert backends.decide(model, "cpu", make) == Runtime("openvino", "fp32")
    saved = json.loads(backends.decision_path(model, "cpu").read_text())
    assert {r["backend"] + r["precision"] for r in saved["measured"]} == {
        "torchfp32",
        "torchbf16",
        "openvinofp32",
        "openvinobf16",
    }
    made.clear()
    assert backends.decide(model, "cpu", make) == Runtime("openvino", "fp32")  # cached: nothing measured
    assert made == []
    # Limited to one precision, the choice is among those runtimes only.
    assert backends.decide(model, "cpu", make, precision="bf16") == Runtime("torch", "bf16")


# -- end to end ---------------------------------------------------------------------------------
@needs_openvino
def test_cli_run_with_openvino_shares_the_collection_with_torch(
    tmp_path: Path, database_url: str, ov_cache: Path, minilm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import dbembed.service
    from dbembed.cli.main import app

    monkeypatch.chdir(tmp_path)
    make_tree(tmp_path / "tree", files=2, rows=6)
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "run",
            str(tmp_path / "tree"),
            "--database-url",
            database_url,
            "--settle",
            "0",
            "--json",
            "--backend",
            "openvino",
            "--precision",
            "fp32",
            "--no-sidecar",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["runtime"] == "openvino fp32" and summary["collection"] == "all-minilm-l6-v2"
    status = json.loads(runner.invoke(app, ["status", "--database-url", database_url, "--json"]).stdout)
    assert status["collections"][0]["runs"][0]["runtime"] == "openvino fp32"
    text = runner.invoke(app, ["status", "--database-url", database_url]).stdout
    assert "[openvino fp32]" in text
    # The torch reference searches the same collection and finds the planted row first.
    dbembed.service.default_providers.put(minilm)
    res = runner.invoke(
        app,
        [
            "search",
            "parcel crushed, customer wants money back",
            "--database-url",
            database_url,
            "--json",
            "--backend",
            "torch",
        ],
        catch_exceptions=False,
    )
    hits = json.loads(res.stdout)
    assert hits and hits[0]["text"].endswith(PLANTED)


def test_a_torch_free_runtime_wins_a_near_tie_but_not_a_clear_loss() -> None:
    def row(backend: str, precision: str, seconds: float, cos: float = 1.0) -> dict[str, Any]:
        return {"backend": backend, "precision": precision, "seconds": seconds, "min_cosine": cos}

    near = [row("torch", "fp32", 1.0), row("torch", "bf16", 0.60), row("openvino", "fp32", 0.66)]
    assert backends.pick(near) == Runtime("openvino", "fp32")  # within the margin: no torch import
    clear = [row("torch", "fp32", 1.0), row("torch", "bf16", 0.50), row("openvino", "fp32", 0.66)]
    assert backends.pick(clear) == Runtime("torch", "bf16")
    drifted = [row("torch", "fp32", 1.0), row("openvino", "bf16", 0.2, cos=0.998)]
    assert backends.pick(drifted) == Runtime("torch", "fp32")
    assert backends.pick([{"backend": "openvino", "precision": "fp32", "error": "boom"}]) == Runtime(
        "torch", "fp32"
    )


@needs_openvino
@pytest.mark.slow
def test_auto_end_to_end_measures_once_and_says_what_it_picked(tmp_path: Path, database_url: str) -> None:
    """A real `dbembed run` with the default runtime on a fresh cache: it measures, records the decision
    with every measurement, embeds with the runtime it picked, and the second process reuses the decision."""
    make_tree(tmp_path / "tree", files=1, rows=4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBEMBED_")}
    env.update(DBEMBED_CACHE_DIR=str(tmp_path / "cache"), DBEMBED_DB_RESUME_WAIT_S="0")
    cmd = [sys.executable, "-m", "dbembed.cli.main", "run", str(tmp_path / "tree"), "--database-url",
           database_url, "--settle", "0", "--json", "--no-sidecar"]  # fmt: skip
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stderr
    decisions = list((tmp_path / "cache" / "auto").glob("*.json"))
    assert len(decisions) == 1
    saved = json.loads(decisions[0].read_text())
    picked = f"{saved['backend']} {saved['precision']}"
    assert json.loads(first.stdout)["runtime"] == picked
    assert {"torch fp32", "openvino fp32"} <= {f"{r['backend']} {r['precision']}" for r in saved["measured"]}
    mtime = decisions[0].stat().st_mtime
    second = subprocess.run(cmd + ["--force"], capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["runtime"] == picked and decisions[0].stat().st_mtime == mtime
