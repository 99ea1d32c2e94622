"""Amazon Bedrock embedding models through ``bedrock-runtime`` ``InvokeModel``.

Supported families and their documented request/response bodies:

* Titan Text Embeddings G1 (``amazon.titan-embed-text-v1``): ``{"inputText"}`` ->
  ``{"embedding", "inputTextTokenCount"}``; 1536 dims; 8k tokens; one text per request.
* Titan Text Embeddings V2 (``amazon.titan-embed-text-v2:0``): adds ``dimensions``
  (256/512/1024) and ``normalize``; 8,192 tokens or 50,000 characters; one text per request.
* Cohere Embed English/Multilingual v3 (``cohere.embed-{english,multilingual}-v3``):
  ``{"texts", "input_type", "truncate"}`` -> ``{"embeddings", "id", "response_type"}``;
  1024 dims; up to 96 texts and 2,048 characters per text (512 tokens recommended).

boto3 is imported lazily (it is an optional extra).  Credentials come from the standard
AWS chain (env, profile, SSO, instance/task role); dbembed never reads or logs them.
botocore's own retries are switched off so they do not stack on ours (see remote.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbembed.embed.base import EmbeddingProvider, InputType
from dbembed.embed.plugin import OfflineProfile, ProviderPlugin, estimated_profile
from dbembed.embed.remote import CallResult, RemoteProvider
from dbembed.errors import ConfigError, Fatal, Rejected, Throttled, TimedOut, Transient

if TYPE_CHECKING:
    from dbembed.config import EmbedSettings

THROTTLE_CODES = {
    "ThrottlingException",
    "ServiceQuotaExceededException",
    "ModelNotReadyException",
    "TooManyRequestsException",
}
TRANSIENT_CODES = {"InternalServerException", "ServiceUnavailableException", "ModelErrorException"}
REJECT_CODES = {"ValidationException"}


@dataclass(frozen=True)
class BedrockModel:
    """What dbembed knows about one Bedrock embedding model."""

    family: str  # "titan-v1", "titan-v2", "cohere-v3"
    dimensions: int
    max_tokens: int
    max_chars: int
    batch_size: int
    price_per_1k_tokens: float


# Prices: Bedrock on-demand, us-east-1 (USD per 1,000 input tokens).
_TITAN_V1 = BedrockModel("titan-v1", 1536, 8192, 50_000, 1, 0.0001)
_TITAN_V2 = BedrockModel("titan-v2", 1024, 8192, 50_000, 1, 0.00002)
_COHERE_V3 = BedrockModel("cohere-v3", 1024, 512, 2048, 96, 0.0001)
TITAN_V2_DIMENSIONS = (256, 512, 1024)


def lookup_model(model_id: str) -> BedrockModel:
    """Match a model id, inference-profile id (``us.cohere...``) or ARN to a known family."""
    mid = model_id.lower()
    if "titan-embed-text-v2" in mid:
        return _TITAN_V2
    if "titan-embed-text-v1" in mid or "titan-embed-g1-text" in mid:
        return _TITAN_V1
    if "cohere.embed-english-v3" in mid or "cohere.embed-multilingual-v3" in mid:
        return _COHERE_V3
    raise ConfigError(
        f"unsupported Bedrock embedding model {model_id!r}; supported: amazon.titan-embed-text-v1, "
        "amazon.titan-embed-text-v2:0, cohere.embed-english-v3, cohere.embed-multilingual-v3"
    )


class BedrockPlugin(ProviderPlugin):
    """Amazon Bedrock: Titan Text Embeddings v1/v2 and Cohere Embed v3 (``pip install 'dbembed[aws]'``)."""

    def create(self, name: str, settings: EmbedSettings) -> EmbeddingProvider:
        return BedrockProvider(name, settings)

    def offline_profile(self, name: str, settings: EmbedSettings) -> OfflineProfile:
        info = lookup_model(name)
        return estimated_profile(self.model_id(name, settings), info.max_tokens, info.max_chars, info.price_per_1k_tokens)


def make_client(settings: EmbedSettings) -> Any:
    """A ``bedrock-runtime`` client with botocore retries off and our timeout."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError("the Bedrock provider needs boto3: pip install 'dbembed[aws]'") from exc

    session = boto3.Session(profile_name=settings.aws_profile, region_name=settings.aws_region)
    if not session.region_name:
        raise ConfigError("no AWS region for Bedrock: set aws_region (DBEMBED_AWS_REGION) or AWS_REGION")
    config = Config(
        # total_max_attempts=1: no botocore retry at all ("max_attempts" counts retries: 1 = one retry).
        retries={"total_max_attempts": 1, "mode": "standard"},
        read_timeout=settings.request_timeout_s,
        connect_timeout=min(10.0, settings.request_timeout_s),
        max_pool_connections=max(10, settings.concurrency * 2),
    )
    return session.client("bedrock-runtime", endpoint_url=settings.bedrock_endpoint_url, config=config)


