"""``dbembed generate``: deterministic, realistic load-test files, honest about what it wrote."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dbembed.errors import UsageError
from dbembed.generate import generate
from dbembed.generate.pool import get_pool

SQLITE_MAGIC = b"SQLite format 3\x00"
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def _ro(path: Path) -> sqlite3.Connection:
    """Read-only, so that closing does not checkpoint (and delete) a hot -wal file."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _dump(path: Path) -> list[tuple]:
    """Every row of every table, in key order (what "byte-identical row contents" means)."""
    conn = _ro(path)
    try:
        out: list[tuple] = []
        names = [
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        ]
        for name in names:
            out += [(name, *row) for row in conn.execute(f'SELECT * FROM "{name}" ORDER BY 1')]
        return out
    finally:
        conn.close()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    out = tmp_path_factory.mktemp("gen")
    report = generate(
        out / "data", files=8, rows=300, seed=7, wal_share=0.25, bad=True, planted=out / "p.json"
    )
    return out, report


def test_same_seed_same_rows_other_seed_other_rows(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", files=5, rows=120, seed=3, wal_share=0.4)
    b = generate(tmp_path / "b", files=5, rows=120, seed=3, wal_share=0.4)
    c = generate(tmp_path / "c", files=5, rows=120, seed=4, wal_share=0.4)
    assert [f.path for f in a.files] == [f.path for f in b.files]
    for fa in a.files:
        assert _dump(tmp_path / "a" / fa.path) == _dump(tmp_path / "b" / fa.path)
    assert [_dump(tmp_path / "a" / f.path) for f in a.files] != [
        _dump(tmp_path / "c" / f.path) for f in c.files
    ]


def test_schemas_tables_views_and_layout(small) -> None:  # noqa: ANN001
    out, report = small
    tables: dict[str, str] = {}
    views: set[str] = set()
    for f in report.files:
        if f.kind != "ok":
            continue
        conn = _ro(out / "data" / f.path)
        for kind, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_master"):
            if kind == "table":
                tables[name] = sql
            elif kind == "view":
                views.add(name)
        assert sum(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in f.tables) == 300
        conn.close()
    expected = {"users", "messages", "customers", "orders", "Order Details", "tickets", "ticket_comments"}
    assert expected | {"products", "product_reviews"} <= set(tables)
    assert "WITHOUT ROWID" in tables["products"]
    assert {"recent_messages", "Order Totals", "open_tickets", "top_rated"} <= views
    assert (
        "BLOB" in tables["messages"] and "INTEGER" in tables["orders"] and "REAL" in tables["Order Details"]
    )
    depths = {len(Path(f.path).parts) for f in report.files}
    assert len(depths) >= 3, "files should sit at several folder depths"
    assert {Path(f.path).suffix for f in report.files} <= {".db", ".sqlite", ".sqlite3"}


def test_wal_files_are_wal_and_hot_wal_holds_rows(small, tmp_path: Path) -> None:  # noqa: ANN001
    out, report = small
    wal = [f for f in report.files if f.wal]
    assert len(wal) == 2
    for f in report.files:
        if f.kind != "ok":
            continue
        header = (out / "data" / f.path).read_bytes()[:100]
        assert header[:16] == SQLITE_MAGIC
        assert (header[18], header[19]) == ((2, 2) if f.wal else (1, 1))
    for f in wal:
        src = out / "data" / f.path
        sidecar = Path(f"{src}-wal")
        assert f.hot_wal and sidecar.stat().st_size > 0
        # Copies, so that reading (which checkpoints) leaves the fixture untouched.
        (tmp_path / "x.db").write_bytes(src.read_bytes())
        (tmp_path / "x.db-wal").write_bytes(sidecar.read_bytes())
        conn = sqlite3.connect(tmp_path / "x.db")
        assert sum(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in f.tables) == f.rows
        conn.close()


BROKEN = {"truncated", "not_sqlite", "empty", "corrupt"}


def test_bad_files_are_bad(small) -> None:  # noqa: ANN001
    out, report = small
    bad = {f.kind: out / "data" / f.path for f in report.files if f.kind != "ok" and f.kind in BROKEN}
    assert set(bad) == BROKEN and all(f.expect == "failed" for f in report.files if f.kind in BROKEN)
    hostile = {f.kind for f in report.files if f.path.startswith("hostile/")}
    assert {"nul_values", "invisible_values", "unknown_collation", "missing_module", "broken_view"} <= hostile
    assert {"corrupt_table_page", "huge_value", "long_key", "header_only", "fifo"} <= hostile
    assert bad["empty"].stat().st_size == 0
    assert not bad["not_sqlite"].read_bytes().startswith(SQLITE_MAGIC)
    for kind in ("truncated", "corrupt"):
        assert bad[kind].read_bytes()[:16] == SQLITE_MAGIC, "looks like SQLite from the outside"
        with pytest.raises(sqlite3.DatabaseError):
            conn = sqlite3.connect(bad[kind])
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
                conn.execute(f'SELECT * FROM "{name}"').fetchall()
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(bad["not_sqlite"]).execute("SELECT * FROM sqlite_master").fetchall()


def test_planted_json_points_at_real_rows(small) -> None:  # noqa: ANN001
    out, report = small
    records = json.loads((out / "p.json").read_text(encoding="utf-8"))
    assert records == report.planted
    from dbembed.generate.planted import PLANTS, QUERY_TYPES

    assert len(records) == len(PLANTS) > 20
    assert len({r["query"] for r in records}) == len(PLANTS)
    assert {q["type"] for r in records for q in r["queries"]} == set(QUERY_TYPES)
    for r in records:
        assert set(r) >= {"query", "file", "table", "row_key", "text", "lang", "queries"}
        assert r["queries"][0]["query"] == r["query"]
        assert Path(r["path"]) == (out / "data" / r["file"]).resolve()
        conn = _ro(out / "data" / r["file"])
        row = conn.execute(f'SELECT * FROM "{r["table"]}" WHERE rowid = ?', (int(r["row_key"]),)).fetchone()
        assert row is not None and r["text"] in row
        cols = [c[1] for c in conn.execute(f'PRAGMA table_info("{r["table"]}")')]
        assert row[0] == int(r["row_key"]), "row_key is the INTEGER PRIMARY KEY (= rowid)"
        # Distinctive: nowhere else in its table.
        (hits,) = conn.execute(
            f'SELECT count(*) FROM "{r["table"]}" WHERE ' + " OR ".join(f'"{c}" = ?' for c in cols),
            [r["text"]] * len(cols),
        ).fetchone()
        assert hits == 1
        conn.close()


def test_dup_and_japanese_shares_roughly_honoured(tmp_path: Path) -> None:
    for dup in (0.0, 0.5):
        report = generate(tmp_path / str(dup), files=3, rows=3000, seed=11, dup_share=dup, ja_share=0.3)
        chat = next(f for f in report.files if f.schema == "chat")
        conn = sqlite3.connect(tmp_path / str(dup) / chat.path)
        rows = conn.execute("SELECT body, sent_at FROM messages").fetchall()
        counts = Counter(rows)
        repeated = sum(n for n in counts.values() if n > 1) / len(rows)
        assert abs(repeated - dup) < 0.06, (dup, repeated)
        ja = sum(bool(JAPANESE.search(body)) for body, _ in rows) / len(rows)
        assert 0.22 < ja < 0.38
        # ids stay unique even on repeated payloads
        assert conn.execute("SELECT count(DISTINCT id) FROM messages").fetchone()[0] == len(rows)
        conn.close()


def test_big_file_size(tmp_path: Path) -> None:
    report = generate(tmp_path, files=0, big_gb=0.01, big_row_kb=4)
    (big,) = report.files
    size = (tmp_path / big.path).stat().st_size
    assert 0.8e7 < size < 1.4e7
    conn = sqlite3.connect(tmp_path / big.path)
    assert conn.execute("SELECT count(*) FROM telemetry_events").fetchone()[0] == big.rows
    conn.close()


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^dup_share: must be between 0 and 1 \(got 1.5\)"):
        generate(tmp_path, dup_share=1.5)
    with pytest.raises(UsageError, match=r"^rows: must be between 0 and 100000000 \(got -1\)"):
        generate(tmp_path, rows=-1)


@pytest.mark.parametrize(
    ("options", "field", "shown"),
    [
        ({"files": 0, "big_gb": float("inf")}, "big_gb", "(got inf)"),
        ({"files": 0, "big_gb": float("nan")}, "big_gb", "(got nan)"),
        ({"files": 0, "big_gb": 1025}, "big_gb", "between 0 and 1024 (got 1025)"),
        ({"files": 0, "big_gb": "1"}, "big_gb", "(got '1')"),
        ({"files": 0, "big_gb": 1, "big_row_kb": float("inf")}, "big_row_kb", "(got inf)"),
        ({"files": 0, "big_gb": 1, "big_row_kb": 4097}, "big_row_kb", "between 0 and 4096 (got 4097)"),
        ({"files": 0, "big_gb": 0.000001, "big_row_kb": 1e12}, "big_row_kb", "(got 1000000000000.0)"),
        ({"files": 0, "big_gb": 0.000001, "big_row_kb": 8}, "big_row_kb", "bigger than the whole big file"),
        ({"files": 0, "big_gb": 1, "big_dup_share": 2.0}, "big_dup_share", "(got 2.0)"),
        ({"files": 100_000_000_000}, "files", "between 0 and 1000000 (got 100000000000)"),
        ({"files": True}, "files", "(got True)"),
        ({"rows": 10**9}, "rows", "(got 1000000000)"),
        ({"seed": 2**64}, "seed", "(got 18446744073709551616)"),
        ({"seed": 10**5000}, "seed", "(got a number of 5,000 digits)"),
        ({"wal_share": float("nan")}, "wal_share", "(got nan)"),
    ],
)
def test_every_numeric_parameter_is_finite_and_bounded(
    tmp_path: Path, options: dict, field: str, shown: str
) -> None:
    """Out of bounds, not finite, not a number, or a row bigger than the big file: ``InvalidInput``
    naming the parameter, before anything is written."""
    out = tmp_path / "out"
    with pytest.raises(UsageError, match=rf"^{field}: ") as err:
        generate(out, **options)
    assert shown in str(err.value) and err.value.field == field  # type: ignore[attr-defined]
    assert not out.exists()


def test_largest_big_row_that_fits_is_written(tmp_path: Path) -> None:
    """The bounds are inclusive: a 4096 KB row (the most) in a file of exactly that size works."""
    report = generate(tmp_path, files=0, big_gb=4096 / (1 << 20), big_row_kb=4096)
    (big,) = report.files
    assert big.rows == 1 and (tmp_path / big.path).stat().st_size > 4096 * 1024


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_out_dir_names_the_parameter(tmp_path: Path) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(UsageError, match=r"^out_dir: cannot write in the directory .*no permission"):
            generate(out, files=1, rows=1)
    finally:
        out.chmod(0o700)
    assert list(out.iterdir()) == []


def test_paths_that_cannot_be_directories_name_the_parameter(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for out in (a_file / "out", a_file):
        with pytest.raises(UsageError, match=r"^out_dir: cannot create the directory .*\(.+\)") as err:
            generate(out, files=1, rows=1)
        assert err.value.field == "out_dir"  # type: ignore[attr-defined]
    for planted in (tmp_path, a_file / "p.json"):
        with pytest.raises(UsageError, match=r"^planted: ") as err:
            generate(tmp_path / "out", files=1, rows=1, planted=planted)
        assert err.value.field == "planted"  # type: ignore[attr-defined]
    assert not (tmp_path / "out").exists()
    assert a_file.read_text() == "x"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--files", "0", "--big-gb", "inf"], "--big-gb: must be between 0 and 1024 (got inf)"),
        (["--files", "0", "--big-gb", "1e400"], "--big-gb: must be between 0 and 1024 (got inf)"),
        (
            ["--files", "0", "--big-gb", "1", "--big-row-kb", "1e400"],
            "--big-row-kb: must be between 0 and 4096",
        ),
        (["--big-gb", "0.000001", "--big-row-kb", "1e12"], "--big-row-kb: must be between 0 and 4096"),
        (["--big-gb", "0.000001", "--big-row-kb", "8"], "--big-row-kb: a row of 8 KB would be bigger"),
        (["--files", "100000000000"], "--files: must be between 0 and 1000000 (got 100000000000)"),
        (["--rows", "1000000000"], "--rows: must be between 0 and 100000000"),
        (["--seed", "99999999999999999999"], "--seed: must be between"),
    ],
)
def test_cli_bad_numbers_exit_2_naming_the_flag(tmp_path: Path, args: list[str], message: str) -> None:
    bad = CliRunner().invoke(_generate_app(), ["generate", str(tmp_path / "out"), *args])
    assert bad.exit_code == 2 and message in bad.stderr, bad.stderr
    assert not (tmp_path / "out").exists()


