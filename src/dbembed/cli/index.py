"""``dbembed run | search | status | retry-failed | collections``: the file index from the shell."""

from __future__ import annotations

import sys
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
    emit_json,
    handle_errors,
)


def _settings(config: Path | None, **flags: Any) -> Any:
    from dbembed.config import load_settings

    return load_settings(config, **flags)


def run_cmd(
    roots: Annotated[list[str], typer.Argument(help="Folders, files or s3://bucket/prefix/ to index.")],
    config: ConfigOpt = None,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    model: ModelOpt = None,
    collection: CollectionOpt = None,
    dimensions: Annotated[
        int | None, typer.Option(help="Output dimensions for models that can shorten.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Worker processes on this machine.")
    ] = None,
    settle: Annotated[
        float | None, typer.Option("--settle", help="Skip files modified in the last N seconds (default 60).")
    ] = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", help="Glob of files to index (repeatable).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Glob of files to skip (repeatable).")
    ] = None,
    views: Annotated[bool | None, typer.Option("--views/--no-views", help="Index views too.")] = None,
    document_format: Annotated[
        str | None,
        typer.Option(
            "--document-format",
            help="How a row becomes text: table-columns (Album | Title: ...), columns (Title: ...) or "
            "values; a [tables] template wins. A change re-documents rows on the next run.",
        ),
    ] = None,
    verify: Annotated[
        bool | None, typer.Option("--verify", help="Confirm unchanged files by content hash.")
    ] = None,
    sidecar: Annotated[
        bool | None, typer.Option("--sidecar/--no-sidecar", help="Write <file>.embedding_metadata.json.")
    ] = None,
    keep_missing: Annotated[
        bool | None, typer.Option("--keep-missing", help="Keep chunks of vanished files.")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not reuse stored vectors (benchmarking).")
    ] = False,
    vector_type: Annotated[
        str | None, typer.Option("--vector-type", help="halfvec (default) or vector.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="What the next run would do (diff vs the index, tokens, cost, time); no model load.")
    ] = False,
    s3_metadata: Annotated[
        bool | None, typer.Option("--s3-metadata", help="Write metadata JSON next to S3 objects.")
    ] = None,
    log_format: Annotated[
        str | None, typer.Option("--log-format", help="text, or json (one event per line).")
    ] = None,
    emf: Annotated[
        bool | None, typer.Option("--emf/--no-emf", help="Print CloudWatch Embedded Metric Format lines.")
    ] = None,
    metrics_file: Annotated[
        Path | None, typer.Option("--metrics-file", help="Write Prometheus textfile metrics here.")
    ] = None,
    force: Annotated[
        bool | None, typer.Option("--force", help="Re-read every file; unchanged rows are not re-embedded.")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="Local models: cpu, cuda, cuda:1, mps (default: auto).")
    ] = None,
    backend: BackendOpt = None,
    precision: PrecisionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Find, read, embed and store every SQLite file under ROOTS (incremental, resumable)."""
    from dbembed import api_lib
    from dbembed.run import monitoring

    s = _settings(
        config,
        database_url=database_url,
        data_dir=data_dir,
        model=model,
        collection=collection,
        dimensions=dimensions,
        workers=workers,
        settle_s=settle,
        include=include or None,
        exclude=exclude or None,
        include_views=views,
        document_format=document_format,
        verify=verify,
        sidecar=sidecar,
        keep_missing=keep_missing,
        embed_cache=False if no_cache else None,
        vector_type=vector_type,
        s3_metadata=s3_metadata,
        log_format=log_format,
        emf=emf,
        metrics_file=metrics_file,
        device=device,
        backend=backend,
        precision=precision,
        force=force,
    )
    monitoring.install(s)
    if dry_run:
        report = api_lib.dry_run(roots, s)
        if json_out:
            emit_json(report)
        else:
            _print_plan(report, s.settle_s)
        return
    from dbembed.cli.progress import RunProgress

    with RunProgress(enabled=not json_out and sys.stderr.isatty()) as progress:
        summary = api_lib.index(
            roots, s, on_file=progress.on_file, on_start=progress.on_start, on_estimate=progress.on_estimate,
            on_progress=progress.on_progress,
        )  # fmt: skip
    if json_out:
        emit_json(summary.as_dict())
    else:
        _print_summary(summary)
    raise typer.Exit(summary.exit_code)


def _print_plan(r: dict[str, Any], settle_s: float) -> None:
    typer.echo(f"dry run: what `dbembed run` would do now with {r['model']} (nothing embedded or written)")
    typer.echo(
        f"  files: {r['files']:,} found: {r['files_new']:,} new, {r['files_changed']:,} changed,"
        f" {r['files_unchanged']:,} unchanged, {r['files_pending']:,} pending, {r['files_still_failed']:,}"
        f" still failed; {r['files_deleted']:,} gone; {r['files_unreadable']:,} unreadable"
    )
    typer.echo(
        f"  rows: {r['rows_new']:,} new, {r['rows_changed']:,} changed, {r['rows_deleted']:,} deleted,"
        f" {r['rows_unchanged']:,} unchanged ({r['rows']:,} read)"
    )
    typer.echo(
        f"  chunks: {r['chunks']:,} to write, {r['chunks_reused']:,} reuse stored vectors;"
        f" {r['texts_to_embed']:,} texts to embed, {r['tokens']:,} tokens ({r['token_source']})"
    )
    cost = r["estimated_cost_usd"]
    typer.echo("  cost: " + ("no price known (local or unknown model)" if cost is None else f"${cost:.4f}"))
    secs = r["estimated_seconds"]
    typer.echo(
        "  time in the model: " + ("unknown" if secs is None else f"~{secs:,.1f} s") + f" ({r['estimate_basis']})"
    )
    for u in r["unreadable"][:20]:
        typer.echo(f"  unreadable: {u['file']}: {u['error']}")
    if r["files_pending"]:
        typer.echo(
            f"  note: {r['files_pending']:,} file(s) changed in the last {settle_s:g} s would be left for the"
            " next run; --settle 0 indexes them now"
        )
    if r["files_still_failed"]:
        typer.echo(f"  note: {r['files_still_failed']:,} failed file(s) unchanged since: `dbembed retry-failed`")
    work = r["files_new"] + r["files_changed"] + r["files_deleted"]
    if not work:
        typer.echo(f"nothing to do: {r['files_unchanged']:,} files unchanged")


def _print_summary(summary: Any) -> None:
    typer.echo(
        f"run {summary.run_id} [{summary.collection}] {summary.status}: "
        f"{summary.files_ok} ok, {summary.files_failed} failed, {summary.files_skipped} unchanged, "
        f"{summary.files_pending} pending, {summary.files_missing} missing | {summary.rows} rows, "
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
    from dbembed import api_lib

    s = _settings(
        config,
        database_url=database_url,
        data_dir=data_dir,
        model=model,
        collection=collection,
        backend=backend,
        precision=precision,
    )
    hits = api_lib.search(query, k, file=file, table=table, settings=s, exact=exact, mode=mode)
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
    from dbembed import api_lib

    s = _settings(config, database_url=database_url, data_dir=data_dir, collection=collection)
    report = api_lib.status(s, runs=runs)
    if json_out:
        emit_json(report)
        return
    if not report["collections"]:
        typer.echo("nothing indexed yet: run `dbembed run ROOT`")
    for c in report["collections"]:
        f = c["files"]
        typer.echo(f"collection {c['name']}: {c['model']} ({c['dimensions']} dims, {c['vector_type']})")
        typer.echo(
            "  files: "
            + ", ".join(f"{v} {k}" for k, v in f.items())
            + f" | {c['rows']} rows, {c['chunks']} chunks"
        )
        for lease in c["leased"]:
            typer.echo(f"  leased: {lease['file']} by {lease['owner']} until {lease['expires']}")
        for fail in c["failures"]:
            typer.echo(f"  failed: {fail['file']}: {fail['error']}")
        if f.get("failed", 0) > len(c["failures"]):
            typer.echo(f"  ... {f['failed'] - len(c['failures'])} more failed file(s)")
        _echo_rejections(c.get("rejections") or {})
        for r in c["runs"]:
            usage = "; ".join(
                f"{m}: {int(u.get('texts', 0))} texts, {int(u.get('tokens', 0))} tokens, {int(u.get('requests', 0))} req,"
                f" {int(u.get('retries', 0))} retries, {int(u.get('throttles', 0))} throttles, ${u.get('cost_usd', 0):.4f}"
                for m, u in (r.get("usage") or {}).items()
            )
            typer.echo(
                f"  run {r['id']} {r['status']} {r['started_at']:%Y-%m-%d %H:%M:%S}: {r['files_ok']} ok,"
                f" {r['files_failed']} failed, {r['files_skipped']} unchanged, {r['chunks']} chunks"
                f" ({r['texts_embedded']} embedded, {r['texts_reused']} reused), {r['seconds'] or 0:.1f}s"
                + (f" [{r['runtime']}]" if r.get("runtime") else "")
                + (f" | {usage}" if usage else "")
                + (f" | error: {r['error']}" if r.get("error") else "")
            )
    if report["collections"]:
        typer.echo(
            "per file (rows, chunks, rejections, times, errors): dbembed files"
            " [--status failed] [--glob PATTERN] [--since 2h] [--json]"
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
    from dbembed import api_lib

    s = _settings(config, database_url=database_url, data_dir=data_dir, collection=collection)
    n = api_lib.retry_failed(s, paths or None)
    if json_out:
        emit_json({"requeued": n})
    else:
        typer.echo(f"{n} failed file(s) queued again")


def register(app: typer.Typer) -> None:
    app.command("run")(handle_errors(run_cmd))
    app.command("search")(handle_errors(search_cmd))
    app.command("status")(handle_errors(status_cmd))
    app.command("retry-failed")(handle_errors(retry_failed_cmd))
