"""Chat history: write a turn, list a user's chats and a chat's turns, delete.

Every query filters on the actor's tenant and user (the first wall); the caller runs
it inside ``scope.scoped`` (the second wall, RLS).  Lists are newest first and use
keyset cursors (opaque strings), so a page is stable while turns are being added.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from dbembed.errors import Conflict, InvalidInput, UsageError
from dbembed.store.chat_tables import HistoryTable
from dbembed.store.paging import decode_cursor, encode_cursor
from dbembed.store.scope import Actor

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Turn:
    id: int
    user_id: str
    theme: str
    chat_id: int
    turn_no: int
    user_input: str
    bot_response: str
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChatInfo:
    chat_id: int
    theme: str
    turns: int
    first_at: datetime
    last_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"items": [i.as_dict() for i in self.items], "next_cursor": self.next_cursor}


def _who(h: HistoryTable, actor: Actor) -> tuple[sql.Composable, dict[str, Any]]:
    """The tenant/user filter every history query starts from."""
    cond = sql.SQL("{} = %(tenant)s AND {} = %(user)s").format(h.col("tenant"), h.col("user"))
    return cond, {"tenant": actor.tenant_id, "user": actor.user_id}


@dataclass(frozen=True)
class NewTurn:
    """A turn to store: texts and theme already cleaned (``dbembed.text.inputs.clean_input``); ``theme`` None
    keeps the chat's theme, ``turn_no`` None takes the chat's next number, ``created_at`` None is now."""

    chat_id: int
    user_input: str
    bot_response: str
    theme: str | None = None
    turn_no: int | None = None
    created_at: datetime | None = None


def add_turn(conn: psycopg.Connection, h: HistoryTable, actor: Actor, new: NewTurn) -> Turn:
    """Insert one turn of the actor's; raises ``InvalidInput`` (turn number), ``Conflict`` (it exists)."""
    chat_id, theme, turn_no = new.chat_id, new.theme, new.turn_no
    if h.mapped and actor.tenant_id != "default":
        raise UsageError("mapped chat tables have no tenant column; only tenant 'default' can use them")
    if turn_no is not None and (h.mapped or turn_no < 0 or turn_no > 2**31 - 1):
        raise InvalidInput("turn number must be 0..2^31-1 (and cannot be set on mapped tables)")
    who, params = _who(h, actor)
    params |= {"chat": chat_id, "theme": theme, "input": new.user_input, "response": new.bot_response}
    params |= {"turn": turn_no, "created": new.created_at}
    if theme is None and h.mapped:  # a chat keeps its theme: inherit the latest turn's
        row = conn.execute(
            sql.SQL(
                "SELECT {th} FROM {t} t WHERE {who} AND {c} = %(chat)s ORDER BY {id} DESC LIMIT 1"
            ).format(th=h.col("theme"), t=h.table, who=who, c=h.col("chat"), id=h.col("id")),
            params,
        ).fetchone()
        params["theme"] = row[0] if row else ""
    for attempt in range(5):
        try:
            with conn.transaction():
                return _insert(conn, h, who, params)
        except psycopg.errors.UniqueViolation as exc:
            if h.mapped:
                raise Conflict(
                    f"{h.table.as_string(conn)} rejected a second turn: it has a UNIQUE constraint that "
                    "allows one row per user (document 003's `userid ... UNIQUE` bug). Drop that "
                    f"constraint to store chat history there ({exc.diag.constraint_name})."
                ) from exc
            if turn_no is not None or attempt == 4:
                raise Conflict(f"turn {turn_no} of chat {chat_id} already exists") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _insert(conn: psycopg.Connection, h: HistoryTable, who: sql.Composable, params: dict[str, Any]) -> Turn:
    names = {k: h.raw(k) for k in ("user", "theme", "chat", "input", "response", "created", "id")}
    if h.mapped:
        q = sql.SQL(
            "INSERT INTO {t} ({user}, {theme}, {chat}, {input}, {response}, {created}) "
            "VALUES (%(user)s, %(theme)s, %(chat)s, %(input)s, %(response)s, coalesce(%(created)s, now())) "
            "RETURNING {id}, {created}"
        ).format(t=h.table, **names)
        new_id, created = conn.execute(q, params).fetchone()  # type: ignore[misc]
        n = conn.execute(
            sql.SQL("SELECT count(*) FROM {t} t WHERE {who} AND {c} = %(chat)s AND {id} < %(new)s").format(
                t=h.table, who=who, c=h.col("chat"), id=h.col("id")
            ),
            params | {"new": new_id},
        ).fetchone()
        turn_no = int(n[0]) if n else 0
    else:
        # Writers of one chat take turns (until commit): each reads the committed max(turn_no),
        # so concurrent requests get consecutive numbers instead of colliding and retrying.
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%(tenant)s || chr(31) || %(user)s || chr(31) || %(chat)s::text, 0))",
            params,
        )
        row = conn.execute(
            """INSERT INTO dbembed.chat_turns
                   (tenant_id, user_id, theme, chat_id, turn_no, user_input, bot_response, created_at)
               VALUES (%(tenant)s, %(user)s,
                       coalesce(%(theme)s::text, (SELECT theme FROM dbembed.chat_turns WHERE tenant_id = %(tenant)s
                                AND user_id = %(user)s AND chat_id = %(chat)s ORDER BY turn_no DESC LIMIT 1), ''),
                       %(chat)s,
                       coalesce(%(turn)s, (SELECT coalesce(max(turn_no) + 1, 0) FROM dbembed.chat_turns
                                            WHERE tenant_id = %(tenant)s AND user_id = %(user)s
                                              AND chat_id = %(chat)s)),
                       %(input)s, %(response)s, coalesce(%(created)s, now()))
               RETURNING id, turn_no, created_at, theme""",
            params,
        ).fetchone()
        assert row is not None
        new_id, turn_no, created, params["theme"] = row
    return Turn(
        int(new_id), params["user"], params["theme"], params["chat"], int(turn_no),
        params["input"], params["response"], created,
    )  # fmt: skip


