"""What an embedding-provider plugin implements: the ``dbembed.providers`` entry point group.

A provider package registers one entry point whose *name* is the scheme users write before the
colon in ``--model`` and whose *value* is a ``ProviderPlugin`` subclass::

    # pyproject.toml of the plugin package
    [project.entry-points."dbembed.providers"]
    example = "dbembed_example_provider:ExamplePlugin"

Then ``dbembed run --model example:some-model`` calls ``ExamplePlugin("example").create("some-model",
settings)``.  dbembed's own providers (``local``, ``bedrock``, ``openai``) are registered the same
way in dbembed's pyproject.toml; see docs/providers.md for a complete one-file plugin.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbembed.embed.base import Tokenizer
from dbembed.embed.tokenize import EstimatingTokenizer

if TYPE_CHECKING:
    from dbembed.config import EmbedSettings
    from dbembed.embed.base import EmbeddingProvider

ENTRY_POINT_GROUP = "dbembed.providers"
# Remote models' real tokenizers are not available offline: dry-run prices count 4 characters of
# Latin text a token (the rule of thumb OpenAI and AWS document; CJK one a character).
PRICING_CHARS_PER_TOKEN = 4


@dataclass
class OfflineProfile:
    """What chunking and pricing need of a provider, known without loading a model or calling a
    service (``dbembed run --dry-run``); duck-types those parts of an ``EmbeddingProvider``."""

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


class ProviderPlugin(ABC):
    """One scheme of model specs (``<scheme>:<name>``).

    Instances are made once per process with the entry point's name as ``scheme`` and may be
    used from several threads: keep them stateless (state belongs in the provider ``create``
    returns).  Importing the plugin's module must stay cheap: import heavy libraries (torch,
    SDKs) inside ``create``.
    """

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme

    @abstractmethod
    def create(self, name: str, settings: EmbedSettings) -> EmbeddingProvider:
        """The provider for ``--model <scheme>:<name>``.

        Raise ``dbembed.errors.ConfigError`` for a name, option or credential that cannot work
        (the run ends with exit code 2 and the message)."""

    def model_id(self, name: str, settings: EmbedSettings) -> str:
        """The ``model_id`` that ``create(name, settings)`` will report, without loading anything.

        A run uses it to find its collection, so a no-op rerun never loads the model.  The
        default, ``<scheme>:<name>``, is right for providers that do not rename their models."""
        return f"{self.scheme}:{name}"

    def offline_profile(self, name: str, settings: EmbedSettings) -> OfflineProfile:
        """Chunk sizes, prices and token counting for ``dbembed run --dry-run``.

        The default builds the provider (``create``) and reads its limits, price and tokenizer:
        right, but it may load a model or call a service.  Override it when that is slow."""
        provider = self.create(name, settings)
        try:
            tokenizer = provider.new_tokenizer()
            return OfflineProfile(
                provider.model_id,
                provider.max_tokens,
                provider.max_chars,
                provider.price_per_1k_tokens,
                tokenizer,
                tokenizer,
                f"the {self.scheme} provider's tokenizer",
            )
        finally:
            provider.close()

    def describe(self) -> str:
        """One line for listings of installed providers (default: the class docstring's first line)."""
        doc = (type(self).__doc__ or "").strip()
        return doc.splitlines()[0] if doc else type(self).__name__


def estimated_profile(
    model_id: str, max_tokens: int, max_chars: int | None, price_per_1k_tokens: float | None
) -> OfflineProfile:
    """The dry-run profile of a remote model whose tokenizer is not available offline.

    Chunks are sized with the pessimistic ``EstimatingTokenizer`` the remote providers chunk with;
    costs are counted at ``PRICING_CHARS_PER_TOKEN`` characters a token (CJK: one a character)."""
    pricing = EstimatingTokenizer(ascii_chars_per_token=PRICING_CHARS_PER_TOKEN)
    return OfflineProfile(
        model_id,
        max_tokens,
        max_chars,
        price_per_1k_tokens,
        EstimatingTokenizer(),
        pricing,
        f"estimated at {PRICING_CHARS_PER_TOKEN} characters per token (CJK: 1 per character)",
    )
