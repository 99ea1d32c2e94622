"""``dbembed schedule``: run ``dbembed run`` on a cron schedule in a long-lived process.

For a VM or an ECS service.  On AWS Batch use an EventBridge rule instead (see
docs/aws.md); both can coexist because runs take a PostgreSQL advisory lock.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from dbembed.cli.common import (
    CollectionOpt,
    ConfigOpt,
    DatabaseUrlOpt,
    DataDirOpt,
    ModelOpt,
    cli_settings,
    handle_errors,
)
from dbembed.cli.logging_setup import install as install_logging
from dbembed.errors import Interrupted, UsageError
from dbembed.service import Dbembed

LogFormatOpt = Annotated[
    str | None, typer.Option("--log-format", help="Log format: text or json (one object per line).")
]
MetricsFileOpt = Annotated[
    Path | None,
    typer.Option("--metrics-file", help="Write Prometheus metrics here (node_exporter textfile)."),
]
EmfOpt = Annotated[
    bool | None, typer.Option("--emf/--no-emf", help="Print CloudWatch Embedded Metric Format lines per run.")
]


def _install_stop_handler(stop: threading.Event) -> None:
    """SIGTERM (ECS stop, systemd) ends the wait at once; during a run it interrupts it
    (runs are resumable, the lock dies with the connection)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: Any) -> None:
        already = stop.is_set()
        stop.set()
        if already:
            raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)


def register(app: typer.Typer) -> None:
    @app.command("schedule")
    @handle_errors
    def schedule_cmd(
        roots: Annotated[
            list[str], typer.Argument(help="Directories, files or s3://bucket/prefix/ to index.")
        ],
        cron: Annotated[
            str | None, typer.Option("--cron", help="5-field cron expression in UTC, e.g. '0 2 * * *'.")
        ] = None,
        once: Annotated[
            bool, typer.Option("--once", help="One locked run now, then exit with its code.")
        ] = False,
        max_runs: Annotated[
            int | None, typer.Option("--max-runs", min=1, help="Stop after this many scheduled ticks.")
        ] = None,
        config: ConfigOpt = None,
        database_url: DatabaseUrlOpt = None,
        data_dir: DataDirOpt = None,
        model: ModelOpt = None,
        collection: CollectionOpt = None,
        log_format: LogFormatOpt = None,
        metrics_file: MetricsFileOpt = None,
        emf: EmfOpt = None,
    ) -> None:
        """Run the indexer on a cron schedule; a second scheduler skips while one run holds the lock."""
        if not once and not cron:
            raise UsageError("give --cron 'EXPR' (e.g. '0 2 * * *'), or --once for a single run")
        if cron:
            Dbembed.check_cron(cron)
        settings = cli_settings(
            config,
            database_url=database_url,
            data_dir=data_dir,
            model=model,
            collection=collection,
            log_format=log_format,
            metrics_file=metrics_file,
            emf=emf,
        )
        if settings.run.log_level is None:
            settings.run.log_level = "INFO"  # a long-lived process should say what it does
        install_logging(settings)
        service = Dbembed(settings)
        if once:
            raise typer.Exit(service.run_locked(roots).exit_code)
        stop = threading.Event()
        _install_stop_handler(stop)
        assert cron is not None
        raise typer.Exit(service.schedule(roots, cron, max_runs=max_runs, stop=stop))
