"""The one small interface every embedding provider implements.

A provider says what it is (model id, dimensions, input limits, batch limits)
and turns texts into L2-normalized float32 vectors.  The base class does the
batching (length-sorted, bounded by count and by tokens), normalisation and
usage accounting, so a concrete provider only implements ``_embed_batch``.
This mirrors ``llm``'s EmbeddingModel and pgai's embedders.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol

import numpy as np

from dbembed.errors import EmbeddingError, InputRejected

InputType = Literal["document", "query"]


class Tokenizer(Protocol):
    """What the chunker needs from a tokenizer: token spans in the original string."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character offsets of each token, without special tokens."""
        ...

    def count(self, text: str) -> int: ...


@dataclass
class Usage:
    """Counters for one provider over one run; stored with the run, shown by ``status``."""

    texts: int = 0
    tokens: int = 0
    chars: int = 0
    requests: int = 0
    retries: int = 0
    throttles: int = 0
    failures: int = 0
    cost_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: float) -> None:
        with self._lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)

    def as_dict(self) -> dict[str, float]:
        # Not dataclasses.asdict: it deep-copies every field, and a Lock cannot be copied.
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def check_vectors(raw: Any, n: int, dims: int) -> tuple[np.ndarray, dict[int, str]]:
    """Validate what a provider returned for ``n`` texts, vector by vector, and L2-normalise.

    Returns float32 ``(n, dims)`` unit vectors and ``{index: reason}`` for each vector that is
    not a list of ``dims`` finite numbers with a non-zero length (its row is zeros and must not
    be stored).  ``raw`` is an array or a list of per-text vectors (ragged lists are fine).
    Raises ``EmbeddingError`` when the number of vectors is not ``n`` (no text can be blamed).
    """
    bad: dict[int, str] = {}
    if isinstance(raw, np.ndarray) and raw.ndim == 2:
        rows: Sequence[Any] = list(raw)
    else:
        rows = list(raw) if isinstance(raw, list | tuple | np.ndarray) else []
    if len(rows) != n:
        raise EmbeddingError(f"provider returned {len(rows)} vectors for {n} texts")
    out = np.zeros((n, dims), dtype=np.float32)
    for i, row in enumerate(rows):
        try:
            with np.errstate(all="ignore"):
                vec = np.asarray(row, dtype=np.float64)
        except (TypeError, ValueError):
            bad[i] = "invalid vector (not a list of numbers)"
            continue
        if vec.shape != (dims,):
            got = vec.shape[0] if vec.ndim == 1 else "x".join(map(str, vec.shape)) or "0"
            bad[i] = f"invalid vector ({got} dimensions, expected {dims})"
            continue
        if not np.isfinite(vec).all():
            bad[i] = "invalid vector (NaN or infinite values)"
            continue
        norm = float(np.linalg.norm(vec))
        if norm == 0.0 or not np.isfinite(norm):
            bad[i] = "invalid vector (all zeros)" if norm == 0.0 else "invalid vector (length overflows)"
            continue
        unitvec = (vec / norm).astype(np.float32)
        if not np.isfinite(unitvec).all() or not unitvec.any():
            bad[i] = "invalid vector (cannot be normalised)"
            continue
        out[i] = unitvec
    return out, bad


