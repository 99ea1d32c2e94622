"""``dbembed serve`` (the HTTP API and web page) and ``dbembed keys`` (API key management).

Keys are created, listed and revoked through the service (``Dbembed.create_key`` ...);
``serve`` is the one CLI command that imports the HTTP app (``dbembed.api.app``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dbembed.cli.common import (
    ConfigOpt,
    DatabaseUrlOpt,
    DataDirOpt,
    JsonOpt,
    ModelOpt,
    cli_settings,
    emit_json,
    handle_errors,
)
from dbembed.service import Dbembed

keys_app = typer.Typer(
    help="API keys: each bound to a tenant, and optionally to one user.", no_args_is_help=True
)


def _service(config: Path | None, database_url: str | None, data_dir: Path | None) -> Dbembed:
    return Dbembed(cli_settings(config, database_url=database_url, data_dir=data_dir))


def serve(
    host: Annotated[str | None, typer.Option("--host", help="Interface to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="TCP port (default 8000).")] = None,
    config: ConfigOpt = None, database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None,
    model: ModelOpt = None,
) -> None:  # fmt: skip
    """Run the HTTP API (OpenAPI docs at /docs) and the search page at /."""

    @handle_errors
    def run() -> None:
        import uvicorn

        from dbembed.api.app import create_app

        settings = cli_settings(
            config, database_url=database_url, data_dir=data_dir, model=model, host=host, port=port
        )
        service = Dbembed(settings, pooled=True)
        service.ping()  # connect and migrate now: fail fast with a clear message
        app = create_app(service=service)
        typer.echo(f"dbembed API on http://{settings.host}:{settings.port}  (docs: /docs, page: /)", err=True)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")

    run()


@keys_app.command("create")
@handle_errors
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant the key belongs to.")] = "default",
    user: Annotated[str | None, typer.Option("--user", help="Bind to one user (default: tenant service key).")] = None,
    name: Annotated[str, typer.Option("--name", help="A label for listings.")] = "",
    config: ConfigOpt = None, database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Create a key. The token is printed once; only its hash is stored."""
    key, token = _service(config, database_url, data_dir).create_key(tenant, user, name)
    if as_json:
        emit_json({**key.as_dict(), "token": token})
    else:
        typer.echo(
            f"key {key.id} (tenant {key.tenant_id}, user {key.user_id or '*'}) - store this token now:"
        )
        typer.echo(token)


@keys_app.command("list")
@handle_errors
def list_(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's keys.")] = None,
    config: ConfigOpt = None, database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """List keys (ids, tenants, users, state); tokens cannot be shown again."""
    keys = _service(config, database_url, data_dir).list_keys(tenant)
    if as_json:
        emit_json([k.as_dict() for k in keys])
        return
    for k in keys:
        state = "revoked" if k.revoked_at else "active"
        typer.echo(f"{k.id}\t{k.tenant_id}\t{k.user_id or '*'}\t{state}\t{k.name}")


@keys_app.command("revoke")
@handle_errors
def revoke(
    key_id: str,
    config: ConfigOpt = None, database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Revoke a key by id; requests with it are refused from now on."""
    key = _service(config, database_url, data_dir).revoke_key(key_id)
    emit_json(key.as_dict()) if as_json else typer.echo(f"key {key.id} revoked")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
