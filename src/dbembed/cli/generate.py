"""``dbembed generate``: write realistic SQLite load-test data (needs ``dbembed[generate]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dbembed.cli.common import JsonOpt, emit_json, handle_errors
from dbembed.service import Dbembed


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_cmd)


@handle_errors
def generate_cmd(
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the SQLite files under.")],
    files: Annotated[int, typer.Option("--files", help="Number of load-test databases (0 to 1,000,000).")] = 10,
    rows: Annotated[int, typer.Option("--rows", help="Rows per database, spread over its tables (0 to 100,000,000).")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same row contents.")] = 0,
    ja_share: Annotated[float, typer.Option("--ja-share", help="Share of rows in Japanese.")] = 0.3,
    dup_share: Annotated[float, typer.Option("--dup-share", help="Share of rows repeating a payload.")] = 0.3,
    wal_share: Annotated[float, typer.Option("--wal-share", help="Share of files in WAL mode.")] = 0.2,
    hot_wal: Annotated[
        bool, typer.Option("--hot-wal/--no-hot-wal", help="WAL files keep their last rows in a -wal file.")
    ] = True,
    bad: Annotated[
        bool,
        typer.Option(
            "--bad",
            help="Add broken files (truncated, not SQLite, 0 bytes, corrupt) and hostile ones under"
            " hostile/: one per fault class (NUL values, odd names, unreadable tables, ...).",
        ),
    ] = False,
    planted: Annotated[
        Path | None, typer.Option("--planted", help="Write planted query/row pairs as JSON here.")
    ] = None,
    big_gb: Annotated[float, typer.Option("--big-gb", help="Also write one large file of ~X GB (0 to 1024).")] = 0.0,
    big_row_kb: Annotated[float, typer.Option("--big-row-kb", help="Row size in KB in the large file (0 to 4096, at most the file).")] = 8.0,
    json_out: JsonOpt = False,
) -> None:
    """Write realistic SQLite load-test files (chat, orders, support, catalog) under OUT_DIR."""
    report = Dbembed.generate(
        out_dir,
        files=files,
        rows=rows,
        seed=seed,
        ja_share=ja_share,
        dup_share=dup_share,
        wal_share=wal_share,
        hot_wal=hot_wal,
        bad=bad,
        planted=planted,
        big_gb=big_gb,
        big_row_kb=big_row_kb,
    )
    if json_out:
        emit_json(report.to_dict())
        return
    wal = sum(f.wal for f in report.files)
    broken = sum(f.kind != "ok" for f in report.files)
    typer.echo(
        f"wrote {len(report.files)} files ({wal} WAL, {broken} broken), {report.rows:,} rows, "
        f"{report.bytes / 1e6:.1f} MB in {report.seconds:.1f}s ({report.rows_per_s:,.0f} rows/s) "
        f"under {report.out_dir}"
    )
    if planted is not None:
        typer.echo(f"planted {len(report.planted)} query/row pairs -> {planted}")
