"""Who a chat operation acts for, and the per-transaction database scope that enforces it.

Every chat read or write names an ``Actor`` (tenant + user).  Queries always filter on
both; in addition, when ``rls`` is on (the API), each transaction switches to the
non-superuser role ``dbembed_app`` and sets ``dbembed.tenant_id`` / ``dbembed.user_id``
with ``set_config(..., true)`` (transaction-local), so PostgreSQL row-level security
hides every other user's rows even from a query that forgot its filter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbembed.errors import AccessDenied, InvalidInput
from dbembed.text.inputs import normalize_id

if TYPE_CHECKING:
    import psycopg

APP_ROLE = "dbembed_app"
DEFAULT_TENANT = "default"
MAX_THEME_CHARS = 512


def check_chat_id(chat_id: int) -> int:
    if isinstance(chat_id, bool) or not isinstance(chat_id, int):
        raise InvalidInput("chat id must be an integer")
    if not 0 <= chat_id <= 2**63 - 1:
        raise InvalidInput("chat id must be between 0 and 2^63-1")
    return chat_id


@dataclass(frozen=True)
class Actor:
    """The tenant and user an operation acts for.

    Both ids are normalised on construction (:func:`normalize_id`), so every surface that
    builds an ``Actor`` from what a person typed reaches the same rows:
    ``Actor("Jose\u0301") == Actor("José")``.  Raises ``InvalidInput`` for a malformed id.
    """

    user_id: str
    tenant_id: str = DEFAULT_TENANT

    def __post_init__(self) -> None:
        object.__setattr__(self, "user_id", normalize_id(self.user_id, "user id"))
        object.__setattr__(self, "tenant_id", normalize_id(self.tenant_id, "tenant id"))


@contextlib.contextmanager
def scoped(conn: psycopg.Connection, actor: Actor | None, *, rls: bool) -> Iterator[psycopg.Connection]:
    """One transaction acting for ``actor``; with ``rls`` as role ``dbembed_app``.

    ``actor=None`` is for batch jobs (sync, retention) that run as the owner.
    """
    with conn.transaction():
        if actor is not None:
            # One round trip; set_config('role', ..., true) is SET LOCAL ROLE.
            conn.execute(
                "SELECT set_config('dbembed.tenant_id', %s, true), set_config('dbembed.user_id', %s, true)"
                + (f", set_config('role', '{APP_ROLE}', true)" if rls else ""),
                (actor.tenant_id, actor.user_id),
            )
        elif rls:
            raise AccessDenied("an API request must act for a user")
        yield conn
