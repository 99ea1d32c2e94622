"""``dbembed files``: one line per source file (status, rows, chunks, rejections, times, error)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dbembed.cli.common import (
    CollectionOpt,
    ConfigOpt,
    DatabaseUrlOpt,
    DataDirOpt,
    JsonOpt,
    cli_settings,
    emit_json,
    handle_errors,
)
from dbembed.service import Dbembed, FileItem, parse_since

HEADER = f"{'STATUS':<8} {'ROWS':>9} {'CHUNKS':>9} {'REJECTED':>9} {'LAST CHANGE':<19} {'LAST INDEXED':<19} {'TOOK':>8}  PATH"


def _n(value: Any) -> str:
    return "-" if value is None else f"{int(value):,}"


def _t(value: Any) -> str:
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_line(f: FileItem) -> str:
    """One human line (plus indented rejection and error lines) for a file of the listing."""
    rej = f.rejected_rows + f.rejected_chunks + f.rejected_tables
    took = "-" if f.duration_s is None else f"{f.duration_s:.2f}s"
    line = (
        f"{f.status:<8} {_n(f.rows):>9} {_n(f.chunks):>9} {rej:>9,} {_t(f.last_change):<19} "
        f"{_t(f.last_indexed):<19} {took:>8}  {f.path}"
    )
    if rej:
        counts = {"tables": f.rejected_tables, "rows": f.rejected_rows, "chunks": f.rejected_chunks}
        line += f"\n{'':9}rejected: {', '.join(f'{n} {what}' for what, n in counts.items() if n)}"
    for r in f.rejections or ():
        where = r.table or ""
        if r.row_key is not None:
            where += f" #{r.row_key}"
        if r.chunk_index is not None:
            where += f" chunk {r.chunk_index}"
        line += f"\n{'':11}{r.level} {where.strip()}: {r.reason}"
    if f.error:
        line += f"\n{'':9}{'error' if f.status == 'failed' else 'note'}: {f.error}"
    return line


def files_cmd(
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only this status: indexed, failed, queued, leased, pending, missing."),
    ] = None,
    glob: Annotated[
        str | None, typer.Option("--glob", help="Only paths matching this glob (a bare name: any folder).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only files indexed or changed since: 2026-11-30T14:00, or an age: 2h, 7d."),
    ] = None,
    sort: Annotated[
        str,
        typer.Option(
            "--sort", help="path, last_indexed, last_change, duration, rows, chunks or size."
        ),
    ] = "path",
    desc: Annotated[bool, typer.Option("--desc", help="Sort in descending order.")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Files per page (1-10000).")] = 100,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Continue after the page that printed this cursor.")
    ] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Every page, not only the first.")] = False,
    rejected: Annotated[
        bool, typer.Option("--rejected", help="Only files whose last index rejected tables, rows or chunks.")
    ] = False,
    show_rejections: Annotated[
        bool, typer.Option("--show-rejections", help="List each rejected table/row/chunk and why (20 per file).")
    ] = False,
    config: ConfigOpt = None,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Every file dbembed knows: status, rows, chunks, rejected rows/chunks, last change seen,
    last indexed, duration and error (`dbembed status` is the overview)."""
    s = cli_settings(config, database_url=database_url, data_dir=data_dir, collection=collection)
    service = Dbembed(s)
    args: dict[str, Any] = {
        "status": status, "glob": glob, "since": parse_since(since, "--since"), "sort": sort, "descending": desc, "limit": limit,
        "rejected": rejected, "with_rejections": show_rejections,
    }  # fmt: skip
    page = service.files(cursor=cursor, **args)
    items = list(page.items)
    if not json_out:
        typer.echo(HEADER)
        for f in items:
            typer.echo(format_line(f))
    while all_pages and page.next_cursor:
        page = service.files(cursor=page.next_cursor, **args)
        if json_out:
            items.extend(page.items)
        else:
            for f in page.items:
                typer.echo(format_line(f))
    if json_out:
        emit_json({"items": [f.as_dict() for f in items], "next_cursor": page.next_cursor, "counts": page.counts})
        return
    counts = page.counts
    total = sum(counts.get(status, 0) for status in ([status] if status else counts))
    by_status = ", ".join(f"{n:,} {st}" for st, n in sorted(counts.items()))
    typer.echo(f"{len(items):,} of {total:,} file(s) shown" + (f" (all statuses: {by_status})" if counts else ""))
    if page.next_cursor:
        typer.echo(f"more: add --cursor {page.next_cursor} (or --all)")
    elif not counts:
        given = [f"--{n} {v}" for n, v in (("status", status), ("glob", glob), ("since", since)) if v]
        given += ["--rejected"] if rejected else []
        typer.echo(
            f"no recorded file matches {' '.join(given)} (drop the filter to see all)"
            if given
            else "no files recorded yet: run `dbembed run ROOT`"
        )


def register(app: typer.Typer) -> None:
    app.command("files")(handle_errors(files_cmd))
