"""``ChatStore``: the one object the CLI and the API call for chat history and memory.

It binds a connection, the settings, the tables (native or mapped) and, lazily, the
embedding provider, and it applies the limits (page size, k, text length) so that
every surface enforces the same ones; the SQL is in ``dbembed.store`` (``chat_history``,
``chat_memory``, ``memory_spaces``, ``chat_sync``).  Per-user operations run in
``dbembed.store.scope.scoped``:
with ``rls=True`` (the API) as the non-superuser role ``dbembed_app`` under
row-level security.  Batch jobs (sync, retention) run as the connecting role.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dbembed.chat.sync import SyncResult, sync_memory
from dbembed.errors import AccessDenied, InvalidInput, NotFound, echo, in_range
from dbembed.store import chat_history as history
from dbembed.store import chat_memory as memory
from dbembed.store.chat_tables import MemoryTable, mapped_history, mapping_from_settings, native_history
from dbembed.store.files import parse_since
from dbembed.store.memory_spaces import all_memory_tables, memory_table
from dbembed.store.scope import MAX_THEME_CHARS, Actor, check_chat_id, scoped
from dbembed.text.inputs import clean_input

if TYPE_CHECKING:
    import psycopg

    from dbembed.config import Settings
    from dbembed.embed.base import EmbeddingProvider

# A cache dict is shared by the ChatStores of all request threads (api.state.AppState.cache):
# the provider is loaded once, under this lock, not once per thread that races to it.
_PROVIDER_LOCK = threading.Lock()


class ChatStore:
    def __init__(
        self,
        conn: psycopg.Connection,
        settings: Settings,
        *,
        rls: bool = False,
        provider: EmbeddingProvider | None = None,
        cache: dict[str, Any] | None = None,
    ) -> None:
        self.conn = conn
        self.settings = settings
        mapping = mapping_from_settings(settings.chat.tables)
        self.mapped = mapping is not None
        self.history = mapped_history(mapping) if mapping else native_history()
        # RLS lives on dbembed's own tables; a team's mapped tables get the query filters only.
        self.rls = rls and not self.mapped
        self._provider = provider
        self._cache = cache if cache is not None else {}

    # -- helpers -----------------------------------------------------------------------
    @property
    def provider(self) -> EmbeddingProvider:
        if self._provider is None:
            self._provider = self._cache.get("provider")
        if self._provider is None:
            from dbembed.embed.registry import get_provider

            with _PROVIDER_LOCK:
                self._provider = self._cache.get("provider")
                if self._provider is None:
                    self._provider = self._cache["provider"] = get_provider(self.settings)
        return self._provider

    def _page(self, limit: int) -> int:
        return in_range("limit", limit, 1, self.settings.chat.max_page_size)

    def _theme(self, theme: str | None) -> str | None:
        return None if theme is None else clean_input(theme, "theme", MAX_THEME_CHARS)

    def _memory(self, *, create: bool) -> MemoryTable | None:
        key = f"memory:{self.provider.model_id}:{self.provider.dimensions}"
        mt = self._cache.get(key)
        if mt is None:
            mt = memory_table(
                self.conn,
                self.settings.store,
                self.provider.model_id,
                self.provider.dimensions,
                create=create,
                chat_tables=self.settings.chat.tables,
            )
            if mt is not None:
                self._cache[key] = mt
        return mt

    # -- history -----------------------------------------------------------------------
    def add_turn(
        self,
        actor: Actor,
        chat_id: int,
        user_input: str,
        bot_response: str,
        *,
        theme: str | None = None,
        turn_no: int | None = None,
        created_at: datetime | None = None,
    ) -> history.Turn:
        """Store one turn (user input + bot response) of a chat.

        Texts and theme pass the hygiene boundary first (``dbembed.text.inputs.clean_input``): NUL and
        controls removed, lone surrogates replaced by U+FFFD, NFKC; the returned ``Turn``
        holds what was stored.  Raises ``InvalidInput`` (bad id, too long), ``InvalidText`` (a
        ``user_input`` with no visible character), ``Conflict``.
        """
        check_chat_id(chat_id)
        limit = self.settings.chat.max_text_chars
        user_input = clean_input(user_input, "user_input", limit, allow_empty=False)
        bot_response = clean_input(bot_response, "bot_response", limit)
        new = history.NewTurn(chat_id, user_input, bot_response, self._theme(theme), turn_no, created_at)
        with scoped(self.conn, actor, rls=self.rls) as conn:
            return history.add_turn(conn, self.history, actor, new)

    def list_chats(
        self, actor: Actor, *, limit: int = 50, cursor: str | None = None, theme: str | None = None
    ) -> history.Page:
        with scoped(self.conn, actor, rls=self.rls) as conn:
            return history.list_chats(
                conn, self.history, actor, self._page(limit), cursor, self._theme(theme)
            )

    def list_turns(
        self, actor: Actor, chat_id: int, *, limit: int = 50, cursor: str | None = None
    ) -> history.Page:
        check_chat_id(chat_id)
        with scoped(self.conn, actor, rls=self.rls) as conn:
            return history.list_turns(conn, self.history, actor, chat_id, self._page(limit), cursor)

    def delete_chat(self, actor: Actor, chat_id: int) -> dict[str, int]:
        check_chat_id(chat_id)
        return self._delete(actor, chat_id)

    def delete_user(self, actor: Actor) -> dict[str, int]:
        """Delete everything of the user: turns and memories in every memory space."""
        return self._delete(actor, None)

    def _delete(self, actor: Actor, chat_id: int | None) -> dict[str, int]:
        with scoped(self.conn, actor, rls=self.rls) as conn:
            mem = sum(
                memory.delete_memory(conn, mt, actor, chat_id)
                for mt in all_memory_tables(conn, self.settings.chat.tables)
            )
            turns = history.delete_history(conn, self.history, actor, chat_id)
        return {"turns_deleted": turns, "memories_deleted": mem}

    # -- memory ------------------------------------------------------------------------
    def search(
        self,
        actor: Actor,
        query: str,
        *,
        k: int = 10,
        theme: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        mode: str | None = None,
    ) -> list[memory.MemoryHit]:
        """The user's memories best matching ``query``: ``mode`` hybrid (default,
        ``settings.search_mode``), vector (meaning) or lexical (exact words; the query is not embedded).

        The query is cleaned like the turns were; ``since``/``until`` are what ``parse_since`` takes
        (an ISO 8601 date/time, UTC unless it names an offset, or an age such as ``2h``, ``7d``).
        Raises ``InvalidInput`` whose ``field`` names the parameter at fault.
        """
        query, since, until, mode = search_terms(self.settings, query, k=k, since=since, until=until, mode=mode)
        theme = self._theme(theme)
        # Embedded outside the transaction: no lock held while embedding.
        vector = None if mode == "lexical" else self.provider.embed_query(query)
        with scoped(self.conn, actor, rls=self.rls) as conn:
            mt = self._memory(create=False)
            if mt is None:
                return []
            return memory.search(
                conn, mt, actor, vector, k, self.settings.store, theme, since, until, query=query, mode=mode
            )

    def get_memory(self, actor: Actor, memory_id: int) -> memory.MemoryHit:
        with scoped(self.conn, actor, rls=self.rls) as conn:
            mt = self._memory(create=False)
            if (
                mt is None
                or isinstance(memory_id, bool)
                or not isinstance(memory_id, int)
                or not 0 < memory_id < 2**63
            ):
                raise NotFound(f"memory {memory_id} not found")
            return memory.get_memory(conn, mt, actor, memory_id)

    # -- batch jobs (owner role) -------------------------------------------------------
    def sync(self, *, max_batches: int | None = None, batch_size: int | None = None) -> SyncResult:
        """Embed every turn (or chat summary) not yet in memory; see ``dbembed.chat.sync``."""
        if self.rls:
            raise AccessDenied("memory sync is a batch job; it does not run under an API key")
        from dbembed.chat.summarize import get_summarizer

        mt = self._memory(create=True)
        assert mt is not None
        summarizer = get_summarizer(self.settings)
        try:
            return sync_memory(
                self.conn,
                self.history,
                mt,
                self.provider,
                batch_size=batch_size or self.settings.chat.sync_batch,
                summarizer=summarizer,
                max_batches=max_batches,
            )
        finally:
            if summarizer is not None:
                summarizer.close()

    def retention(self, days: float, *, include_history: bool = False) -> dict[str, Any]:
        """Delete memories (and with ``include_history`` turns) older than ``days`` days."""
        if self.rls:
            raise AccessDenied("retention is a batch job; it does not run under an API key")
        deleted, cutoff = 0, None
        for mt in all_memory_tables(self.conn, self.settings.chat.tables):
            n, cutoff = memory.expire(self.conn, mt, days)
            deleted += n
        turns = 0
        if include_history:
            cutoff = datetime.now(UTC) - timedelta(days=days)
            turns = history.delete_turns_before(self.conn, self.history, cutoff)
        return {"memories_deleted": deleted, "turns_deleted": turns, "cutoff": cutoff}


def search_terms(
    settings: Settings,
    query: str,
    *,
    k: int = 10,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    mode: str | None = None,
) -> tuple[str, datetime | None, datetime | None, str]:
    """A memory search's arguments checked, without a database: the cleaned query, ``since`` and
    ``until`` (``parse_since``) and the mode.  Raises ``InvalidInput`` whose ``field`` names the
    parameter at fault (``k``, ``since``, ``until``, ``mode``, ``query``)."""
    query = clean_input(query, "query", settings.chat.max_text_chars, allow_empty=False)
    in_range("k", k, 1, settings.chat.max_k)
    when, upto = parse_since(since, "since"), parse_since(until, "until")
    if when is not None and upto is not None and when > upto:
        raise InvalidInput(f"since: must not be after until ({when.isoformat()} > {upto.isoformat()})", "since")
    mode = mode or settings.store.search_mode
    if mode not in memory.MODES:
        raise InvalidInput(f"mode: must be one of {', '.join(memory.MODES)} (got {echo(mode)})", "mode")
    return query, when, upto, mode
