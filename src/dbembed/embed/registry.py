"""Turn a model spec (``--model``) into a provider, through the installed provider plugins.

A spec is ``<scheme>:<name>``.  The scheme names an entry point of the ``dbembed.providers`` group
(``dbembed.embed.plugin``): dbembed registers ``local``, ``bedrock`` and ``openai`` itself, in its
pyproject.toml, and any installed package can add more (docs/providers.md).  A spec without a
colon (``all-MiniLM-L6-v2``, ``/models/e5``), or whose part before the first colon cannot be a
scheme or is an existing path, is a ``local:`` model.  An unknown scheme is a ``ConfigError`` that
lists the installed ones.

Entry points are read from the installed distributions' metadata (no import); a plugin's module
is imported the first time its scheme is used, so a broken third-party plugin never affects the
others.  Thread-safe.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from dbembed.config import EmbedSettings, Settings
from dbembed.embed.plugin import ENTRY_POINT_GROUP, ProviderPlugin
from dbembed.errors import ConfigError, echo

if TYPE_CHECKING:
    from dbembed.embed.base import EmbeddingProvider

DEFAULT_SCHEME = "local"
_SCHEME_RE = re.compile(r"[a-z][a-z0-9_.+-]*\Z")
_lock = threading.Lock()
# (sys.path when read, {scheme: entry points}); re-read when sys.path changes
_entry_points: tuple[tuple[str, ...], dict[str, list[importlib.metadata.EntryPoint]]] | None = None
_plugins: dict[tuple[str, str], ProviderPlugin] = {}


def embed_section(settings: Settings | EmbedSettings) -> EmbedSettings:
    """``settings.embed`` for the whole settings object, else ``settings`` itself.

    The entry points below take the embed section and, while callers move over, the whole
    ``Settings``; plugins and providers always receive ``EmbedSettings``."""
    return settings.embed if isinstance(settings, Settings) else settings


def _registered() -> dict[str, list[importlib.metadata.EntryPoint]]:
    global _entry_points
    key = tuple(sys.path)
    with _lock:
        if _entry_points is None or _entry_points[0] != key:
            found: dict[str, list[importlib.metadata.EntryPoint]] = {}
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                same = found.setdefault(ep.name, [])
                if all(other.value != ep.value for other in same):
                    same.append(ep)
            _entry_points = (key, found)
        return _entry_points[1]


def installed_schemes() -> list[str]:
    """The schemes of every installed provider plugin, sorted."""
    return sorted(_registered())


def _no_such_scheme(scheme: str, spec: str) -> ConfigError:
    installed = installed_schemes()
    if not installed:
        return ConfigError(
            f"no embedding provider is installed (entry point group {ENTRY_POINT_GROUP} is empty):"
            " reinstall dbembed (pip install -e . or scripts/setup.sh)"
        )
    return ConfigError(
        f"unknown model provider {echo(scheme)} in model {echo(spec)}; installed providers:"
        f" {', '.join(installed)} (a package adds one under the entry point group {ENTRY_POINT_GROUP},"
        " see docs/providers.md)"
    )


def plugin(scheme: str) -> ProviderPlugin:
    """The plugin registered for ``scheme``, imported and made on first use.

    Raises ``ConfigError`` when no installed package registers ``scheme``, when two register it
    with different objects, or when the plugin fails to import."""
    entries = _registered().get(scheme)
    if not entries:
        raise _no_such_scheme(scheme, f"{scheme}:")
    if len(entries) > 1:
        where = ", ".join(f"{ep.value} ({ep.dist.name if ep.dist else '?'})" for ep in entries)
        raise ConfigError(f"model provider {scheme!r} is registered twice: {where}; uninstall one")
    ep = entries[0]
    with _lock:
        made = _plugins.get((scheme, ep.value))
    if made is not None:
        return made
    try:
        cls = ep.load()
    except Exception as exc:
        raise ConfigError(f"model provider {scheme!r} ({ep.value}) failed to load: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, ProviderPlugin)):
        raise ConfigError(f"model provider {scheme!r}: {ep.value} is not a dbembed ProviderPlugin subclass")
    made = cls(scheme)
    with _lock:
        return _plugins.setdefault((scheme, ep.value), made)


def split_spec(spec: str) -> tuple[str, str]:
    """``"bedrock:cohere.embed-english-v3"`` -> ``("bedrock", "cohere.embed-english-v3")``.

    A spec without a scheme is ``local``; an unknown scheme raises ``ConfigError`` listing the
    installed providers."""
    scheme, sep, rest = spec.partition(":")
    if not sep:
        return DEFAULT_SCHEME, spec
    if scheme in _registered():
        return scheme, rest
    if not _SCHEME_RE.match(scheme) or Path(spec).exists():  # e.g. ./models/a:b, C:\models
        return DEFAULT_SCHEME, spec
    raise _no_such_scheme(scheme, spec)


def expected_model_id(settings: Settings | EmbedSettings, spec: str | None = None) -> str:
    """The ``model_id`` the provider for ``spec`` will report, without loading it.

    Lets a run find its collection (and a no-op rerun finish) without spending seconds on a model.
    """
    settings = embed_section(settings)
    scheme, name = split_spec(spec or settings.model)
    return plugin(scheme).model_id(name, settings)


def get_provider(settings: Settings | EmbedSettings, spec: str | None = None) -> EmbeddingProvider:
    """Build the provider for ``spec`` (default: ``settings.model``)."""
    settings = embed_section(settings)
    scheme, name = split_spec(spec or settings.model)
    return plugin(scheme).create(name, settings)
