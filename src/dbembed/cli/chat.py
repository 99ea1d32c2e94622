"""``dbembed chat ...``: chat history and per-user memory from the shell (thin over ``dbembed.service``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dbembed.cli.common import (
    CollectionOpt,
    ConfigOpt,
    DatabaseUrlOpt,
    DataDirOpt,
    JsonOpt,
    ModelOpt,
    cli_settings,
    emit_json,
    handle_errors,
)
from dbembed.errors import named_as
from dbembed.service import Dbembed

chat_app = typer.Typer(help="Chat history and per-user semantic memory.", no_args_is_help=True)

TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant the user belongs to.")]
LimitOpt = Annotated[int, typer.Option("--limit", help="Page size.")]
CursorOpt = Annotated[str | None, typer.Option("--cursor", help="next_cursor of the previous page.")]


def _service(config: Any, database_url: Any, data_dir: Any, model: Any = None, collection: Any = None) -> Dbembed:
    return Dbembed(
        cli_settings(config, database_url=database_url, data_dir=data_dir, model=model, collection=collection)
    )


def _print_page(page: Any, as_json: bool, fmt: Any) -> None:
    if as_json:
        emit_json(page.as_dict())
        return
    for item in page.items:
        typer.echo(fmt(item))
    if page.next_cursor:
        typer.echo(f"-- more: --cursor {page.next_cursor}")


@chat_app.command("add-turn")
@handle_errors
def add_turn(
    user: str,
    chat_id: int,
    user_input: Annotated[str, typer.Option("--input", help="What the user said.")],
    bot_response: Annotated[str, typer.Option("--response", help="What the bot answered.")] = "",
    theme: Annotated[str | None, typer.Option("--theme", help="Chat theme (default: the chat's).")] = None,
    turn_no: Annotated[int | None, typer.Option("--turn", help="Turn number (default: next).")] = None,
    tenant: TenantOpt = "default",
    config: ConfigOpt = None, database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Store one turn of a chat."""
    with named_as(user_input="--input", bot_response="--response", theme="--theme"):
        turn = _service(config, database_url, data_dir).add_turn(
            Dbembed.actor(user, tenant), chat_id, user_input, bot_response, theme=theme, turn_no=turn_no
        )
    if as_json:
        emit_json(turn.as_dict())
    else:
        typer.echo(f"chat {turn.chat_id} turn {turn.turn_no} stored (id {turn.id})")


@chat_app.command("list-chats")
@handle_errors
def list_chats(
    user: str, tenant: TenantOpt = "default", limit: LimitOpt = 50, cursor: CursorOpt = None,
    theme: Annotated[str | None, typer.Option("--theme")] = None,
    config: ConfigOpt = None, database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """A user's chats, most recently active first."""
    page = _service(config, database_url, data_dir).list_chats(
        Dbembed.actor(user, tenant), limit=limit, cursor=cursor, theme=theme
    )
    _print_page(
        page, as_json, lambda c: f"{c.chat_id}\t{c.theme}\t{c.turns} turns\tlast {c.last_at:%Y-%m-%d %H:%M}"
    )


@chat_app.command("list-turns")
@handle_errors
def list_turns(
    user: str, chat_id: int, tenant: TenantOpt = "default", limit: LimitOpt = 50, cursor: CursorOpt = None,
    config: ConfigOpt = None, database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """A chat's turns, newest first."""
    page = _service(config, database_url, data_dir).list_turns(
        Dbembed.actor(user, tenant), chat_id, limit=limit, cursor=cursor
    )
    _print_page(page, as_json, lambda t: f"#{t.turn_no} {t.created_at:%Y-%m-%d %H:%M}\n  user: {t.user_input}\n"
                f"  bot:  {t.bot_response}")  # fmt: skip


@chat_app.command("sync")
@handle_errors
def sync(
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Turns per committed batch.")] = None,
    max_batches: Annotated[int | None, typer.Option("--max-batches", help="Stop after N batches.")] = None,
    config: ConfigOpt = None, database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None,
    model: ModelOpt = None, collection: CollectionOpt = None, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Embed every turn (or chat summary) not yet in memory. Idempotent; safe to re-run."""
    res = _service(config, database_url, data_dir, model, collection).sync_memory(
        max_batches=max_batches, batch_size=batch_size
    )
    if as_json:
        emit_json(res.as_dict())
    else:
        typer.echo(
            f"{res.memories_written} memories written ({res.embedded} embedded, {res.reused} reused, "
            f"{res.failed} failed) in {res.seconds:.1f}s" + ("" if res.complete else " - stopped early")
        )
    if res.failed:
        raise typer.Exit(1)


@chat_app.command("search")
@handle_errors
def search(
    user: str, query: str, tenant: TenantOpt = "default",
    k: Annotated[int, typer.Option("-k", "--k", help="How many memories.")] = 10,
    theme: Annotated[str | None, typer.Option("--theme")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only conversations from then on: 2026-11-30T14:00, or an age: 2h, 7d.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only conversations before then (same forms as --since).")
    ] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="hybrid (default), vector or lexical.")] = None,
    config: ConfigOpt = None, database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None,
    model: ModelOpt = None, collection: CollectionOpt = None, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Search one user's memory (by meaning and exact words; see --mode)."""
    hits = _service(config, database_url, data_dir, model, collection).search_memory(
        Dbembed.actor(user, tenant), query, k=k, theme=theme, since=since, until=until, mode=mode
    )
    if as_json:
        emit_json({"items": [h.as_dict() for h in hits]})
        return
    for h in hits:
        typer.echo(f"{h.score:.4f}  chat {h.chat_id}  {h.theme}\n  {h.summary[:300]}")


@chat_app.command("delete-user")
@handle_errors
def delete_user(
    user: str, tenant: TenantOpt = "default",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    config: ConfigOpt = None, database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Delete every turn and memory of a user."""
    if not yes and not as_json:
        typer.confirm(f"Delete all chat history and memory of user {user!r} (tenant {tenant!r})?", abort=True)
    out = _service(config, database_url, data_dir).delete_user(Dbembed.actor(user, tenant))
    emit_json(out) if as_json else typer.echo(
        f"{out['turns_deleted']} turns, {out['memories_deleted']} memories deleted"
    )


@chat_app.command("retention")
@handle_errors
def retention(
    days: Annotated[float, typer.Option("--days", help="Delete memory of conversations older than this.")],
    include_history: Annotated[bool, typer.Option("--history", help="Delete old turns as well.")] = False,
    config: ConfigOpt = None, database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Expire old memory (all users, all models); sync will not bring it back."""
    out = _service(config, database_url, data_dir).retention(days, include_history=include_history)
    emit_json(out) if as_json else typer.echo(
        f"{out['memories_deleted']} memories, {out['turns_deleted']} turns deleted (older than {out['cutoff']})"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(chat_app, name="chat")
