"""The ``dbembed`` console script: one typer app; each area registers its commands.

Each ``dbembed.cli.<area>`` module defines ``register(app)``.  Keep this file a list.
"""

from __future__ import annotations

import importlib
import logging
import os

import typer

app = typer.Typer(
    name="dbembed",
    help="Turn SQLite files and chat history into a PostgreSQL + pgvector semantic search index.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules that add commands.  A module that is absent (optional area) is skipped.
COMMAND_MODULES = [
    "dbembed.cli.index",  # run, search, status, retry-failed, collections
    "dbembed.cli.files",  # files (issue 14)
    "dbembed.cli.generate",  # generate (issue 5)
    "dbembed.cli.chat",  # chat ... (issue 6)
    "dbembed.cli.serve",  # serve, keys ... (issue 6)
    "dbembed.cli.schedule",  # schedule (issue 7)
]


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(app)


_register_all()


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("DBEMBED_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
