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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from dbembed.api.keys import verify_token
from dbembed.api.state import AppState
from dbembed.chat.scope import Actor, InvalidInput


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
    token = x_api_key
    if token is None and authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            token = value.strip()
    if not token:
        raise HTTPException(
            401, "missing API key (Authorization: Bearer <key>)", {"WWW-Authenticate": "Bearer"}
        )
    with state(request).connection() as conn:
        key = verify_token(conn, token)
    if key is None:
        raise HTTPException(401, "invalid or revoked API key", {"WWW-Authenticate": "Bearer"})
    return Principal(key.id, key.tenant_id, key.user_id)


def actor(
    who: Annotated[Principal, Depends(principal)],
    x_dbembed_user: Annotated[str | None, Header()] = None,
) -> Actor:
    if who.user_id is not None:
        if x_dbembed_user is not None and x_dbembed_user != who.user_id:
            raise HTTPException(403, "this API key acts only for its own user")
        return Actor(who.user_id, who.tenant_id)
    if not x_dbembed_user:
        raise HTTPException(400, "a tenant service key must name the user in the X-Dbembed-User header")
    try:
        return Actor(x_dbembed_user, who.tenant_id)
    except InvalidInput as exc:
        raise HTTPException(400, str(exc)) from exc
