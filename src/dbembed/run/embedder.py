"""Vectors for chunks, embedding each distinct text at most once.

Order of lookup for a chunk's content hash: this batch (duplicates inside it),
an in-process LRU of recent vectors, the collection's stored vectors (the
index-wide cache: same text + same model = same vector), and only then the
model.  Load-test data repeats itself heavily, so this is where most time is saved.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dbembed.store.chunks import ChunkRecord, cached_vectors

if TYPE_CHECKING:
    import psycopg

    from dbembed.embed.base import EmbeddingProvider
    from dbembed.store.collections import Collection


def content_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass
class EmbedStats:
    embedded: int = 0  # texts sent to the model
    reused: int = 0  # chunks whose vector came from a cache (batch, memory or the index)
    rejected: int = 0
    embed_s: float = 0.0
    lookup_s: float = 0.0
    rejections: list[str] = field(default_factory=list)


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
        self._memory: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._memory_items = memory_items if use_cache else 0

    def _remember(self, key: bytes, vec: np.ndarray) -> None:
        if self._memory_items <= 0:
            return
        self._memory[key] = vec
        if len(self._memory) > self._memory_items:
            self._memory.popitem(last=False)

    def vectors_for(
        self, conn: psycopg.Connection, records: Sequence[ChunkRecord], stats: EmbedStats
    ) -> tuple[np.ndarray, dict[int, str]]:
        """Vectors for ``records`` (in order) and {record index: reason} for texts the provider rejected."""
        out = np.zeros((len(records), self.provider.dimensions), dtype=np.float32)
        if not records:
            return out, {}
        found: dict[bytes, np.ndarray] = {}
        if self.use_cache:
            t = time.perf_counter()
            missing: list[bytes] = []
            for rec in records:
                h = rec.content_hash
                if h in found:
                    continue
                vec = self._memory.get(h)
                if vec is not None:
                    self._memory.move_to_end(h)
                    found[h] = vec
                else:
                    missing.append(h)
            if missing:
                found.update(cached_vectors(conn, self.coll, list(dict.fromkeys(missing))))
            stats.lookup_s += time.perf_counter() - t
        if not self.use_cache:
            return self._embed_every_chunk(records, stats)
        # Distinct texts still without a vector, embedded once each.
        todo: dict[bytes, str] = {}
        for rec in records:
            if rec.content_hash not in found and rec.content_hash not in todo:
                todo[rec.content_hash] = rec.text
        failures_by_hash: dict[bytes, str] = {}
        if todo:
            t = time.perf_counter()
            keys = list(todo)
            vectors, failures = self.provider.embed_documents_partial([todo[k] for k in keys])
            stats.embed_s += time.perf_counter() - t
            for i, key in enumerate(keys):
                if i in failures:
                    failures_by_hash[key] = failures[i]
                    continue
                found[key] = vectors[i]
                self._remember(key, vectors[i])
            stats.embedded += len(keys) - len(failures)
        rejected: dict[int, str] = {}
        for i, rec in enumerate(records):
            h = rec.content_hash
            if h in failures_by_hash:
                rejected[i] = failures_by_hash[h]
                continue
            out[i] = found[h]
        stats.reused += len(records) - len(rejected) - (len(todo) - len(failures_by_hash))
        stats.rejected += len(rejected)
        for reason in list(dict.fromkeys(rejected.values()))[:3]:
            if len(stats.rejections) < 10:
                stats.rejections.append(reason)
        return out, rejected

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
