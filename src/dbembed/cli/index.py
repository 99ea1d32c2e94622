"""``dbembed run | search | status | retry-failed``: the file index from the shell (thin over ``dbembed.service``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from dbembed.cli.common import (
    BackendOpt,
    CollectionOpt,
    ConfigOpt,
    DatabaseUrlOpt,
    DataDirOpt,
    JsonOpt,
    ModelOpt,
    PrecisionOpt,
    cli_settings,
    emit_json,
    handle_errors,
)
from dbembed.cli.logging_setup import install as install_logging
from dbembed.cli.progress import RunProgress
from dbembed.service import Dbembed

# Options of `dbembed run` only (the shared ones live in dbembed.cli.common).
DimensionsOpt = Annotated[int | None, typer.Option(help="Output dimensions for models that can shorten.")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", "-w", help="Worker processes on this machine.")]
SettleOpt = Annotated[
    float | None, typer.Option("--settle", help="Skip files modified in the last N seconds (default 60).")
]
IncludeOpt = Annotated[list[str] | None, typer.Option("--include", help="Glob of files to index (repeatable).")]
ExcludeOpt = Annotated[list[str] | None, typer.Option("--exclude", help="Glob of files to skip (repeatable).")]
ViewsOpt = Annotated[bool | None, typer.Option("--views/--no-views", help="Index views too.")]
DocumentFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--document-format",
        help="How a row becomes text: table-columns (Album | Title: ...), columns (Title: ...) or "
        "values; a [tables] template wins. A change re-documents rows on the next run.",
    ),
]
VerifyOpt = Annotated[bool | None, typer.Option("--verify", help="Confirm unchanged files by content hash.")]
SidecarOpt = Annotated[
    bool | None, typer.Option("--sidecar/--no-sidecar", help="Write <file>.embedding_metadata.json.")
]
KeepMissingOpt = Annotated[bool | None, typer.Option("--keep-missing", help="Keep chunks of vanished files.")]
AllowEmptyRootOpt = Annotated[
    bool | None,
    typer.Option(
        "--allow-empty-root",
        help="A root where no file matches drops what was indexed under it (default: kept, with a note).",
    ),
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not reuse stored vectors (benchmarking).")]
VectorTypeOpt = Annotated[str | None, typer.Option("--vector-type", help="halfvec (default) or vector.")]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="What the next run would do (diff vs the index, tokens, cost, time); no model load."
    ),
]
S3MetadataOpt = Annotated[
    bool | None, typer.Option("--s3-metadata", help="Write metadata JSON next to S3 objects.")
]
ForceOpt = Annotated[
    bool | None, typer.Option("--force", help="Re-read every file; unchanged rows are not re-embedded.")
]
LogFormatOpt = Annotated[str | None, typer.Option("--log-format", help="text, or json (one event per line).")]
EmfOpt = Annotated[bool | None, typer.Option("--emf/--no-emf", help="Print CloudWatch Embedded Metric Format lines.")]
MetricsFileOpt = Annotated[
    Path | None, typer.Option("--metrics-file", help="Write Prometheus textfile metrics here.")
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="Local models: cpu, cuda, cuda:1, mps (default: auto).")
]

# `dbembed run` flag -> the setting it overrides (flat name), or (setting, conversion).  Flags not
# listed here (roots, config, dry_run, json_out) are not settings.
FlagTable = dict[str, str | tuple[str, Callable[[Any], Any]]]
RUN_FLAGS: FlagTable = {
    "database_url": "database_url", "data_dir": "data_dir", "model": "model", "collection": "collection",
    "dimensions": "dimensions", "workers": "workers", "settle": "settle_s", "include": "include",
    "exclude": "exclude", "views": "include_views", "document_format": "document_format", "verify": "verify",
    "sidecar": "sidecar",
    "keep_missing": "keep_missing", "allow_empty_root": "allow_empty_root", "no_cache": ("embed_cache", lambda on: False if on else None),
    "vector_type": "vector_type", "s3_metadata": "s3_metadata", "log_format": "log_format", "emf": "emf",
    "metrics_file": "metrics_file", "force": "force", "device": "device", "backend": "backend",
    "precision": "precision",
}  # fmt: skip


def settings_overrides(table: FlagTable, flags: dict[str, Any]) -> dict[str, Any]:
    """Map parsed flags onto settings overrides through ``table``; unset flags (None, empty lists)
    are left out so that env vars and the config file still apply."""
    out: dict[str, Any] = {}
    for flag, target in table.items():
        name, convert = (target, None) if isinstance(target, str) else target
        value = convert(flags.get(flag)) if convert else flags.get(flag)
        if value is not None and value != []:
            out[name] = value
    return out


def run_cmd(
    roots: Annotated[list[str], typer.Argument(help="Folders, files or s3://bucket/prefix/ to index.")],
    config: ConfigOpt = None, database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None,
    model: ModelOpt = None, collection: CollectionOpt = None, dimensions: DimensionsOpt = None,
    workers: WorkersOpt = None, settle: SettleOpt = None, include: IncludeOpt = None, exclude: ExcludeOpt = None,
    views: ViewsOpt = None, document_format: DocumentFormatOpt = None, verify: VerifyOpt = None,
    sidecar: SidecarOpt = None, keep_missing: KeepMissingOpt = None, allow_empty_root: AllowEmptyRootOpt = None,
    no_cache: NoCacheOpt = False,
    vector_type: VectorTypeOpt = None,
    dry_run: DryRunOpt = False, s3_metadata: S3MetadataOpt = None, log_format: LogFormatOpt = None,
    emf: EmfOpt = None, metrics_file: MetricsFileOpt = None, force: ForceOpt = None, device: DeviceOpt = None,
    backend: BackendOpt = None, precision: PrecisionOpt = None, json_out: JsonOpt = False,
) -> None:  # fmt: skip
    """Find, read, embed and store every SQLite file under ROOTS (incremental, resumable)."""
    s = cli_settings(config, **settings_overrides(RUN_FLAGS, locals()))
    install_logging(s)
    service = Dbembed(s)
    if dry_run:
        plan = service.dry_run(roots)
        if json_out:
            emit_json(plan.as_dict())
        else:
            _print_plan(plan, s.sources.settle_s)
        return
    with RunProgress(enabled=not json_out and sys.stderr.isatty()) as progress:
        summary = service.index(
            roots, on_file=progress.on_file, on_start=progress.on_start, on_estimate=progress.on_estimate,
            on_progress=progress.on_progress,
        )  # fmt: skip
    if json_out:
        emit_json(summary.as_dict())
    else:
        _print_summary(summary)
    raise typer.Exit(summary.exit_code)


def _print_plan(r: Any, settle_s: float) -> None:
    """The human form of a ``RunPlan``."""
    typer.echo(f"dry run: what `dbembed run` would do now with {r.model} (nothing embedded or written)")
    typer.echo(
        f"  files: {r.files:,} found: {r.files_new:,} new, {r.files_changed:,} changed,"
        f" {r.files_unchanged:,} unchanged, {r.files_pending:,} pending, {r.files_still_failed:,}"
        f" still failed; {r.files_deleted:,} gone; {r.files_unreadable:,} unreadable"
    )
    typer.echo(
        f"  rows: {r.rows_new:,} new, {r.rows_changed:,} changed, {r.rows_deleted:,} deleted,"
        f" {r.rows_unchanged:,} unchanged ({r.rows:,} read)"
    )
    if r.tables_rejected or r.rows_rejected:
        typer.echo(f"  rejected as a run would: {r.tables_rejected:,} table(s), {r.rows_rejected:,} row(s)")
    typer.echo(
        f"  chunks: {r.chunks:,} to write, {r.chunks_reused:,} reuse stored vectors;"
        f" {r.texts_to_embed:,} texts to embed, {r.tokens:,} tokens ({r.token_source})"
    )
    cost = r.estimated_cost_usd
    typer.echo("  cost: " + ("no price known (local or unknown model)" if cost is None else f"${cost:.4f}"))
    secs = r.estimated_seconds
    typer.echo("  time in the model: " + ("unknown" if secs is None else f"~{secs:,.1f} s") + f" ({r.estimate_basis})")
    for u in r.unreadable[:20]:
        typer.echo(f"  unreadable: {u.file}: {u.error}")
    if r.files_pending:
        typer.echo(
            f"  note: {r.files_pending:,} file(s) changed in the last {settle_s:g} s would be left for the"
            " next run; --settle 0 indexes them now"
        )
    if r.files_still_failed:
        typer.echo(f"  note: {r.files_still_failed:,} failed file(s) unchanged since: `dbembed retry-failed`")
    if not r.files_new + r.files_changed + r.files_deleted:
        typer.echo(f"nothing to do: {r.files_unchanged:,} files unchanged")


def _still_failed(n: int) -> str:
    """Files that failed in an earlier run and were not retried: never counted as unchanged."""
    return f"{n} failed earlier and not retried (`dbembed files --status failed`, `dbembed retry-failed`), " if n else ""


def _print_summary(summary: Any) -> None:
    typer.echo(
        f"run {summary.run_id} [{summary.collection}] {summary.status}: "
        f"{summary.files_ok} ok, {summary.files_failed} failed, {summary.files_skipped} unchanged, "
        + _still_failed(summary.files_still_failed)
        + f"{summary.files_pending} pending, {summary.files_missing} missing | {summary.rows} rows, "
        f"{summary.chunks} chunks ({summary.texts_embedded} embedded, {summary.texts_reused} reused) "
        f"in {summary.seconds:.1f}s, {summary.chunks_per_s:.0f} chunks/s"
        + (f" [{summary.runtime}]" if summary.runtime else "")
    )
    for f in summary.failures[:20]:
        typer.echo(f"  failed: {f['file']}: {f['error']}")
    if len(summary.failures) > 20:
        typer.echo(f"  ... {len(summary.failures) - 20} more failed file(s)")
    for note in summary.notes:
        typer.echo(f"  note: {note}")


def search_cmd(
    query: Annotated[str, typer.Argument(help="What to look for, in plain words.")],
    k: Annotated[int, typer.Option("-k", "--k", help="Number of hits.")] = 10,
    file: Annotated[str | None, typer.Option("--file", help="Only files matching this glob.")] = None,
    table: Annotated[str | None, typer.Option("--table", help="Only this table.")] = None,
    config: ConfigOpt = None,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    model: ModelOpt = None,
    collection: CollectionOpt = None,
    exact: Annotated[bool, typer.Option("--exact", help="Exact scan instead of the HNSW index.")] = False,
    backend: BackendOpt = None,
    precision: PrecisionOpt = None,
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            help="hybrid (meaning + exact words, fused; the default), vector (meaning only) or "
            "lexical (exact words, names, codes; no model needed).",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Search the indexed rows by meaning and exact words: score, file, table, row and text."""
    # --collection is this call's: a model from DBEMBED_MODEL or the TOML file does not overrule it,
    # --model given with it must be its model.
    per_call = collection is not None
    s = cli_settings(
        config, database_url=database_url, data_dir=data_dir, model=None if per_call else model, backend=backend,
        precision=precision,
    )  # fmt: skip
    hits = Dbembed(s).search(
        query, k, file=file, table=table, exact=exact, mode=mode, collection=collection, model=model if per_call else None
    )  # fmt: skip
    if json_out:
        emit_json([h.as_dict() for h in hits])
        return
    if not hits:
        typer.echo("no hits")
    for i, h in enumerate(hits, 1):
        text = h.text if len(h.text) <= 200 else h.text[:197] + "..."
        typer.echo(f"{i:>2}. {h.score:.4f}  {h.path}  [{h.table} #{h.row_key}]\n    {text}")


