"""Turn a model spec (``--model``) into a provider.

Specs: ``local:all-MiniLM-L6-v2`` (bundled, the default), ``local:/path/to/model``,
``local:minilm-static`` (model2vec distilled from the bundled model),
``bedrock:<model-id>``, ``openai:<model>``.  A spec without a scheme is treated
as ``local:``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbembed.errors import ConfigError

if TYPE_CHECKING:
    from dbembed.config import Settings
    from dbembed.embed.base import EmbeddingProvider


def split_spec(spec: str) -> tuple[str, str]:
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in {"local", "bedrock", "openai"}:
        return "local", spec
    return scheme, rest


BUNDLED_ALIASES = ("", "all-MiniLM-L6-v2", "all-minilm-l6-v2", "minilm")
STATIC_ALIASES = ("minilm-static", "all-MiniLM-L6-v2-static")


def expected_model_id(settings: Settings, spec: str | None = None) -> str:
    """The ``model_id`` the provider for ``spec`` will report, without loading it.

    Lets a run find its collection (and a no-op rerun finish) without spending seconds on a model.
    """
    scheme, name = split_spec(spec or settings.model)
    if scheme == "local":
        from dbembed.embed.local_factory import model_id_for

        if name in BUNDLED_ALIASES:
            return model_id_for("local:all-MiniLM-L6-v2", settings)
        if name in STATIC_ALIASES:
            return "local:minilm-static"
        from pathlib import Path

        return model_id_for(f"local:{Path(name)}", settings)
    return f"{scheme}:{name}"


def get_provider(settings: Settings, spec: str | None = None) -> EmbeddingProvider:
    """Build the provider for ``spec`` (default: ``settings.model``)."""
    scheme, name = split_spec(spec or settings.model)
    if scheme == "local":
        from dbembed.embed.local_factory import make_local_provider

        if name in BUNDLED_ALIASES:
            return make_local_provider(None, settings)
        if name in STATIC_ALIASES:
            try:
                from dbembed.embed.static import StaticModelProvider
            except ImportError as exc:
                raise ConfigError(f"model {spec!r} needs the static provider: {exc}") from exc
            return StaticModelProvider(settings)
        from pathlib import Path

        return make_local_provider(Path(name), settings)
    if scheme == "bedrock":
        try:
            from dbembed.embed.bedrock import make_bedrock_provider
        except ImportError as exc:
            raise ConfigError(f"Bedrock provider unavailable ({exc}); pip install 'dbembed[aws]'") from exc
        return make_bedrock_provider(name, settings)
    if scheme == "openai":
        try:
            from dbembed.embed.openai import OpenAIProvider
        except ImportError as exc:
            raise ConfigError(f"OpenAI provider unavailable ({exc})") from exc
        return OpenAIProvider(name, settings)
    raise ConfigError(f"unknown model spec {spec!r}")  # pragma: no cover
