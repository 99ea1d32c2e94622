"""An example dbembed provider plugin: ``--model example:words-<dims>``.

Each word (a run of letters or digits, lower-cased) is hashed to one of ``dims`` buckets with a
stable hash (BLAKE2b, the same on every machine and process); a text's vector is its normalised
bucket counts.  Texts that share words get close vectors, which is enough for keyword-like search
and for showing how a provider is written.  It loads no model and calls no service.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

import numpy as np

from dbembed.embed.base import EmbeddingProvider, InputType, Tokenizer
from dbembed.embed.plugin import ProviderPlugin
from dbembed.errors import ConfigError

if TYPE_CHECKING:
    from dbembed.config import EmbedSettings

WORD = re.compile(r"\w+")


class WordTokenizer:
    """One token per word; what dbembed's chunker sizes chunks with."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in WORD.finditer(text)]

    def count(self, text: str) -> int:
        return sum(1 for _ in WORD.finditer(text))


class HashedWordsProvider(EmbeddingProvider):
    max_tokens = 512
    batch_size = 256

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.model_id = f"example:words-{dims}"
        self.dimensions = dims
        self._tokenizer = WordTokenizer()

    def tokenizer(self) -> Tokenizer:
        return self._tokenizer  # stateless, safe to share between threads

    def _embed_batch(self, texts: list[str], input_type: InputType) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                out[row, int.from_bytes(digest, "little") % self.dimensions] += 1.0
            if not out[row].any():
                out[row, 0] = 1.0  # a text without words still gets a valid vector
        self.usage.add(texts=len(texts), chars=sum(map(len, texts)), requests=1)
        return out  # dbembed checks and L2-normalises what providers return


class ExamplePlugin(ProviderPlugin):
    """Hashed bag-of-words vectors (example plugin): example:words-<dims>."""

    def create(self, name: str, settings: EmbedSettings) -> EmbeddingProvider:
        kind, _, dims = name.partition("-")
        if kind != "words" or not dims.isdigit() or not 8 <= int(dims) <= 4096:
            raise ConfigError(f"example: unknown model {name!r}; use example:words-<8..4096>, e.g. example:words-256")
        return HashedWordsProvider(int(dims))