def status_cmd(
    config: ConfigOpt = None,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
    runs: Annotated[int, typer.Option(help="How many recent runs to show.")] = 5,
    json_out: JsonOpt = False,
) -> None:
    """What is indexed, what failed and why, pending/leased work, recent runs."""
    s = cli_settings(config, database_url=database_url, data_dir=data_dir, collection=collection)
    report = Dbembed(s).status(runs=runs)
    if json_out:
        emit_json(report.as_dict())
        return
    if not report.collections:
        typer.echo("nothing indexed yet: run `dbembed run ROOT`")
    for c in report.collections:
        typer.echo(f"collection {c.name}: {c.model} ({c.dimensions} dims, {c.vector_type})")
        typer.echo(
            "  files: " + ", ".join(f"{v} {k}" for k, v in c.files.items()) + f" | {c.rows} rows, {c.chunks} chunks"
        )
        for lease in c.leased:
            typer.echo(f"  leased: {lease.file} by {lease.owner} until {lease.expires}")
        for fail in c.failures:
            typer.echo(f"  failed: {fail.file}: {fail.error}")
        if c.files.get("failed", 0) > len(c.failures):
            typer.echo(f"  ... {c.files['failed'] - len(c.failures)} more failed file(s)")
        _echo_rejections(c.rejections)
        for r in c.runs:
            typer.echo(_run_line(r))
    if report.collections:
        typer.echo(
            "per file (rows, chunks, rejections, times, errors): dbembed files"
            " [--status failed] [--glob PATTERN] [--since 2h] [--json]"
        )


