"""What a provider chunks and charges with, known without loading a model or calling a service.

``dbembed run --dry-run`` must answer "what will the next run do" in seconds: no torch import,
no model load, no network.  ``offline_profile`` asks the model's provider plugin
(``ProviderPlugin.offline_profile``) for the same chunk sizing the real provider will use, so
row hashes, chunk boundaries and the diff against the index match a real run:

* local transformer models: the model directory's ``tokenizer.json`` through ``tokenizers``
  (``FileTokenizer``), ``max_seq_length`` from ``sentence_bert_config.json`` minus the special
  tokens the tokenizer adds and the document prefix (exactly what ``SentenceTransformerProvider``
  computes after loading);
* ``local:minilm-static``: the bundled tokenizer and its fixed 254-token window;
* Bedrock and OpenAI-compatible models: the conservative ``EstimatingTokenizer`` the remote
  providers chunk with, and their documented limits and prices (``estimated_profile``).

Token counts for pricing remote models use ``PRICING_CHARS_PER_TOKEN``; local models count with
their own tokenizer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbembed.embed.plugin import PRICING_CHARS_PER_TOKEN, OfflineProfile, estimated_profile
from dbembed.embed.registry import embed_section, plugin, split_spec

if TYPE_CHECKING:
    from dbembed.config import EmbedSettings, Settings

__all__ = ["PRICING_CHARS_PER_TOKEN", "OfflineProfile", "estimated_profile", "offline_profile"]


def offline_profile(settings: Settings | EmbedSettings) -> OfflineProfile:
    """The chunking/pricing profile of ``settings.model``; raises ``ConfigError`` for an unknown one."""
    settings = embed_section(settings)
    scheme, name = split_spec(settings.model)
    return plugin(scheme).offline_profile(name, settings)