def list_chats(
    conn: psycopg.Connection, h: HistoryTable, actor: Actor, limit: int, cursor: str | None = None,
    theme: str | None = None,
) -> Page:  # fmt: skip
    """A user's chats, most recently active first."""
    who, params = _who(h, actor)
    after = decode_cursor(cursor, 2, "ti")
    params |= {"theme": theme, "n": limit + 1, "cts": after[0] if after else None}
    params["cid"] = after[1] if after else None
    order = h.col("id") if h.mapped else h.col("turn")
    q = sql.SQL(
        "SELECT {c}, (array_agg({th} ORDER BY {o} DESC))[1], count(*), min({cr}), max({cr}) "
        "FROM {t} t WHERE {who} AND (%(theme)s::text IS NULL OR {th} = %(theme)s::text) GROUP BY {c} "
        "HAVING %(cts)s::timestamptz IS NULL OR (max({cr}), {c}) < (%(cts)s::timestamptz, %(cid)s::bigint) "
        "ORDER BY max({cr}) DESC, {c} DESC LIMIT %(n)s"
    ).format(c=h.col("chat"), th=h.col("theme"), o=order, cr=h.col("created"), t=h.table, who=who)
    rows = conn.execute(q, params).fetchall()
    items = [ChatInfo(int(r[0]), r[1], int(r[2]), r[3], r[4]) for r in rows[:limit]]
    nxt = encode_cursor([items[-1].last_at.isoformat(), items[-1].chat_id]) if len(rows) > limit else None
    return Page(items, nxt)


def list_turns(
    conn: psycopg.Connection,
    h: HistoryTable,
    actor: Actor,
    chat_id: int,
    limit: int,
    cursor: str | None = None,
) -> Page:
    """A chat's turns, newest first."""
    who, params = _who(h, actor)
    before = decode_cursor(cursor, 1)
    params |= {"chat": chat_id, "n": limit + 1, "before": int(before[0]) if before else None}
    turn = sql.SQL("(row_number() OVER (ORDER BY {}) - 1)").format(h.col("id")) if h.mapped else h.col("turn")
    q = sql.SQL(
        "SELECT * FROM (SELECT {id}, {u}, {th}, {c}, {turn} AS turn_no, {i}, {r}, {cr} FROM {t} t "
        "WHERE {who} AND {c} = %(chat)s) s WHERE %(before)s::bigint IS NULL OR turn_no < %(before)s::bigint "
        "ORDER BY turn_no DESC LIMIT %(n)s"
    ).format(
        id=h.col("id"), u=h.col("user"), th=h.col("theme"), c=h.col("chat"), turn=turn, i=h.col("input"),
        r=h.col("response"), cr=h.col("created"), t=h.table, who=who,
    )  # fmt: skip
    rows = conn.execute(q, params).fetchall()
    items = [
        Turn(int(r[0]), r[1], r[2], int(r[3]), int(r[4]), r[5] or "", r[6] or "", r[7]) for r in rows[:limit]
    ]
    nxt = encode_cursor([items[-1].turn_no]) if len(rows) > limit else None
    return Page(items, nxt)


def delete_history(
    conn: psycopg.Connection, h: HistoryTable, actor: Actor, chat_id: int | None = None
) -> int:
    """Delete the actor's turns (of one chat, or all); returns the number deleted."""
    who, params = _who(h, actor)
    params["chat"] = chat_id
    cur = conn.execute(
        sql.SQL(
            "DELETE FROM {t} t WHERE {who} AND (%(chat)s::bigint IS NULL OR {c} = %(chat)s::bigint)"
        ).format(t=h.table, who=who, c=h.col("chat")),
        params,
    )
    return cur.rowcount


def delete_turns_before(conn: psycopg.Connection, h: HistoryTable, cutoff: datetime) -> int:
    """Retention over every user's history (a batch job, no actor): delete turns created
    before ``cutoff``; returns the number deleted."""
    return conn.execute(
        sql.SQL("DELETE FROM {} t WHERE {} < %s").format(h.table, h.col("created")), (cutoff,)
    ).rowcount