def test_cli_out_dir_that_cannot_be_a_directory_exits_2_naming_it(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    bad = CliRunner().invoke(_generate_app(), ["generate", str(a_file / "x"), "--files", "1"])
    assert bad.exit_code == 2 and "OUT_DIR: cannot create the directory" in bad.stderr, bad.stderr
    bad = CliRunner().invoke(_generate_app(), ["generate", str(tmp_path / "o"), "--planted", str(tmp_path)])
    assert bad.exit_code == 2 and "--planted: is a directory" in bad.stderr, bad.stderr


def _generate_app() -> typer.Typer:
    from dbembed.cli.generate import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    return app


def test_missing_faker_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faker", None)
    with pytest.raises(UsageError, match=r"dbembed\[generate\]"):
        get_pool.__wrapped__(12345)


def test_cli_json(tmp_path: Path) -> None:
    from dbembed.cli.generate import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    args = ["generate", str(tmp_path / "d"), "--files", "4", "--rows", "50", "--seed", "1", "--json"]
    args += ["--planted", str(tmp_path / "p.json"), "--bad"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["rows"] == 200 and len([f for f in data["files"] if f["kind"] in ("ok", *BROKEN)]) == 8
    assert data["rows_per_s"] > 0 and any(f["path"].startswith("hostile/") for f in data["files"])
    assert json.loads((tmp_path / "p.json").read_text())[0]["query"]
    bad = CliRunner().invoke(app, ["generate", str(tmp_path / "e"), "--ja-share", "2"])
    assert bad.exit_code == 2 and "--ja-share: must be between 0 and 1 (got 2.0)" in bad.stderr, bad.stderr


@pytest.mark.parametrize(("files", "rows"), [(10, 1), (24, 2)])
def test_tiny_files_with_hot_wal(tmp_path: Path, files: int, rows: int) -> None:
    """One or two rows a file: a WAL file's last table may get one row or none; every file is written."""
    from dbembed.generate import generate

    report = generate(tmp_path / "g", files=files, rows=rows, seed=9, wal_share=1.0)
    assert len(report.files) == files
    for f in report.files:
        assert (tmp_path / "g" / f.path).exists()
    assert sum(f.rows for f in report.files) == files * rows
    if rows > 1:
        assert any(f.hot_wal for f in report.files)
