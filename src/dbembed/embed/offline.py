"""What a provider chunks and charges with, known without loading a model or calling a service.

``dbembed run --dry-run`` must answer "what will the next run do" in seconds: no torch import,
no model load, no network.  ``offline_profile`` gives the same chunk sizing the real provider
will use (so row hashes, chunk boundaries and the diff against the index match a real run):

* local transformer models: the model directory's ``tokenizer.json`` through ``tokenizers``
  (``FileTokenizer``), ``max_seq_length`` from ``sentence_bert_config.json`` minus the special
  tokens the tokenizer adds and the document prefix (exactly what ``SentenceTransformerProvider``
  computes after loading);
* ``local:minilm-static``: the bundled tokenizer and its fixed 254-token window;
* Bedrock and OpenAI-compatible models: the conservative ``EstimatingTokenizer`` the remote
  providers chunk with, and their documented limits and prices.

Token counts for pricing remote models use ``PRICING_CHARS_PER_TOKEN`` (4 characters of Latin
text per token, the rule of thumb OpenAI and AWS document; CJK one per character), since their
real tokenizers are not available offline; local models count with their own tokenizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dbembed.embed.tokenize import EstimatingTokenizer, FileTokenizer

if TYPE_CHECKING:
    from dbembed.config import Settings
    from dbembed.embed.base import Tokenizer

PRICING_CHARS_PER_TOKEN = 4


@dataclass
class OfflineProfile:
    """Duck-types the parts of an ``EmbeddingProvider`` that chunking and pricing use."""

    model_id: str
    max_tokens: int
    max_chars: int | None
    price_per_1k_tokens: float | None
    chunk_tokenizer: Tokenizer
    count_tokenizer: Tokenizer  # what usage/pricing counts with
    token_source: str  # human words: where the token counts come from

    def tokenizer(self) -> Tokenizer:
        return self.chunk_tokenizer

    def count_tokens(self, text: str) -> int:
        return self.count_tokenizer.count(text)

    def estimate_cost(self, tokens: int) -> float | None:
        return None if self.price_per_1k_tokens is None else tokens / 1000.0 * self.price_per_1k_tokens


def _local_profile(model_id: str, path: Path, settings: Settings) -> OfflineProfile:
    from dbembed.embed.local import _known_prefixes

    tok_file = path / "tokenizer.json"
    if not tok_file.is_file():
        from dbembed.errors import ConfigError

        raise ConfigError(f"--dry-run needs {tok_file} to count tokens without loading the model")
    tok = FileTokenizer(tok_file)
    seq = 512
    cfg = path / "sentence_bert_config.json"
    if cfg.is_file():
        seq = int(json.loads(cfg.read_text()).get("max_seq_length") or seq)
    specials = tok.num_special_tokens()
    max_tokens = seq - specials
    prefix = settings.document_prefix if settings.document_prefix is not None else _known_prefixes(path)[1]
    if prefix:
        max_tokens -= tok.count(prefix)
    return OfflineProfile(model_id, max_tokens, None, None, tok, tok, f"the model's tokenizer ({tok_file.name})")


def offline_profile(settings: Settings) -> OfflineProfile:
    """The chunking/pricing profile of ``settings.model``; raises ``ConfigError`` for an unknown one."""
    from dbembed.embed.registry import BUNDLED_ALIASES, STATIC_ALIASES, expected_model_id, split_spec

    scheme, name = split_spec(settings.model)
    model_id = expected_model_id(settings)
    pricing = EstimatingTokenizer(ascii_chars_per_token=PRICING_CHARS_PER_TOKEN)
    estimate = f"estimated at {PRICING_CHARS_PER_TOKEN} characters per token (CJK: 1 per character)"
    if scheme == "local":
        from dbembed.embed.local import bundled_model_path

        if name in STATIC_ALIASES:
            from dbembed.embed.static import MAX_TOKENS

            tok = FileTokenizer(bundled_model_path() / "tokenizer.json")
            return OfflineProfile(model_id, MAX_TOKENS, None, None, tok, tok, "the model's tokenizer")
        path = bundled_model_path() if name in BUNDLED_ALIASES else Path(name)
        return _local_profile(model_id, path, settings)
    if scheme == "bedrock":
        from dbembed.embed.bedrock import lookup_model

        info = lookup_model(name)
        return OfflineProfile(
            model_id, info.max_tokens, info.max_chars, info.price_per_1k_tokens, EstimatingTokenizer(), pricing,
            estimate,
        )  # fmt: skip
    from dbembed.embed.openai import DEFAULT_MAX_TOKENS, KNOWN_MODELS

    known = KNOWN_MODELS.get(name)
    return OfflineProfile(
        model_id,
        known[1] if known else DEFAULT_MAX_TOKENS,
        None,
        known[2] if known else None,
        EstimatingTokenizer(),
        pricing,
        estimate,
    )
