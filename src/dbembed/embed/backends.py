"""Inference backends for local sentence-transformers models: choice, export cache, auto pick.

A *runtime* is a (backend, precision) pair:

* ``torch/fp32`` - sentence-transformers as is (the reference);
* ``torch/bf16`` - the same model under ``torch.autocast("cpu", dtype=torch.bfloat16)``, on CPUs
  with native bf16 (AVX-512 BF16 or AMX); ``torch/fp16`` - half precision on CUDA;
* ``openvino/fp32|bf16`` - an OpenVINO IR exported once from the model (``openvino.convert_model``
  on the Hugging Face transformer, fp32 weights), then run
  by the OpenVINO runtime with ``tokenizers`` and numpy pooling: no torch import at run time;
* ``onnx/fp32`` - ONNX Runtime through sentence-transformers' ``backend="onnx"`` (extra ``onnx``).

Exports are made offline from the local model directory, written to a temporary directory
next to the cache entry and renamed into place only when complete, so a crash mid-export
never leaves a half-written model that a later run would load.  The cache key covers the
model files (names, sizes, mtimes) and the exporter, so a changed model exports again.

``--backend auto --precision auto`` measures, once per machine and model, every runtime
available here on a fixed probe set and picks the fastest one whose vectors keep a cosine
>= ``MIN_COSINE`` to torch fp32 (a torch-free runtime wins ties within ``TORCH_FREE_MARGIN``).  The decision is
cached as JSON next to the exports.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbembed.config import BACKENDS, PRECISIONS
from dbembed.embed.local import quiet_transformers
from dbembed.errors import ConfigError

if TYPE_CHECKING:
    from dbembed.embed.base import EmbeddingProvider

MIN_COSINE = 0.999
TORCH_FREE_MARGIN = 1.15  # see pick()
DECISION_VERSION = 2


@dataclass(frozen=True)
class Runtime:
    backend: str  # torch | openvino | onnx
    precision: str  # fp32 | bf16 | fp16 | int8

    def __str__(self) -> str:
        return f"{self.backend} {self.precision}"

    @property
    def interchangeable(self) -> bool:
        """True when its vectors share the fp32 model's space (same model id, same cache)."""
        return self.precision != "int8"


def cpu_flags() -> set[str]:
    """CPU feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_bf16() -> bool:
    """Native bf16 matrix math on this CPU (AVX-512 BF16 or AMX-BF16)."""
    flags = cpu_flags()
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def cpu_description() -> str:
    flags = cpu_flags()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return f"{platform.machine()} {os.cpu_count()} cpus, " + (
        " ".join(f for f in wanted if f in flags) or "no avx2"
    )


def have_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def check_choice(backend: str, precision: str, device: str) -> None:
    """Reject combinations that cannot work, naming the setting at fault (ConfigError)."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    on_cpu = device == "cpu"
    if precision == "fp16" and (on_cpu or backend not in ("torch", "auto")):
        raise ConfigError("precision fp16 needs --backend torch on a CUDA device")
    if precision == "int8":
        raise ConfigError(
            "precision int8 is not offered: it must keep recall@10 of int8 search against fp32 search"
            " >= 0.95, and measured on 2,000 documents it does not (OpenVINO + NNCF: int8 weights and"
            " activations 0.85, int8 weights only 0.944, best weight-only variant 0.948); use auto,"
            " fp32 or bf16 (docs/performance.md)"
        )
    if backend in ("openvino", "onnx") and not on_cpu:
        raise ConfigError(f"backend {backend} runs on the CPU only (device is {device})")
    if backend == "openvino" and not have_module("openvino"):
        raise ConfigError("backend openvino needs the OpenVINO runtime: pip install 'dbembed[openvino]'")
    if backend == "onnx" and not (have_module("onnxruntime") and have_module("optimum")):
        raise ConfigError("backend onnx needs ONNX Runtime and optimum: pip install 'dbembed[onnx]'")


def candidates(device: str) -> list[Runtime]:
    """Runtimes worth measuring here, the reference (torch fp32) first."""
    if device != "cpu":
        return [Runtime("torch", "fp16" if device.startswith("cuda") else "fp32")]
    out = [Runtime("torch", "fp32")]
    bf16 = cpu_has_bf16()
    if bf16:
        out.append(Runtime("torch", "bf16"))
    if have_module("openvino"):
        out.append(Runtime("openvino", "fp32"))
        if bf16:
            out.append(Runtime("openvino", "bf16"))
    if have_module("onnxruntime") and have_module("optimum") and have_module("optimum.onnxruntime"):
        out.append(Runtime("onnx", "fp32"))
    return out


