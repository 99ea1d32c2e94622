"""What goes into memory: the turn's own text (default, no LLM) or an LLM summary of a chat.

The default needs no model call: a turn's memory text is its user input and bot
response, trimmed to what the embedding model reads (its tokenizer decides), so the
vector never silently covers less than the stored text.  Optionally
``chat_summarizer`` names an LLM that summarizes a whole chat: ``openai:MODEL``
(any OpenAI-compatible ``/v1/chat/completions`` endpoint, via httpx) or
``bedrock:MODEL-ID`` (Claude through the Bedrock Converse API).  The summary and the
summarizer's model are stored with the memory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from dbembed.errors import ConfigError, EmbeddingError, echo

if TYPE_CHECKING:
    from dbembed.config import Settings
    from dbembed.embed.base import EmbeddingProvider

SYSTEM_PROMPT = (
    "You write the long-term memory of a chatbot. Summarize the conversation below in at most "
    "five sentences, in the language of the conversation: what the user wanted, facts about the "
    "user worth remembering, and what was decided or answered. Output only the summary."
)


def turn_text(user_input: str, bot_response: str) -> str:
    return f"User: {user_input.strip()}\nAssistant: {bot_response.strip()}".strip()


def trim_to_model(text: str, provider: EmbeddingProvider) -> str:
    """Cut ``text`` to the provider's input limit (tokens by its tokenizer, then characters)."""
    if provider.max_chars is not None and len(text) > provider.max_chars:
        text = text[: provider.max_chars]
    limit = max(1, int(provider.max_tokens) - 2)  # room for [CLS]/[SEP]-style special tokens
    tok = provider.tokenizer()
    # Cheap bound first: every token covers at least one character.
    if len(text) <= limit:
        return text
    spans = tok.token_spans(text)
    if len(spans) <= limit:
        return text
    return text[: spans[limit - 1][1]]


class Summarizer(Protocol):
    model_id: str

    def summarize(self, turns: Sequence[tuple[str, str]]) -> str: ...


def transcript(turns: Sequence[tuple[str, str]], max_chars: int) -> str:
    """The chat as text, keeping the most recent turns when it is too long."""
    parts: list[str] = []
    used = 0
    for user_input, bot_response in reversed(turns):
        piece = turn_text(user_input, bot_response)
        if used + len(piece) > max_chars and parts:
            break
        parts.append(piece[:max_chars])
        used += len(piece)
    return "\n\n".join(reversed(parts))


class OpenAICompatibleSummarizer:
    """POST {base_url}/chat/completions with the OpenAI wire format (OpenAI, vLLM, Ollama, LiteLLM...)."""

    def __init__(self, model: str, base_url: str, api_key: str | None, timeout_s: float, max_chars: int):
        import httpx

        self.model = model
        self.model_id = f"openai:{model}"
        self.max_chars = max_chars
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    def summarize(self, turns: Sequence[tuple[str, str]]) -> str:
        import httpx

        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": transcript(turns, self.max_chars)},
            ],
            "temperature": 0,
        }
        try:
            resp = self._client.post("/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise EmbeddingError(f"summarizer {self.model_id} unreachable: {exc}") from exc
        if resp.status_code != 200:
            raise EmbeddingError(
                f"summarizer {self.model_id} answered HTTP {resp.status_code}: {resp.text[:200]}"
            )
        try:
            text = resp.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise EmbeddingError(f"summarizer {self.model_id} returned an unexpected body") from exc
        if not isinstance(text, str) or not text.strip():
            raise EmbeddingError(f"summarizer {self.model_id} returned an empty summary")
        return text.strip()

    def close(self) -> None:
        self._client.close()


class BedrockSummarizer:
    """Claude (or any chat model) on Amazon Bedrock through the Converse API."""

    def __init__(self, model: str, settings: Settings):
        try:
            import boto3
        except ImportError as exc:  # pragma: no cover - boto3 is in the aws extra
            raise ConfigError("the Bedrock summarizer needs boto3: pip install 'dbembed[aws]'") from exc
        embed = settings.embed
        session = boto3.Session(profile_name=embed.aws_profile, region_name=embed.aws_region)
        kwargs: dict[str, Any] = {}
        if settings.embed.bedrock_endpoint_url:
            kwargs["endpoint_url"] = settings.embed.bedrock_endpoint_url
        self._client = session.client("bedrock-runtime", **kwargs)
        self.model = model
        self.model_id = f"bedrock:{model}"
        self.max_chars = settings.chat.summary_max_chars

    def summarize(self, turns: Sequence[tuple[str, str]]) -> str:
        try:
            resp = self._client.converse(
                modelId=self.model,
                system=[{"text": SYSTEM_PROMPT}],
                messages=[{"role": "user", "content": [{"text": transcript(turns, self.max_chars)}]}],
                inferenceConfig={"maxTokens": 512, "temperature": 0},
            )
            parts = resp["output"]["message"]["content"]
            text = "".join(p.get("text", "") for p in parts)
        except Exception as exc:  # noqa: BLE001 - botocore errors are many; one message
            raise EmbeddingError(f"summarizer {self.model_id} failed: {exc}") from exc
        if not text.strip():
            raise EmbeddingError(f"summarizer {self.model_id} returned an empty summary")
        return text.strip()

    def close(self) -> None:
        pass


def get_summarizer(settings: Settings) -> OpenAICompatibleSummarizer | BedrockSummarizer | None:
    """The configured chat summarizer, or None (memory = each turn's own text)."""
    spec = settings.chat.summarizer
    if not spec:
        return None
    scheme, _, model = spec.partition(":")
    if not model:
        raise ConfigError(f"chat_summarizer {echo(spec)}: expected openai:MODEL or bedrock:MODEL-ID")
    if scheme == "openai":
        base = settings.chat.summarizer_base_url or settings.embed.openai_base_url
        base = base or "https://api.openai.com/v1"
        key = os.environ.get(settings.chat.summarizer_api_key_env)
        return OpenAICompatibleSummarizer(
            model, base, key, settings.embed.request_timeout_s, settings.chat.summary_max_chars
        )
    if scheme == "bedrock":
        return BedrockSummarizer(model, settings)
    raise ConfigError(f"chat_summarizer {echo(spec)}: unknown scheme {echo(scheme)} (openai or bedrock)")
