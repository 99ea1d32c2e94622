"""The content-hash embedding cache: each distinct text is embedded at most once.

Indexing (``dbembed.run.embedder``) and chat memory (``dbembed.chat.sync``) both get
their vectors here.  A text's key is :func:`content_hash` (16-byte BLAKE2b of its
UTF-8).  Order of lookup: this batch (duplicates inside it), an in-process LRU of recent
vectors, the vectors already stored in the same vector space (the caller's ``lookup``:
a collection's chunks, a memory space's rows and the collections of the same model),
and only then the model.  Same text + same model = same vector, so a vector found in
any of them is the one the model would return.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dbembed.embed.base import EmbeddingProvider

# Stored vectors for these content hashes (those it has), from one vector space.
Lookup = Callable[[list[bytes]], dict[bytes, np.ndarray]]


def content_hash(text: str) -> bytes:
    """The cache key of a text: 16-byte BLAKE2b of its UTF-8 (lone surrogates kept as they are)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass
class EmbedStats:
    embedded: int = 0  # texts sent to the model (and returned a vector)
    reused: int = 0  # texts whose vector came from a cache (batch, memory or the store)
    rejected: int = 0  # texts the provider rejected
    embed_s: float = 0.0
    lookup_s: float = 0.0
    rejections: list[str] = field(default_factory=list)  # up to 10 distinct reasons


class EmbeddingCache:
    """Vectors by content hash for one provider (one vector space).

    Not thread-safe: one per worker thread (the provider it calls is).
    ``memory_items`` bounds the in-process LRU (0 turns it off).
    """

    def __init__(self, provider: EmbeddingProvider, *, memory_items: int = 20000) -> None:
        self.provider = provider
        self._memory: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._memory_items = memory_items

    def _remember(self, key: bytes, vec: np.ndarray) -> None:
        if self._memory_items <= 0:
            return
        self._memory[key] = vec
        if len(self._memory) > self._memory_items:
            self._memory.popitem(last=False)

    def _known(self, hashes: Sequence[bytes], lookup: Lookup | None) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        missing: list[bytes] = []
        for h in dict.fromkeys(hashes):
            vec = self._memory.get(h)
            if vec is not None:
                self._memory.move_to_end(h)
                found[h] = vec
            else:
                missing.append(h)
        if missing and lookup is not None:
            found.update(lookup(missing))
        return found

    def vectors(
        self,
        hashes: Sequence[bytes],
        texts: Sequence[str],
        stats: EmbedStats,
        lookup: Lookup | None = None,
    ) -> tuple[np.ndarray, dict[int, str]]:
        """Vectors for ``texts`` (in order; ``hashes[i]`` is ``content_hash(texts[i])``), shape
        (n, dimensions) float32, and {index: reason} for texts the provider rejected (their rows
        are zeros).  Raises what the provider raises for a fault that is not per-text."""
        out = np.zeros((len(texts), self.provider.dimensions), dtype=np.float32)
        if not texts:
            return out, {}
        t = time.perf_counter()
        found = self._known(hashes, lookup)
        stats.lookup_s += time.perf_counter() - t
        todo: dict[bytes, str] = {}  # distinct texts still without a vector, embedded once each
        for h, text in zip(hashes, texts, strict=True):
            if h not in found and h not in todo:
                todo[h] = text
        failed: dict[bytes, str] = {}
        if todo:
            t = time.perf_counter()
            keys = list(todo)
            vectors, failures = self.provider.embed_documents_partial([todo[k] for k in keys])
            stats.embed_s += time.perf_counter() - t
            for i, key in enumerate(keys):
                if i in failures:
                    failed[key] = failures[i]
                    continue
                found[key] = vectors[i]
                self._remember(key, vectors[i])
            stats.embedded += len(keys) - len(failures)
        rejected: dict[int, str] = {}
        for i, h in enumerate(hashes):
            if h in failed:
                rejected[i] = failed[h]
            else:
                out[i] = found[h]
        stats.reused += len(texts) - len(rejected) - (len(todo) - len(failed))
        stats.rejected += len(rejected)
        for reason in list(dict.fromkeys(rejected.values()))[:3]:
            if len(stats.rejections) < 10:
                stats.rejections.append(reason)
        return out, rejected