class BedrockProvider(RemoteProvider):
    """Titan v1/v2 and Cohere v3 embeddings on Bedrock."""

    def __init__(self, name: str, settings: EmbedSettings, client: Any = None) -> None:
        super().__init__(settings)
        info = lookup_model(name)
        self.bedrock_model_id = name
        self.model_id = f"bedrock:{name}"
        self.family = info.family
        self.dimensions = _choose_dimensions(info, settings.dimensions, name)
        self.max_tokens = info.max_tokens
        self.max_chars = info.max_chars
        self.batch_size = min(settings.batch_size or info.batch_size, info.batch_size)
        self.price_per_1k_tokens = info.price_per_1k_tokens
        self._client = client if client is not None else make_client(settings)

    # -- request/response bodies -----------------------------------------------------
    def _request_body(self, texts: list[str], input_type: InputType) -> dict[str, Any]:
        if self.family == "cohere-v3":
            return {
                "texts": texts,
                "input_type": "search_query" if input_type == "query" else "search_document",
                "truncate": "END",  # chunks are sized to fit; never fail a chunk over a few tokens
            }
        if len(texts) != 1:  # pragma: no cover - batch_size is 1 for Titan
            raise ValueError("Titan embeds one text per request")
        body: dict[str, Any] = {"inputText": texts[0]}
        if self.family == "titan-v2":
            body["dimensions"] = self.dimensions
            body["normalize"] = True
        return body

    def _parse(self, payload: dict[str, Any], n: int) -> CallResult:
        if self.family == "cohere-v3":
            embeddings = payload.get("embeddings")
            if isinstance(embeddings, dict):  # embedding_types requested: {"float": [...]}
                embeddings = embeddings.get("float")
            if not isinstance(embeddings, list) or len(embeddings) != n:
                raise Transient(
                    f"malformed Cohere response ({len(embeddings or [])} embeddings for {n} texts)"
                )
            return CallResult(list(embeddings), None)  # per text: check_vectors validates each
        vector = payload.get("embedding")
        if vector is None and isinstance(payload.get("embeddingsByType"), dict):
            vector = payload["embeddingsByType"].get("float")
        if not isinstance(vector, list):
            raise Transient("malformed Titan response (no embedding)")
        tokens = payload.get("inputTextTokenCount")
        return CallResult([vector], int(tokens) if tokens is not None else None)

    # -- the call --------------------------------------------------------------------
    def _call(self, texts: list[str], input_type: InputType) -> CallResult:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        body = json.dumps(self._request_body(texts, input_type), ensure_ascii=False).encode("utf-8")
        try:
            response = self._client.invoke_model(
                modelId=self.bedrock_model_id,
                body=body,
                contentType="application/json",
                accept="application/json",
            )
            payload = json.loads(response["body"].read())
        except ClientError as exc:
            raise _classify(exc) from None
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise TimedOut(f"request timed out after {self.timeout_s:g}s ({type(exc).__name__})") from None
        except (EndpointConnectionError, ConnectionClosedError) as exc:
            raise Transient(f"connection failed: {exc}") from None
        except NoCredentialsError:
            raise Fatal("no AWS credentials found (env, profile, SSO or instance role)") from None
        except BotoCoreError as exc:
            raise Transient(f"{type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # response body was not JSON
            raise Transient(f"unreadable response: {exc}") from None
        return self._parse(payload, len(texts))


def _classify(exc: Any) -> Exception:
    """Map a botocore ``ClientError`` to a provider-neutral failure kind."""
    err = exc.response.get("Error", {})
    code = str(err.get("Code", ""))
    message = str(err.get("Message", "")) or code
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    reason = f"{code}: {message}" if code and code not in message else message
    if code in THROTTLE_CODES or status == 429:
        return Throttled(reason)
    if code == "ModelTimeoutException" or status == 408:
        return TimedOut(reason)
    if code in TRANSIENT_CODES or status >= 500:
        return Transient(reason)
    if code in REJECT_CODES:
        return Rejected(reason)
    return Fatal(reason)  # AccessDenied, ResourceNotFound, UnrecognizedClient, ExpiredToken, ...


def _choose_dimensions(info: BedrockModel, requested: int | None, name: str) -> int:
    if requested is None:
        return info.dimensions
    if info.family == "titan-v2":
        if requested not in TITAN_V2_DIMENSIONS:
            raise ConfigError(f"{name} supports dimensions {TITAN_V2_DIMENSIONS}, not {requested}")
        return requested
    if requested != info.dimensions:
        raise ConfigError(f"{name} has {info.dimensions} dimensions; it cannot produce {requested}")
    return requested
