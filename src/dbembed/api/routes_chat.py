"""Chat endpoints: turns (write, read), chats, memory search and read, user deletion.

Thin: parse, call the service's ``ChatStore`` (``Dbembed.chat_store(rls=True)``: a pooled
connection on which the request runs as role ``dbembed_app`` under row-level security),
return JSON.  Errors are mapped to HTTP statuses in ``dbembed.api.errors``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from dbembed.api.auth import Principal, actor, principal, state
from dbembed.api.routes_files import SearchMode
from dbembed.errors import named_as
from dbembed.service import Actor

router = APIRouter(prefix="/v1", tags=["chat"])

ChatId = Annotated[int, Path(ge=0, le=2**63 - 1, description="Chat id (>= 0), chosen by the client.")]
Limit = Annotated[int, Query(ge=1, description="Page size (at most settings.max_page_size).")]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")]
ThemeQ = Annotated[str | None, Query(max_length=512)]
TimeQ = Annotated[
    str | None, Query(max_length=64, description="ISO 8601 date/time (UTC unless it names an offset) or an age: 2h, 7d.")
]


class TurnIn(BaseModel):
    user_input: str = Field(description="What the user said.")
    bot_response: str = Field("", description="What the bot answered.")
    # No max_length here: pydantic would refuse a lone surrogate in a constrained string, and
    # texts are cleaned (surrogates replaced) and length-checked in one place, ChatStore.
    theme: str | None = Field(None, description="Chat theme (at most 512 characters); default: the chat's current one.")
    turn_no: int | None = Field(None, ge=0, le=2**31 - 1, description="Default: next number in the chat.")


ActorDep = Annotated[Actor, Depends(actor)]
BODY_FIELDS = {name: f"JSON field {name}" for name in TurnIn.model_fields}


@router.get("/me", tags=["auth"])
def whoami(who: Annotated[Principal, Depends(principal)], me: ActorDep) -> dict[str, Any]:
    """The tenant, user and key id this request acts as."""
    return {"tenant_id": me.tenant_id, "user_id": me.user_id, "key_id": who.key_id}


@router.post("/chats/{chat_id}/turns", status_code=201)
def add_turn(chat_id: ChatId, body: TurnIn, me: ActorDep, request: Request) -> dict[str, Any]:
    """Store one turn of a chat (user input + bot response)."""
    with state(request).service.chat_store(rls=True) as s, named_as(**BODY_FIELDS):
        turn = s.add_turn(me, chat_id, body.user_input, body.bot_response, theme=body.theme, turn_no=body.turn_no)
    state(request).metrics.count("turns_written")
    return turn.as_dict()


@router.get("/chats")
def list_chats(
    me: ActorDep, request: Request, limit: Limit = 50, cursor: Cursor = None, theme: ThemeQ = None
) -> Any:
    """The user's chats, most recently active first."""
    with state(request).service.chat_store(rls=True) as s:
        return s.list_chats(me, limit=limit, cursor=cursor, theme=theme).as_dict()


@router.get("/chats/{chat_id}/turns")
def list_turns(
    chat_id: ChatId, me: ActorDep, request: Request, limit: Limit = 50, cursor: Cursor = None
) -> Any:
    """A chat's turns, newest first."""
    with state(request).service.chat_store(rls=True) as s:
        return s.list_turns(me, chat_id, limit=limit, cursor=cursor).as_dict()


@router.delete("/chats/{chat_id}")
def delete_chat(chat_id: ChatId, me: ActorDep, request: Request) -> dict[str, int]:
    """Delete one chat of the user: its turns and memories."""
    with state(request).service.chat_store(rls=True) as s:
        return s.delete_chat(me, chat_id)


@router.get("/memory/search")
def search_memory(
    me: ActorDep,
    request: Request,
    q: Annotated[str, Query(min_length=1, description="What to remember.")],
    k: Annotated[int, Query(ge=1)] = 10,
    theme: ThemeQ = None,
    since: TimeQ = None,
    until: TimeQ = None,
    mode: Annotated[SearchMode | None, Query(description="hybrid (default), vector or lexical.")] = None,
) -> dict[str, Any]:
    """The user's memories best matching ``q`` by meaning and words (optionally one theme, a time range)."""
    with state(request).service.chat_store(rls=True) as s:
        hits = s.search(me, q, k=k, theme=theme, since=since, until=until, mode=mode)
    state(request).metrics.count("memory_searches")
    return {"items": [h.as_dict() for h in hits]}


@router.get("/memory/{memory_id}")
def get_memory(
    memory_id: Annotated[int, Path(ge=1, le=2**63 - 1)], me: ActorDep, request: Request
) -> dict[str, Any]:
    """One of the user's memories by id (another user's id is 404, like a missing one)."""
    with state(request).service.chat_store(rls=True) as s:
        return s.get_memory(me, memory_id).as_dict()


@router.delete("/me")
def delete_me(me: ActorDep, request: Request) -> dict[str, int]:
    """Delete everything of the acting user: every turn and every memory (all models)."""
    with state(request).service.chat_store(rls=True) as s:
        out = s.delete_user(me)
    state(request).metrics.count("users_deleted")
    return out
