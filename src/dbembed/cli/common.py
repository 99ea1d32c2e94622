"""Shared CLI plumbing: the settings flags every command takes, JSON output, error mapping.

Surfaces stay thin: a command parses flags, calls the library, prints, and maps
``DbembedError`` subclasses to the exit codes documented in ``dbembed.errors``.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer

from dbembed.config import Settings, load_settings
from dbembed.errors import (
    EXIT_FATAL,
    EXIT_INTERRUPTED,
    EXIT_PARTIAL,
    EXIT_PIPE_CLOSED,
    DbembedError,
    InvalidInput,
    interrupted_by,
    renamed,
)

F = TypeVar("F", bound=Callable[..., Any])

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file.", show_default=False)
]
DatabaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="PostgreSQL URL (default: embedded server). Env: DBEMBED_DATABASE_URL."
    ),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the embedded server keeps its data.")
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="Local models: auto (fastest measured here), torch, openvino or onnx (docs/performance.md).",
    ),
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option(
        "--precision",
        help="Local models: auto, fp32, bf16 or fp16 (CUDA); case-insensitive. int8 is not offered: it"
        " misses the search-quality bar (docs/performance.md).",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Embedding model, e.g. local:all-MiniLM-L6-v2, bedrock:ID."),
]
CollectionOpt = Annotated[
    str | None, typer.Option("--collection", help="Collection name (default: from model).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


# Settings whose flag is not ``--`` + the setting's name with dashes.
FLAG_SPELLING = {"settle_s": "--settle", "include_views": "--views", "embed_cache": "--no-cache"}


def cli_settings(config: Path | None, **overrides: Any) -> Settings:
    """``load_settings`` for a command: overrides are flags, and a bad value is named by its flag."""
    names = {name: FLAG_SPELLING.get(name, "--" + name.replace("_", "-")) for name in overrides}
    return load_settings(config, flag_names=names, **overrides)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False, indent=2) + "\n")


def err(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)


def typed_names(fn: Callable[..., Any]) -> dict[str, str]:
    """Each parameter of command ``fn`` as its user types it: ``{"limit": "-n/--limit",
    "k": "-k", "query": "QUERY"}`` (short spellings first; an argument by its metavar)."""
    import inspect
    import typing

    from typer.models import ArgumentInfo, OptionInfo

    hints = typing.get_type_hints(fn, include_extras=True)
    names: dict[str, str] = {}
    for param, sig in inspect.signature(fn).parameters.items():
        infos = [i for i in getattr(hints.get(param), "__metadata__", ()) if isinstance(i, OptionInfo | ArgumentInfo)]
        info = infos[0] if infos else None
        if isinstance(info, OptionInfo):
            given = (info.default, *(info.param_decls or ()))  # Annotated: the first spelling is `default`
            decls = [d for g in given if isinstance(g, str) for d in g.split("/") if d.startswith("-")]
            decls = [d for d in decls if not d.startswith("--no-")] or ["--" + param.replace("_", "-")]
            names[param] = "/".join(sorted(dict.fromkeys(decls), key=lambda d: (d.startswith("--"), d)))
        elif isinstance(info, ArgumentInfo) or sig.default is inspect.Parameter.empty:  # a plain one: typer's argument
            names[param] = (info.metavar if info else None) or param.upper()
        else:
            names[param] = "--" + param.replace("_", "-")
    return names


def handle_errors(fn: F) -> F:
    """Map library errors to one clear line on stderr and the documented exit code; a bad value
    of a parameter (``InvalidInput`` with its ``field``) is named as typed: ``-n/--limit: ...``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DbembedError as exc:
            if isinstance(exc, InvalidInput):
                exc = renamed(exc, typed_names(fn))
            err(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            err(interrupted_by(exc))
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            # stdout closed early (`dbembed files --all | head`): stop quietly, like other Unix tools.
            import os

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(EXIT_PIPE_CLOSED) from None
        except (typer.Abort, click.exceptions.Abort):  # a question answered no (or no terminal)
            err("aborted: nothing was changed (pass --yes to skip the question)")
            raise typer.Exit(EXIT_PARTIAL) from None
        except typer.Exit:
            raise
        except Exception as exc:  # noqa: BLE001 - last resort: one line, fatal exit code
            import os

            if os.environ.get("DBEMBED_DEBUG"):
                raise
            err(f"{type(exc).__name__}: {exc} (set DBEMBED_DEBUG=1 for a traceback)")
            raise typer.Exit(EXIT_FATAL) from None

    return wrapper  # type: ignore[return-value]
