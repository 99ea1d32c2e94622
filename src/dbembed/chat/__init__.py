"""Chat history and per-user semantic memory (document 003, done right).

Library API::

    from dbembed.chat import Actor, open_store
    with open_store(settings) as store:
        store.add_turn(Actor("alice"), chat_id=1, user_input="...", bot_response="...", theme="travel")
        store.sync()                                   # batch job: embed what is new
        hits = store.search(Actor("alice"), "where did I want to go?", k=5)

See docs/chat.md.  The CLI (``dbembed chat ...``) and the HTTP API call the same methods.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dbembed.chat.store import ChatStore
from dbembed.chat.sync import SyncResult
from dbembed.config import load_settings
from dbembed.errors import AccessDenied, Conflict, InvalidInput
from dbembed.store.chat_history import ChatInfo, Page, Turn
from dbembed.store.chat_memory import MemoryHit
from dbembed.store.connection import open_connection
from dbembed.store.scope import Actor

if TYPE_CHECKING:
    from dbembed.config import Settings

__all__ = [
    "AccessDenied",
    "Actor",
    "ChatInfo",
    "ChatStore",
    "Conflict",
    "InvalidInput",
    "MemoryHit",
    "Page",
    "SyncResult",
    "Turn",
    "open_store",
]


@contextlib.contextmanager
def open_store(settings: Settings | None = None, **flags: Any) -> Iterator[ChatStore]:
    """A ``ChatStore`` on a ready connection (``dbembed.store.connection.open_connection``:
    connected, migrated, pgvector types registered), closed afterwards."""
    settings = settings or load_settings(**flags)
    conn = open_connection(settings)
    try:
        yield ChatStore(conn, settings)
    finally:
        conn.close()