# -- cache --------------------------------------------------------------------------------
def cache_root() -> Path:
    """Where exports and auto decisions live: $DBEMBED_CACHE_DIR, else the user cache dir."""
    env = os.environ.get("DBEMBED_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("dbembed"))


def model_fingerprint(model_dir: Path) -> str:
    """Names, sizes and mtimes of the model's files: changes when the model does."""
    h = hashlib.blake2b(digest_size=10)
    h.update(str(model_dir.resolve()).encode())
    for p in sorted(model_dir.rglob("*")):
        if p.is_file() and "openvino" not in p.parts and "onnx" not in p.parts:
            st = p.stat()
            h.update(f"{p.relative_to(model_dir)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def export_dir(model_dir: Path, kind: str) -> Path:
    """The cache entry for ``kind`` (``openvino`` or ``onnx``) of ``model_dir``."""
    return cache_root() / "exports" / f"{model_dir.name}-{model_fingerprint(model_dir)}" / kind


def ensure_export(model_dir: Path, kind: str) -> Path:
    """Export ``model_dir`` for ``kind`` unless a complete export is cached; returns its directory.

    The export is written to a temporary sibling directory and renamed into place, so a
    crash or kill mid-export leaves at most a stray temp directory, never a bad entry.
    """
    target = export_dir(model_dir, kind)
    if (target / "COMPLETE").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=target.parent))
    try:
        _export(model_dir, kind, tmp)
        (tmp / "COMPLETE").write_text(json.dumps({"source": str(model_dir), "at": time.time()}))
        if target.exists() and not (target / "COMPLETE").is_file():
            shutil.rmtree(target, ignore_errors=True)  # not ours to trust: no completion marker
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished the same export first: keep theirs.
            if not (target / "COMPLETE").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _export(model_dir: Path, kind: str, out: Path) -> None:
    try:
        if kind == "openvino":
            _export_openvino(model_dir, out)
        elif kind == "onnx":
            from sentence_transformers import SentenceTransformer

            quiet_transformers()
            model = SentenceTransformer(str(model_dir), device="cpu", backend="onnx")
            model.save(str(out))
        else:  # pragma: no cover - callers pass known kinds
            raise ValueError(kind)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"could not export {model_dir} for {kind}: {exc}") from exc


def _export_openvino(model_dir: Path, out: Path) -> None:
    """Convert the model's transformer to an OpenVINO IR (fp32 weights) with ``openvino.convert_model``;
    copy the tokenizer and sentence-transformers configs next to it."""
    import warnings

    import openvino as ov
    import torch
    from transformers import AutoModel, AutoTokenizer

    quiet_transformers()
    modules = json.loads((model_dir / "modules.json").read_text())
    tdir = model_dir / next(m.get("path", "") for m in modules if m.get("type", "").endswith("Transformer"))
    model = AutoModel.from_pretrained(str(tdir)).eval()
    tok = AutoTokenizer.from_pretrained(str(tdir))
    example = dict(tok(["a short text", "a somewhat longer example text"], padding=True, return_tensors="pt"))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        ov_model = ov.convert_model(model, example_input=example)
    (out / "openvino").mkdir(parents=True)
    ov.save_model(ov_model, str(out / "openvino" / "openvino_model.xml"), compress_to_fp16=False)
    for p in model_dir.rglob("*"):
        if p.is_file() and p.suffix in (".json", ".txt", ".model") and p.stat().st_size < 50_000_000:
            dest = out / p.relative_to(model_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest)


# -- the auto decision ----------------------------------------------------------------------
def probe_texts() -> list[str]:
    """A fixed, varied probe set (96 texts): labels, sentences, numbers, Japanese, passages."""
    words = [
        "invoice",
        "customer",
        "shipment",
        "order",
        "track",
        "album",
        "artist",
        "composer",
        "genre",
        "playlist",
        "employee",
        "address",
        "payment",
        "refund",
        "warehouse",
        "delivery",
        "status",
        "pending",
        "account",
        "balance",
        "report",
    ]
    texts = []
    for i in range(64):
        n = 2 + (i * 7) % 24
        body = " ".join(words[(i * 3 + j * 5) % len(words)] for j in range(n))
        texts.append(f"{body} {i * 37 % 1000}")
    texts += [
        "東京都渋谷区の顧客から注文がありました。配送状況を確認してください。",
        "請求書番号 12345 の支払いが完了しました",
        "Track | Name: For Those About To Rock (We Salute You) | Composer: Angus Young, Malcolm Young",
        "SELECT * FROM orders WHERE status = 'pending' AND total > 100.50",
        "2026-11-30T13:00:00Z user@example.com +1 (555) 010-9999",
        "x",
    ] * 4
    long = " ".join(words * 4)
    texts += [long[: 150 + 60 * i] for i in range(8)]
    return texts


