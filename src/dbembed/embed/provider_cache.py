"""Embedding providers loaded once per process: a thread-safe cache keyed by model spec, device,
dimensions and (unless it is the reference one) inference runtime.  ``dbembed.service.Dbembed`` owns
one (default: ``default_providers``, shared by every service of the process)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from dbembed.embed import registry

if TYPE_CHECKING:
    from dbembed.config import EmbedSettings, Settings
    from dbembed.embed.base import EmbeddingProvider

# Runtimes whose vectors are the reference ones: providers for them share one cache entry.
_REFERENCE_RUNTIMES = {("auto", "auto"), ("torch", "auto"), ("torch", "fp32"), ("auto", "fp32")}


class ProviderCache:
    """Embedding providers by (model spec, device, dimensions[, backend, precision]); each is
    loaded once (a local transformer takes seconds).  Thread-safe."""

    def __init__(self) -> None:
        self._providers: dict[tuple[Any, ...], EmbeddingProvider] = {}
        self._lock = threading.RLock()

    @staticmethod
    def key(settings: Settings | EmbedSettings | None, spec: str | None = None) -> tuple[Any, ...]:
        if settings is None:
            return (spec, None, None)
        settings = registry.embed_section(settings)
        key: tuple[Any, ...] = (spec or settings.model, settings.device, settings.dimensions)
        if (settings.backend, settings.precision) not in _REFERENCE_RUNTIMES:
            key += (settings.backend, settings.precision)
        return key

    def get(self, settings: Settings | EmbedSettings, spec: str | None = None) -> EmbeddingProvider:
        """The provider for ``spec`` (default ``settings.model``), loaded on first use."""
        key = self.key(settings, spec)
        with self._lock:
            if key not in self._providers:
                self._providers[key] = registry.get_provider(settings, spec)
            return self._providers[key]

    def put(self, provider: EmbeddingProvider, settings: Settings | EmbedSettings | None = None, spec: str | None = None) -> None:
        """Serve ``provider`` for ``spec`` (default its own ``model_id``) under ``settings``' device,
        dimensions and runtime (default: none given, the reference runtime)."""
        with self._lock:
            self._providers[self.key(settings, spec or provider.model_id)] = provider

    def clear(self) -> None:
        with self._lock:
            self._providers.clear()

    def __len__(self) -> int:
        return len(self._providers)


default_providers = ProviderCache()  # the process-wide cache every Dbembed uses unless given its own
