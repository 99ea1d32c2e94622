"""OpenAI-compatible ``POST {base}/embeddings`` (OpenAI, Azure OpenAI, TEI, vLLM, Ollama, Infinity).

One wire format serves many servers, so this provider is deliberately plain httpx:
``{"model", "input": [...], "dimensions"?}`` -> ``{"data": [{"index", "embedding"}], "usage"}``.

* The API key comes from the environment variable named by ``settings.openai_api_key_env``
  (never from the config file, never logged).  Local servers usually need none.
* Azure OpenAI: set ``openai_base_url`` to the deployment URL including its query, e.g.
  ``https://NAME.openai.azure.com/openai/deployments/DEPLOY?api-version=2024-02-01``;
  the key is then sent as ``api-key`` instead of ``Authorization: Bearer``.
* 429 honours ``Retry-After``; 5xx and dropped connections retry; 400/413/422 reject input.
* Unknown models: ``--dimensions`` if given, else one probe request finds the width.
"""

from __future__ import annotations

import email.utils
import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from dbembed.embed.base import EmbeddingProvider, InputType
from dbembed.embed.plugin import OfflineProfile, ProviderPlugin, estimated_profile
from dbembed.embed.remote import CallResult, RemoteProvider
from dbembed.errors import ConfigError, EmbeddingError, Fatal, Rejected, Throttled, TimedOut, Transient

if TYPE_CHECKING:
    from dbembed.config import EmbedSettings

DEFAULT_BASE_URL = "https://api.openai.com/v1"

# model -> (native dimensions, max input tokens, USD per 1k tokens)
KNOWN_MODELS: dict[str, tuple[int, int, float | None]] = {
    "text-embedding-3-small": (1536, 8191, 0.00002),
    "text-embedding-3-large": (3072, 8191, 0.00013),
    "text-embedding-ada-002": (1536, 8191, 0.0001),
}
SHORTENABLE = {"text-embedding-3-small", "text-embedding-3-large"}
DEFAULT_MAX_TOKENS = 512  # unknown models: typical BERT-sized limit, safe for most servers


class OpenAIPlugin(ProviderPlugin):
    """OpenAI-compatible embeddings APIs: OpenAI, Azure OpenAI, TEI, vLLM, Ollama, Infinity."""

    def create(self, name: str, settings: EmbedSettings) -> EmbeddingProvider:
        return OpenAIProvider(name, settings)

    def offline_profile(self, name: str, settings: EmbedSettings) -> OfflineProfile:
        known = KNOWN_MODELS.get(name)
        return estimated_profile(
            self.model_id(name, settings),
            known[1] if known else DEFAULT_MAX_TOKENS,
            None,
            known[2] if known else None,
        )


class OpenAIProvider(RemoteProvider):
    """Embeddings from any server speaking the OpenAI embeddings API."""

    def __init__(self, name: str, settings: EmbedSettings) -> None:
        super().__init__(settings)
        import httpx

        if not name:
            raise ConfigError("openai: model name missing (e.g. --model openai:text-embedding-3-small)")
        self.model_name = name
        self.model_id = f"openai:{name}"
        base = settings.openai_base_url or DEFAULT_BASE_URL
        parts = urlsplit(base)
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/embeddings", "", ""))
        self._params = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(settings.openai_api_key_env, "")
        if key:
            if parts.netloc.endswith(".openai.azure.com"):
                headers["api-key"] = key
            else:
                headers["Authorization"] = f"Bearer {key}"
        elif parts.netloc == "api.openai.com":
            raise ConfigError(
                f"OpenAI API key missing: set the environment variable {settings.openai_api_key_env}"
            )
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(settings.request_timeout_s))

        known = KNOWN_MODELS.get(name)
        self.max_tokens = known[1] if known else DEFAULT_MAX_TOKENS
        self.price_per_1k_tokens = known[2] if known else None
        self.batch_size = min(settings.batch_size or 256, 2048)
        self.max_batch_tokens = 250_000  # OpenAI caps one request at 300k tokens
        self._send_dimensions = False
        if settings.dimensions is not None:
            if known and name not in SHORTENABLE and settings.dimensions != known[0]:
                raise ConfigError(f"{name} has {known[0]} dimensions and cannot be shortened")
            self.dimensions = settings.dimensions
            self._send_dimensions = not known or name in SHORTENABLE
        elif known:
            self.dimensions = known[0]
        else:
            self.dimensions = self._probe_dimensions()

    def _probe_dimensions(self) -> int:
        """Ask the server once for the vector width of an unknown model."""
        self.dimensions = 0
        try:
            result = self._call(["dimension probe"], "document")
        except Exception as exc:
            reason = getattr(exc, "reason", str(exc))
            raise EmbeddingError(
                f"{self.model_id}: could not probe the embedding width at {self.url} ({reason}); "
                "pass --dimensions"
            ) from None
        finally:
            self.usage.add(requests=1)
        return len(result.vectors[0])

    def _call(self, texts: list[str], input_type: InputType) -> CallResult:
        import httpx

        body: dict[str, Any] = {"model": self.model_name, "input": texts}
        if self._send_dimensions:
            body["dimensions"] = self.dimensions
        try:
            response = self._client.post(self.url, json=body, params=self._params or None)
        except httpx.TimeoutException:
            raise TimedOut(f"request timed out after {self.timeout_s:g}s") from None
        except httpx.TransportError as exc:
            raise Transient(f"connection failed: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if status >= 400:
            reason = f"HTTP {status}: {_error_message(response)}"
            if status == 429:
                raise Throttled(reason, retry_after=_retry_after(response.headers))
            if status in (408, 409) or status >= 500:
                raise Transient(reason, retry_after=_retry_after(response.headers))
            if status in (400, 413, 422):
                raise Rejected(reason)
            raise Fatal(reason)  # 401, 403, 404, ...
        try:
            payload = response.json()
            data = sorted(payload["data"], key=lambda d: d["index"])
            # Kept per text: one bad vector (NaN, zeros, wrong length) fails that text alone (check_vectors).
            vectors = [d["embedding"] for d in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise Transient(f"malformed embeddings response: {exc}") from None
        if len(vectors) != len(texts):
            raise Transient(f"server returned {len(vectors)} embeddings for {len(texts)} inputs")
        usage = payload.get("usage") or {}
        tokens = usage.get("prompt_tokens", usage.get("total_tokens"))
        return CallResult(vectors, int(tokens) if tokens is not None else None)

    def close(self) -> None:
        super().close()
        self._client.close()


def _error_message(response: Any) -> str:
    try:
        err = response.json().get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err)
        if err:
            return str(err)
    except (ValueError, AttributeError):
        pass
    return (response.text or response.reason_phrase or "")[:200]


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if headers.get("retry-after-ms"):
        try:
            return float(headers["retry-after-ms"]) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())
