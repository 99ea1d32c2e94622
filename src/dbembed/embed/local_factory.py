"""Build the provider for a local sentence-transformers model on the chosen runtime.

``settings.backend`` (auto | torch | openvino | onnx) and ``settings.precision``
(auto | fp32 | bf16 | fp16 | int8) select the runtime; ``auto`` is resolved per machine
and model by ``dbembed.embed.backends.decide`` (measured once, cached).  The OpenVINO
runtime runs without torch when the model's pooling allows it, so deciding the device
must not import torch either: on Linux without an NVIDIA driver the device is ``cpu``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dbembed.embed import backends, openvino_runtime, static
from dbembed.embed.backends import Runtime
from dbembed.embed.local import (
    BUNDLED_NAME,
    SentenceTransformerProvider,
    _known_prefixes,
    bundled_model_path,
    default_device,
)
from dbembed.embed.plugin import OfflineProfile, ProviderPlugin
from dbembed.embed.tokenize import FileTokenizer
from dbembed.errors import ConfigError

if TYPE_CHECKING:
    from dbembed.config import EmbedSettings
    from dbembed.embed.base import EmbeddingProvider

INT8_SUFFIX = "-int8"
BUNDLED_ALIASES = ("", "all-MiniLM-L6-v2", "all-minilm-l6-v2", "minilm")
STATIC_ALIASES = ("minilm-static", "all-MiniLM-L6-v2-static")


class LocalPlugin(ProviderPlugin):
    """Sentence-transformers models on this machine: the bundled MiniLM, minilm-static, a model directory."""

    def model_id(self, name: str, settings: EmbedSettings) -> str:
        if name in BUNDLED_ALIASES:
            return model_id_for(f"local:{BUNDLED_NAME}", settings)
        if name in STATIC_ALIASES:
            return "local:minilm-static"
        return model_id_for(f"local:{Path(name)}", settings)

    def create(self, name: str, settings: EmbedSettings) -> EmbeddingProvider:
        if name in BUNDLED_ALIASES:
            return make_local_provider(None, settings)
        if name in STATIC_ALIASES:
            return static.StaticModelProvider(settings)
        return make_local_provider(Path(name), settings)

    def offline_profile(self, name: str, settings: EmbedSettings) -> OfflineProfile:
        model_id = self.model_id(name, settings)
        if name in STATIC_ALIASES:
            tok = FileTokenizer(bundled_model_path() / "tokenizer.json")
            return OfflineProfile(model_id, static.MAX_TOKENS, None, None, tok, tok, "the model's tokenizer")
        path = bundled_model_path() if name in BUNDLED_ALIASES else Path(name)
        return local_profile(model_id, path, settings)


def local_profile(model_id: str, path: Path, settings: EmbedSettings) -> OfflineProfile:
    """The dry-run profile of the model directory ``path``: its own tokenizer, without torch.
    Refuses (``ConfigError``) a backend/precision the run would refuse, so a dry run never plans
    what cannot run."""
    backends.check_choice(settings.backend, settings.precision, cheap_device(settings))
    tok_file = path / "tokenizer.json"
    if not tok_file.is_file():
        raise ConfigError(f"--dry-run needs {tok_file} to count tokens without loading the model")
    tok = FileTokenizer(tok_file)
    seq = 512
    cfg = path / "sentence_bert_config.json"
    if cfg.is_file():
        seq = int(json.loads(cfg.read_text()).get("max_seq_length") or seq)
    max_tokens = seq - tok.num_special_tokens()
    prefix = settings.document_prefix if settings.document_prefix is not None else _known_prefixes(path)[1]
    if prefix:
        max_tokens -= tok.count(prefix)
    return OfflineProfile(model_id, max_tokens, None, None, tok, tok, f"the model's tokenizer ({tok_file.name})")


def cheap_device(settings: EmbedSettings) -> str:
    """The device, without importing torch where the answer is plainly the CPU."""
    if settings.device:
        return settings.device
    if sys.platform.startswith("linux") and not (
        os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidia0")
    ):
        return "cpu"
    return default_device()


def model_id_for(base_id: str, settings: EmbedSettings) -> str:
    """int8 vectors are another vector space: they get their own model id (and collection)."""
    return base_id + INT8_SUFFIX if settings.precision == "int8" else base_id


def resolve_runtime(model_dir: Path, settings: EmbedSettings, device: str) -> Runtime:
    backend, precision = settings.backend, settings.precision
    backends.check_choice(backend, precision, device)
    if backend == "auto":
        if device != "cpu":
            return Runtime(
                "torch",
                "fp16"
                if device.startswith("cuda") and precision == "auto"
                else (precision if precision != "auto" else "fp32"),
            )
        return backends.decide(
            model_dir, device, lambda rt: build(model_dir, settings, device, rt, None), precision=precision
        )
    if precision == "auto":
        if backend == "torch":
            precision = "fp16" if device.startswith("cuda") else "fp32"
        elif backend == "openvino":
            precision = "bf16" if backends.cpu_has_bf16() else "fp32"
        else:
            precision = "fp32"
    if precision == "bf16" and device == "cpu" and not backends.cpu_has_bf16():
        raise ConfigError("precision bf16 needs a CPU with AVX-512 BF16 or AMX (this one has neither)")
    return Runtime(backend, precision)


def make_local_provider(path: Path | None, settings: EmbedSettings) -> EmbeddingProvider:
    """The provider for the model directory ``path`` (None: the bundled model) per the settings."""
    model_dir = path if path is not None else bundled_model_path()
    if not model_dir.exists():
        raise ConfigError(f"local model directory not found: {model_dir}")
    device = cheap_device(settings)
    base_id = f"local:{BUNDLED_NAME if path is None else model_dir}"
    runtime = resolve_runtime(model_dir, settings, device)
    return build(model_dir, settings, device, runtime, base_id)


def build(
    model_dir: Path, settings: EmbedSettings, device: str, rt: Runtime, base_id: str | None
) -> EmbeddingProvider:
    """A provider for ``rt``; ``base_id`` None means the bundled model's id is derived by the provider."""
    bundled = model_dir == bundled_model_path()
    if base_id is None:
        base_id = "local:all-MiniLM-L6-v2" if bundled else f"local:{model_dir}"
    model_id = base_id + INT8_SUFFIX if rt.precision == "int8" else base_id
    st_path = None if bundled else model_dir
    if rt.backend == "openvino":
        if not openvino_runtime.supported(model_dir):
            raise ConfigError(
                f"backend openvino runs models with a tokenizer.json and mean, cls or max pooling;"
                f" {model_dir} has another layout: use --backend torch"
            )
        export = backends.ensure_export(model_dir, "openvino")
        q, d = _known_prefixes(model_dir)
        return openvino_runtime.OpenVINOProvider(
            export,
            model_id=model_id,
            precision=rt.precision,
            batch_size=settings.batch_size,
            query_prefix=settings.query_prefix if settings.query_prefix is not None else q,
            document_prefix=settings.document_prefix if settings.document_prefix is not None else d,
        )
    if rt.backend == "onnx":
        export = backends.ensure_export(model_dir, "onnx")
        return SentenceTransformerProvider(
            st_path,
            device="cpu",
            backend="onnx",
            precision=rt.precision,
            model_id=model_id,
            load_path=export,
            batch_size=settings.batch_size,
            query_prefix=settings.query_prefix,
            document_prefix=settings.document_prefix,
        )
    return SentenceTransformerProvider(
        st_path,
        device=device,
        backend="torch",
        precision=rt.precision,
        model_id=model_id,
        batch_size=settings.batch_size,
        query_prefix=settings.query_prefix,
        document_prefix=settings.document_prefix,
    )