def _run_line(r: Any) -> str:
    """One line per ``RunRecord``: counters, seconds, runtime, provider usage and error."""
    usage = "; ".join(
        f"{m}: {int(u.get('texts', 0))} texts, {int(u.get('tokens', 0))} tokens, {int(u.get('requests', 0))} req,"
        f" {int(u.get('retries', 0))} retries, {int(u.get('throttles', 0))} throttles, ${u.get('cost_usd', 0):.4f}"
        for m, u in (r.usage or {}).items()
    )
    return (
        f"  run {r.id} {r.status} {r.started_at:%Y-%m-%d %H:%M:%S}: {r.files_ok} ok,"
        f" {r.files_failed} failed, {r.files_skipped} unchanged, {_still_failed(r.files_still_failed)}{r.chunks} chunks"
        f" ({r.texts_embedded} embedded, {r.texts_reused} reused), {r.seconds or 0:.1f}s"
        + (f" [{r.runtime}]" if r.runtime else "")
        + (f" | {usage}" if usage else "")
        + (f" | error: {r.error}" if r.error else "")
    )


def _echo_rejections(rej: dict[str, Any]) -> None:
    """Rejected tables/rows/chunks per file, with reasons (files that are indexed all the same)."""
    if not rej.get("files"):
        return
    typer.echo(
        f"  rejected: {rej['tables']} table(s), {rej['rows']} row(s), {rej['chunks']} chunk(s)"
        f" in {rej['files']} file(s)"
    )
    for f in rej["by_file"]:
        typer.echo(f"    {f['file']}: {f['tables']} table(s), {f['rows']} row(s), {f['chunks']} chunk(s)")
        for item in f["items"]:
            where = item["table"] or ""
            if item["row_key"] is not None:
                where += f" row {item['row_key']}"
            if item["chunk_index"] is not None:
                where += f" chunk {item['chunk_index']}"
            typer.echo(f"      {item['level']} {where}: {item['reason']}")


def retry_failed_cmd(
    paths: Annotated[list[str] | None, typer.Argument(help="Only these files (default: all failed).")] = None,
    config: ConfigOpt = None,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Queue failed files again; the next `dbembed run` indexes them."""
    s = cli_settings(config, database_url=database_url, data_dir=data_dir, collection=collection)
    n = Dbembed(s).retry_failed(paths or None)
    if json_out:
        emit_json({"requeued": n})
    else:
        typer.echo(f"{n} failed file(s) queued again")


def register(app: typer.Typer) -> None:
    app.command("run")(handle_errors(run_cmd))
    app.command("search")(handle_errors(search_cmd))
    app.command("status")(handle_errors(status_cmd))
    app.command("retry-failed")(handle_errors(retry_failed_cmd))
