"""Who a chat operation acts for, and the per-transaction database scope that enforces it.

Every chat read or write names an ``Actor`` (tenant + user).  Queries always filter on
both; in addition, when ``rls`` is on (the API), each transaction switches to the
non-superuser role ``dbembed_app`` and sets ``dbembed.tenant_id`` / ``dbembed.user_id``
with ``set_config(..., true)`` (transaction-local), so PostgreSQL row-level security
hides every other user's rows even from a query that forgot its filter.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbembed.errors import UsageError
from dbembed.text.hygiene import clean_text, is_blank

if TYPE_CHECKING:
    import psycopg

APP_ROLE = "dbembed_app"
DEFAULT_TENANT = "default"
MAX_ID_CHARS = 256
MAX_THEME_CHARS = 512


class AccessDenied(UsageError):
    """The caller may not act for that user or tenant (HTTP 403)."""

    http_status = 403


class InvalidInput(UsageError):
    """A parameter is malformed or out of range (HTTP 400/422)."""

    http_status = 400


def check_text(value: str, what: str, max_chars: int, *, allow_empty: bool = True) -> str:
    """Reject what PostgreSQL text cannot hold (NUL) and what is unreasonably long.

    For values that must round-trip exactly (file paths, table names in filters).  Free
    text (chat turns, themes, queries) goes through :func:`clean_input` instead.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    if "\x00" in value:
        raise InvalidInput(f"{what} must not contain NUL characters")
    if len(value) > max_chars:
        raise InvalidInput(f"{what} is too long ({len(value)} characters, at most {max_chars})")
    if not allow_empty and not value.strip():
        raise InvalidInput(f"{what} must not be empty")
    return value


def clean_input(value: str, what: str, max_chars: int, *, allow_empty: bool = True) -> str:
    """Free text from a caller (chat turn, theme, search query) through the one hygiene
    boundary (``dbembed.text.hygiene.clean_text``: NUL and controls removed, lone
    surrogates replaced by U+FFFD, invisible format characters removed, NFKC), then the
    length limit.  A text with no visible character is ``''`` (refused when
    ``allow_empty`` is false).  Raises ``InvalidInput`` naming ``what``."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    if len(value) > max_chars:  # before cleaning: a bound on the work done for hostile input
        raise InvalidInput(f"{what} is too long ({len(value)} characters, at most {max_chars})")
    cleaned = clean_text(value)
    if is_blank(cleaned):
        if not allow_empty:
            raise InvalidInput(f"{what} must not be empty (it has no visible character)")
        return ""
    if len(cleaned) > max_chars:  # NFKC can expand a text (e.g. U+FDFA is 18 characters)
        raise InvalidInput(f"{what} is too long after normalisation ({len(cleaned)} characters, at most {max_chars})")
    return cleaned


# Characters no identity may contain: C0/C1 controls (NUL included), DEL, and lone surrogates
# (bytes that were not UTF-8, decoded with surrogateescape, or a JSON "\udXXX" escape).
_BAD_ID_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def normalize_id(value: str, what: str = "user id") -> str:
    """The canonical form of a user or tenant id, the same on every surface (CLI, API,
    API keys, library): invisible format characters removed and NFKC applied (the
    hygiene boundary's rules), so ``José`` typed precomposed or decomposed, or
    ``ｊｏｓé`` full-width, is one identity.

    Refused with ``InvalidInput`` naming ``what`` (never silently changed): control
    characters and lone surrogates, i.e. text that was not valid UTF-8.  Replacing them
    would merge different ids (``caf\\xe9`` and ``caf\\xe8`` would both become ``caf\ufffd``).
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    bad = _BAD_ID_CHARS.search(value)
    if bad is not None:
        ch = bad.group()
        kind = "is not valid UTF-8 text" if "\ud800" <= ch <= "\udfff" else "contains a control character"
        raise InvalidInput(f"{what} {kind} ({ascii(ch)} at position {bad.start()})")
    if len(value) > MAX_ID_CHARS:
        raise InvalidInput(f"{what} is too long ({len(value)} characters, at most {MAX_ID_CHARS})")
    cleaned = clean_text(value)
    if is_blank(cleaned):
        raise InvalidInput(f"{what} must not be empty")
    if len(cleaned) > MAX_ID_CHARS:
        raise InvalidInput(f"{what} is too long ({len(cleaned)} characters, at most {MAX_ID_CHARS})")
    return cleaned


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