def decision_path(model_dir: Path, device: str, precision: str = "auto") -> Path:
    key = hashlib.blake2b(
        f"{platform.node()}|{cpu_description()}|{device}|{precision}|{DECISION_VERSION}".encode(),
        digest_size=8,
    ).hexdigest()
    return cache_root() / "auto" / f"{model_dir.name}-{model_fingerprint(model_dir)}-{key}.json"


def cached_decision(model_dir: Path, device: str, precision: str = "auto") -> Runtime | None:
    try:
        data = json.loads(decision_path(model_dir, device, precision).read_text())
        chosen = Runtime(data["backend"], data["precision"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not runtime_available(chosen):  # an extra was uninstalled since: measure again
        return None
    return chosen


def runtime_available(rt: Runtime) -> bool:
    """Cheap check (no imports) that the runtime's package is still installed."""
    return {"torch": "torch", "openvino": "openvino", "onnx": "onnxruntime"}.get(rt.backend, "") != "" and (
        have_module({"torch": "torch", "openvino": "openvino", "onnx": "onnxruntime"}[rt.backend])
    )


def measure_runtimes(
    model_dir: Path, device: str, make: Any, rounds: int = 3, texts: list[str] | None = None
) -> list[dict[str, Any]]:
    """Time each candidate runtime on the probe set and compare its vectors to torch fp32.

    ``make(runtime)`` builds a provider.  The rounds are interleaved (every runtime once per
    round) and the best round counts, so a burst of load from other processes does not decide
    against whichever runtime happened to run during it.  Returns one dict per runtime:
    backend, precision, seconds, min/mean cosine to the reference, or error.
    """
    import numpy as np

    texts = texts or probe_texts()
    rows: list[dict[str, Any]] = []
    live: list[tuple[dict[str, Any], EmbeddingProvider]] = []
    try:
        for rt in candidates(device):
            row: dict[str, Any] = {"backend": rt.backend, "precision": rt.precision}
            rows.append(row)
            try:
                provider = make(rt)
                live.append((row, provider))
                provider.embed_documents(texts[:16])  # warm-up (graph compilation, thread pools)
            except Exception as exc:  # noqa: BLE001 - a runtime that fails here is simply not chosen
                row["error"] = _one_line(exc)
        reference: Any = None
        for _ in range(rounds):
            for row, provider in live:
                if "error" in row:
                    continue
                try:
                    t = time.perf_counter()
                    vectors = provider.embed_documents(texts)
                    took = time.perf_counter() - t
                except Exception as exc:  # noqa: BLE001
                    row["error"] = _one_line(exc)
                    continue
                if reference is None:
                    reference = vectors
                cos = np.sum(reference * vectors, axis=1)
                row["seconds"] = round(min(row.get("seconds", float("inf")), took), 4)
                row["min_cosine"] = min(row.get("min_cosine", 1.0), float(cos.min()))
                row["mean_cosine"] = float(cos.mean())
    finally:
        for _, provider in live:
            provider.close()
    return rows


def _one_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def pick(rows: list[dict[str, Any]], precision: str = "auto") -> Runtime:
    """The fastest measured runtime that keeps the vectors; torch fp32 when none does.

    A runtime that does not need torch (OpenVINO) wins over a torch one up to
    ``TORCH_FREE_MARGIN`` slower on the probe: every process that uses it saves the
    seconds of importing torch and sentence-transformers, which the probe does not count.
    """
    ok = [
        r
        for r in rows
        if "error" not in r
        and "seconds" in r
        and r["min_cosine"] >= MIN_COSINE
        and precision in ("auto", r["precision"])
    ]
    if not ok:
        return Runtime("torch", "fp32")

    def cost(r: dict[str, Any]) -> float:
        return float(r["seconds"]) / (TORCH_FREE_MARGIN if r["backend"] == "openvino" else 1.0)

    best = min(ok, key=cost)
    return Runtime(best["backend"], best["precision"])


def decide(model_dir: Path, device: str, make: Any, precision: str = "auto") -> Runtime:
    """The fastest runtime here whose vectors keep cosine >= MIN_COSINE to torch fp32 (cached).

    ``precision`` other than ``auto`` limits the choice to runtimes of that precision."""
    cached = cached_decision(model_dir, device, precision)
    if cached is not None:
        return cached
    cands = candidates(device)
    if len(cands) == 1:
        return cands[0]
    rows = measure_runtimes(model_dir, device, make)
    chosen = pick(rows, precision)
    path = decision_path(model_dir, device, precision)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps(
                {
                    "backend": chosen.backend,
                    "precision": chosen.precision,
                    "cpu": cpu_description(),
                    "measured": rows,
                    "min_cosine": MIN_COSINE,
                    "at": time.time(),
                },
                indent=1,
            )
        )
        os.replace(tmp, path)
    return chosen
