"""Which collection a run writes to, and with which model, decided before any model is loaded.

A collection the user names without naming a model is run with the model it records (as search
does); a named model (or ``--dimensions``) must be the collection's own.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

    from dbembed.config import Settings
    from dbembed.embed.base import EmbeddingProvider
    from dbembed.store.collections import Collection


def model_source(settings: Settings) -> str:
    """Where ``settings``' model was named, as the user wrote it, for hints: ``DBEMBED_MODEL`` when
    that variable holds it, else the flag or the TOML key (flags > env > TOML)."""
    env = os.environ.get("DBEMBED_MODEL")
    if env is not None and env.strip() == settings.embed.model:
        return "DBEMBED_MODEL"
    return "--model (or the TOML key model)"


def check_runtime(settings: Settings, spec: str | None = None) -> None:
    """Refuse (``ConfigError``, the run's own message) a backend/precision a local model would
    refuse, without loading it: search and run answer ``--precision int8`` alike."""
    from dbembed.embed.backends import check_choice
    from dbembed.embed.local_factory import cheap_device
    from dbembed.embed.registry import split_spec

    if split_spec(spec or settings.embed.model)[0] == "local":
        e = settings.embed
        check_choice(e.backend, e.precision, cheap_device(e))


def existing_collection(
    conn: psycopg.Connection, settings: Settings, provider: EmbeddingProvider | None
) -> tuple[Collection | None, Settings]:
    """The collection this run writes to, if it exists, and the settings to run it with; found
    (and checked against the model id and any ``--dimensions``) without loading the model (a given
    ``provider`` is the model).  A named collection with no model named runs with the model it
    records.  Raises ``CollectionMismatch`` when it holds another model's vectors, naming where
    the model was set."""
    from dbembed.embed.registry import expected_model_id
    from dbembed.store.collections import check_requested, default_collection_name, get_collection

    named = provider is not None or bool({"model", "dimensions"} & settings.embed.model_fields_set)
    if settings.store.collection and not named:
        coll = get_collection(conn, settings.store.collection)
        if coll is not None and coll.model != expected_model_id(settings):
            return coll, settings.model_copy(update={"model": coll.model})
        return coll, settings
    model_id = provider.model_id if provider is not None else expected_model_id(settings)
    dims = provider.dimensions if provider is not None else settings.embed.dimensions
    name = settings.store.collection or default_collection_name(model_id, settings.embed.dimensions)
    coll = get_collection(conn, name)
    if coll is not None:
        check_requested(coll, model_id, dims, source=model_source(settings))
    return coll, settings
