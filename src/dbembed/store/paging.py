"""Keyset-paging cursors: the opaque ``next_cursor`` strings every listing hands back.

A cursor is the sort key of the last item of a page (a short JSON list, base64url
without padding).  Clients pass it back unchanged; a cursor a client made up or altered
is ``InvalidInput`` (HTTP 400, exit code 2), never a database error.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dbembed.errors import InvalidInput

MAX_CURSOR_CHARS = 200


@dataclass(frozen=True)
class Page:
    """One page of a listing: its items, and the cursor of the next page (None on the last)."""

    items: list[Any]
    next_cursor: str | None


def encode_cursor(values: list[Any]) -> str:
    """The cursor for these sort-key values (datetimes travel as ISO 8601 text)."""
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, n: int, kinds: str | None = None) -> list[Any] | None:
    """The ``n`` values of a cursor made by :func:`encode_cursor`; ``None`` for no cursor.

    ``kinds`` has one letter per value: ``i`` an integer in PostgreSQL's bigint range
    (the default for every value), ``t`` an ISO 8601 timestamp with a zone.
    """
    if not cursor:
        return None
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != n:
            raise ValueError
        for kind, value in zip(kinds or "i" * n, values, strict=True):
            if kind == "i" and (type(value) is not int or not -(2**63) <= value < 2**63):
                raise ValueError
            if kind == "t" and (not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is None):
                raise ValueError
        return values
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput("cursor: invalid cursor (pass back the next_cursor of the previous page)", "cursor") from exc
