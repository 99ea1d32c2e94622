"""Request authentication: API key -> tenant, and the one user the request acts for.

Rules (docs/api.md):
* ``Authorization: Bearer <token>`` or ``X-API-Key: <token>``; anything else is 401.
* A user key acts for its own user.  ``X-Dbembed-User`` may repeat that id; any other
  id is 403.
* A tenant service key (no user) must name the user in ``X-Dbembed-User`` and reaches
  only that tenant's rows, because every row carries the tenant and every query (and
  the RLS policy) filters on it.
No endpoint takes a user id in its path or body, so a caller cannot even ask for
another user's data.

``X-Dbembed-User`` carries a user id as **percent-encoded UTF-8** (RFC 3986), because
HTTP header values are bytes that servers read as Latin-1: ``José`` travels as
``Jos%C3%A9``; plain ASCII ids travel unchanged (a literal ``%`` is ``%25``).  Anything
else is refused with 400 naming the header: raw non-ASCII bytes, control characters, a
``%`` not followed by two hex digits, percent-encoded bytes that are not UTF-8, the
header given twice.  The decoded id is then normalised like every other id
(``dbembed.text.inputs.normalize_id``: NFKC), so the CLI, keys and the API agree on who is who.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import unquote_to_bytes

from fastapi import Depends, Header, HTTPException, Request

from dbembed.api.state import AppState
from dbembed.errors import InvalidInput
from dbembed.service import Actor

USER_HEADER = "X-Dbembed-User"
_VISIBLE_ASCII = re.compile(r"[\x20-\x7e]*")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class Principal:
    key_id: str
    tenant_id: str
    user_id: str | None


def state(request: Request) -> AppState:
    return request.app.state.dbembed  # type: ignore[no-any-return]


def principal(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    """The API key of the request (401 when missing, malformed, unknown or revoked)."""
    token = x_api_key
    if token is None and authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            token = value.strip()
    if not token:
        raise HTTPException(
            401, "missing API key (Authorization: Bearer <key>)", {"WWW-Authenticate": "Bearer"}
        )
    key = state(request).service.verify_key(token)
    if key is None:
        raise HTTPException(401, "invalid or revoked API key", {"WWW-Authenticate": "Bearer"})
    return Principal(key.id, key.tenant_id, key.user_id)


def decode_user_header(raw: str) -> str:
    """The user id in an ``X-Dbembed-User`` value (as the server decoded it: Latin-1).

    Raises ``InvalidInput`` naming the header (mapped to 400) for anything but visible
    ASCII with well-formed percent-encoding of UTF-8; see the module docstring.
    """
    if not _VISIBLE_ASCII.fullmatch(raw):
        bad = next(ch for ch in raw if not "\x20" <= ch <= "\x7e")
        kind = "a control character" if ord(bad) < 0x20 or ord(bad) == 0x7F else "a raw non-ASCII byte"
        raise InvalidInput(
            f"{USER_HEADER} holds {kind} (0x{ord(bad):02x}); send a non-ASCII user id as "
            "percent-encoded UTF-8, e.g. José as Jos%C3%A9 (docs/api.md)"
        )
    if _BAD_PERCENT.search(raw):
        raise InvalidInput(f"{USER_HEADER} has a '%' that is not followed by two hex digits (a literal % is %25)")
    try:
        user = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{USER_HEADER} is not percent-encoded UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        return Actor(user).user_id
    except InvalidInput as exc:
        raise InvalidInput(f"{USER_HEADER}: {exc}") from exc


def actor(
    request: Request,
    who: Annotated[Principal, Depends(principal)],
    x_dbembed_user: Annotated[
        str | None, Header(description="User id, percent-encoded UTF-8 (José: Jos%C3%A9). See docs/api.md.")
    ] = None,
) -> Actor:
    """Who the request acts for: the key's user, or the user a tenant service key names."""
    values = request.headers.getlist(USER_HEADER)  # all of them: a repeated header is refused
    if len(values) > 1:
        raise InvalidInput(f"{USER_HEADER} was given {len(values)} times; give it once")
    named = decode_user_header(values[0]) if values else None
    if who.user_id is not None:
        own = Actor(who.user_id, who.tenant_id)
        if named is not None and named != own.user_id:
            raise HTTPException(403, "this API key acts only for its own user")
        return own
    if not named:
        raise HTTPException(400, f"a tenant service key must name the user in the {USER_HEADER} header")
    return Actor(named, who.tenant_id)