class EmbeddingProvider(ABC):
    """Base class for providers.

    Subclasses set the attributes below in ``__init__`` and implement ``_embed_batch``.
    ``model_id`` is the canonical id recorded with every collection (e.g.
    ``local:all-MiniLM-L6-v2``, ``bedrock:cohere.embed-multilingual-v3``); two
    providers with the same ``model_id`` and ``dimensions`` produce the same vector space.
    """

    model_id: str
    dimensions: int
    max_tokens: int  # longest input, in the provider's tokens, that is embedded without truncation
    max_chars: int | None = None  # some APIs limit characters as well (Titan, Cohere)
    batch_size: int = 64  # texts per _embed_batch call
    max_batch_tokens: int | None = None  # optional token budget per batch
    price_per_1k_tokens: float | None = None  # USD, for cost estimates; None = free/unknown

    def __init__(self) -> None:
        self.usage = Usage()

    # -- to implement ---------------------------------------------------------------
    @abstractmethod
    def _embed_batch(self, texts: list[str], input_type: InputType) -> np.ndarray:
        """Embed one batch (len <= batch_size).  Return shape (len(texts), dimensions)."""

    @abstractmethod
    def tokenizer(self) -> Tokenizer:
        """The tokenizer used to size chunks (the model's own, or a conservative estimate)."""

    # -- provided -------------------------------------------------------------------
    def new_tokenizer(self) -> Tokenizer:
        """A tokenizer instance for one consumer that owns it (the chunker of one worker).

        Providers whose ``tokenizer()`` is immutable and thread-safe may return it."""
        return self.tokenizer()

    def count_tokens(self, text: str) -> int:
        return self.tokenizer().count(text)

    def estimate_cost(self, tokens: int) -> float | None:
        if self.price_per_1k_tokens is None:
            return None
        return tokens / 1000.0 * self.price_per_1k_tokens

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed many texts; returns float32 (n, dimensions), L2-normalized, in input order."""
        return self._embed_many(list(texts), "document")

    def embed_documents_partial(self, texts: Sequence[str]) -> tuple[np.ndarray, dict[int, str]]:
        """Like ``embed_documents``, but a text the provider rejects fails alone.

        Returns ``(vectors, failures)`` where ``failures`` maps input index -> one-line
        reason; the rows of failed indices are zeros and must not be stored.  A vector that
        fails ``check_vectors`` (NaN/infinite, all zeros, wrong length) is such a failure.  Transient
        failures that outlast the retries raise ``EmbeddingError`` instead (the caller
        fails the affected files so that the next run resumes them).
        """
        return self._embed_many_partial(list(texts), "document")

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one search query; returns float32 (dimensions,), L2-normalized."""
        return self._embed_many([text], "query")[0]

    def _batches(self, order: list[int], texts: list[str]) -> list[list[int]]:
        batches: list[list[int]] = []
        current: list[int] = []
        budget = 0
        for i in order:
            cost = len(texts[i]) // 3 + 1 if self.max_batch_tokens else 0
            if current and (
                len(current) >= self.batch_size
                or (self.max_batch_tokens is not None and budget + cost > self.max_batch_tokens)
            ):
                batches.append(current)
                current, budget = [], 0
            current.append(i)
            budget += cost
        if current:
            batches.append(current)
        return batches

    def _embed_many(self, texts: list[str], input_type: InputType) -> np.ndarray:
        vectors, failures = self._embed_many_partial(texts, input_type)
        if failures:
            index, reason = min(failures.items())
            raise InputRejected(f"{self.model_id}: input {index}: {reason}")
        return vectors

    def _embed_many_partial(
        self, texts: list[str], input_type: InputType
    ) -> tuple[np.ndarray, dict[int, str]]:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        failures: dict[int, str] = {}
        if not texts:
            return out, failures
        # Sort by length so each batch pads to similar lengths (large win for transformers).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        tokenizer = self.tokenizer()
        for batch in self._batches(order, texts):
            batch_texts = [texts[i] for i in batch]
            # Every provider counts tokens (remote ones from the service's reply, see remote.py); a
            # local model with its own tokenizer, so cost, throughput and ETAs are real numbers.
            self.usage.add(tokens=sum(tokenizer.count(t) for t in batch_texts))
            raw = self._embed_batch(batch_texts, input_type)
            vectors, bad = check_vectors(raw, len(batch), self.dimensions)
            out[batch] = vectors
            failures.update({batch[j]: reason for j, reason in bad.items()})
        return out, failures

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients, thread pools or models."""

    def describe(self) -> dict[str, object]:
        return {
            "model": self.model_id,
            "dimensions": self.dimensions,
            "max_tokens": self.max_tokens,
            "max_chars": self.max_chars,
            "batch_size": self.batch_size,
        }
