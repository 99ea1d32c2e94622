"""The chat, memory and API-key operations of the service object (``Dbembed`` inherits them).

Every method takes its own connection from ``self.connection()`` (the pool's when the service is
pooled), like the rest of the service; nothing here is shared between threads but the service's
provider and its resolved memory tables (``_chat_cache``), which chat guards itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dbembed.errors import InvalidInput, echo, in_range
from dbembed.store import api_keys
from dbembed.store.api_keys import ApiKey
from dbembed.store.connection import ping
from dbembed.store.scope import Actor

if TYPE_CHECKING:
    import psycopg

    from dbembed.chat import ChatStore
    from dbembed.config import Settings
    from dbembed.embed.base import EmbeddingProvider


class ChatOperations:
    """Chat history, per-user memory and API keys on the service's connections and provider."""

    settings: Settings
    _provider: EmbeddingProvider | None
    _chat_cache: dict[str, Any]

    def connection(self) -> contextlib.AbstractContextManager[psycopg.Connection]:
        raise NotImplementedError  # the service's own (``Dbembed.connection``)

    # -- chat history and memory --------------------------------------------------------------
    @contextlib.contextmanager
    def chat_store(self, *, rls: bool = False) -> Iterator[ChatStore]:
        """A ``ChatStore`` on one connection of this service (the pool's when pooled), sharing this
        service's provider and resolved memory tables; with ``rls`` every transaction runs as role
        ``dbembed_app`` under row-level security (the HTTP API's requests)."""
        from dbembed.chat import ChatStore

        with self.connection() as conn:
            yield ChatStore(conn, self.settings, rls=rls, provider=self._provider, cache=self._chat_cache)

    @staticmethod
    def actor(user: str, tenant: str = "default") -> Actor:
        """Who a chat operation acts for."""
        return Actor(user, tenant)

    def _chat(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        with self.chat_store() as store:
            return getattr(store, operation)(*args, **kwargs)

    def add_turn(self, actor: Actor, chat_id: int, user_input: str, bot_response: str = "", **kw: Any) -> Any:
        """Store one turn of a chat (``theme=``, ``turn_no=``); returns the ``Turn``."""
        return self._chat("add_turn", actor, chat_id, user_input, bot_response, **kw)

    def list_chats(self, actor: Actor, **kw: Any) -> Any:
        """A ``Page`` of the user's chats, most recently active first (``limit``, ``cursor``, ``theme``)."""
        if "limit" in kw:  # refused before a database is opened
            in_range("limit", kw["limit"], 1, self.settings.chat.max_page_size)
        return self._chat("list_chats", actor, **kw)

    def list_turns(self, actor: Actor, chat_id: int, **kw: Any) -> Any:
        """A ``Page`` of a chat's turns, newest first (``limit``, ``cursor``)."""
        if "limit" in kw:  # refused before a database is opened
            in_range("limit", kw["limit"], 1, self.settings.chat.max_page_size)
        return self._chat("list_turns", actor, chat_id, **kw)

    def sync_memory(self, **kw: Any) -> Any:
        """Embed every turn (or chat summary) not yet in memory (``max_batches``, ``batch_size``);
        returns the ``SyncResult``."""
        return self._chat("sync", **kw)

    def search_memory(self, actor: Actor, query: str, **kw: Any) -> Any:
        """Search one user's memory (``k``, ``theme``, ``since``, ``until``, ``mode``): ``MemoryHit``s.
        ``since``/``until``: an ISO 8601 date/time or an age (``2h``, ``7d``), see ``parse_since``;
        bad arguments are refused (``InvalidInput``) before a database is opened."""
        from dbembed.chat.store import search_terms

        search_terms(self.settings, query, **{n: kw[n] for n in ("k", "since", "until", "mode") if n in kw})
        return self._chat("search", actor, query, **kw)

    def delete_user(self, actor: Actor) -> Any:
        """Delete every turn and memory of a user; returns the counts deleted."""
        return self._chat("delete_user", actor)

    def retention(self, days: float, *, include_history: bool = False) -> Any:
        """Expire memory (and with ``include_history`` turns) older than ``days``; returns counts."""
        if not 0 <= days <= 1e6:  # also NaN; refused before a database is opened
            raise InvalidInput(f"days: must be between 0 and 1000000 (got {echo(days)})", "days")
        return self._chat("retention", days, include_history=include_history)

    # -- API keys and the health check -------------------------------------------------
    def create_key(self, tenant: str, user: str | None = None, name: str = "") -> tuple[ApiKey, str]:
        """A new key of ``tenant`` (of ``user``; None: a tenant service key) and its token, shown once
        (only its sha256 is stored).  Raises ``InvalidInput`` for a bad id or name."""
        with self.connection() as conn:
            return api_keys.create_key(conn, tenant, user, name)

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key (of ``tenant``), oldest first; tokens cannot be shown again."""
        with self.connection() as conn:
            return api_keys.list_keys(conn, tenant)

    def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke a key (idempotent); requests with it are refused from now on.  Raises ``NotFound``."""
        with self.connection() as conn:
            return api_keys.revoke_key(conn, key_id)

    def verify_key(self, token: str) -> ApiKey | None:
        """The live key ``token`` belongs to, or None (malformed, unknown, wrong secret, revoked)."""
        with self.connection() as conn:
            return api_keys.verify_token(conn, token)

    def ping(self) -> None:
        """One round trip to the index (opening the pool when pooled); raises when it does not answer."""
        with self.connection() as conn:
            ping(conn)

