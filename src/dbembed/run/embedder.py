"""Vectors for a file's chunks, each distinct text embedded at most once.

The cache itself (batch, in-process LRU, stored vectors, then the model) is
``dbembed.store.embedding_cache``, shared with chat memory; here it is bound to one
collection, whose stored chunks are the index-wide cache (same text + same model =
same vector).  Load-test data repeats itself heavily, so this is where most time is saved.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from dbembed.store.chunks import ChunkRecord, cached_vectors
from dbembed.store.embedding_cache import EmbeddingCache, EmbedStats, content_hash

if TYPE_CHECKING:
    import psycopg

    from dbembed.embed.base import EmbeddingProvider
    from dbembed.store.collections import Collection

__all__ = ["CachingEmbedder", "EmbedStats", "content_hash"]


class CachingEmbedder:
    def __init__(
        self,
        provider: EmbeddingProvider,
        coll: Collection,
        *,
        use_cache: bool = True,
        memory_items: int = 20000,
    ) -> None:
        self.provider = provider
        self.coll = coll
        self.use_cache = use_cache
        self._cache = EmbeddingCache(provider, memory_items=memory_items if use_cache else 0)

    def vectors_for(
        self, conn: psycopg.Connection, records: Sequence[ChunkRecord], stats: EmbedStats
    ) -> tuple[np.ndarray, dict[int, str]]:
        """Vectors for ``records`` (in order) and {record index: reason} for texts the provider rejected."""
        if not records:
            return np.zeros((0, self.provider.dimensions), dtype=np.float32), {}
        if not self.use_cache:
            return self._embed_every_chunk(records, stats)
        return self._cache.vectors(
            [r.content_hash for r in records],
            [r.text for r in records],
            stats,
            lambda hashes: cached_vectors(conn, self.coll, hashes),
        )

    def _embed_every_chunk(
        self, records: Sequence[ChunkRecord], stats: EmbedStats
    ) -> tuple[np.ndarray, dict[int, str]]:
        """The no-cache baseline (``--no-cache``): every chunk goes to the model, duplicates included."""
        t = time.perf_counter()
        vectors, rejected = self.provider.embed_documents_partial([r.text for r in records])
        stats.embed_s += time.perf_counter() - t
        stats.embedded += len(records) - len(rejected)
        stats.rejected += len(rejected)
        return vectors, rejected
