"""``dbembed files`` / ``dbembed.files`` / ``GET /v1/files``: every file, its status and its reason.

The listing is driven through the real CLI after a real run, and through the store function over
100k source rows inserted in SQL (keyset pages, every sort, filters, and query plans that stay
index range scans however deep the page)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbembed.errors import UsageError
from dbembed.store.files import COLUMNS, SORTS, FileItem, FileQuery, count_files, list_files
from tests.helpers import make_db, tickets_for
from tests.test_cli_e2e import cli_env, invoke  # noqa: F401 - the fixture is used by name

N = 100_000


def _migrated(url: str) -> psycopg.Connection:
    from dbembed.store.migrate import migrate

    conn = psycopg.connect(url, autocommit=True)
    migrate(conn)
    return conn


def _fill(conn: psycopg.Connection, n: int = N) -> int:
    """n sources: every 1000th failed, every 997th pending, rejections on every 500th (set in SQL)."""
    cid = conn.execute(
        "INSERT INTO dbembed.collections (name, model, dimensions, vector_type)"
        " VALUES ('big', 'local:all-MiniLM-L6-v2', 384, 'halfvec') RETURNING id"
    ).fetchone()[0]  # type: ignore[index]
    conn.execute(
        """INSERT INTO dbembed.sources (collection_id, path, seen_size, seen_mtime, status, error, rows, chunks,
               processed_at, duration_s, rejected_rows, rejected_chunks)
           SELECT %s, format('/data/host%%s/f%%s.db', g %% 7, lpad(g::text, 6, '0')), g * 10,
                  1700000000 + g, CASE WHEN g %% 1000 = 0 THEN 'failed' WHEN g %% 997 = 0 THEN 'pending'
                  ELSE 'indexed' END,
                  CASE WHEN g %% 1000 = 0 THEN 'file is not a database' END,
                  CASE WHEN g %% 1000 <> 0 THEN g %% 50 END, CASE WHEN g %% 1000 <> 0 THEN g %% 60 END,
                  CASE WHEN g %% 997 <> 0 THEN timestamptz '2026-11-01' + make_interval(secs => g) END,
                  (g %% 13) / 10.0, CASE WHEN g %% 500 = 0 THEN 2 ELSE 0 END,
                  CASE WHEN g %% 500 = 0 THEN 3 ELSE 0 END
           FROM generate_series(1, %s) g""",
        (cid, n),
    )
    conn.execute("ANALYZE dbembed.sources")
    return int(cid)


def _walk(conn: psycopg.Connection, q: FileQuery) -> list[FileItem]:
    out: list[FileItem] = []
    items, cursor = list_files(conn, q)
    out.extend(items)
    while cursor:
        items, cursor = list_files(conn, q, cursor)
        out.extend(items)
    return out


@pytest.fixture(scope="module")
def big(pg_server: Any) -> Any:
    import uuid

    name = "t_big_" + uuid.uuid4().hex[:8]
    admin = pg_server.get_uri()
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    conn = _migrated(pg_server.get_uri(database=name))
    cid = _fill(conn)
    yield conn, cid
    conn.close()
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("sort", sorted(SORTS))
@pytest.mark.parametrize("descending", [False, True])
def test_keyset_pages_visit_every_file_once_in_order(big: Any, sort: str, descending: bool) -> None:
    conn, cid = big
    rows = _walk(conn, FileQuery(cid, sort=sort, descending=descending, limit=7000))
    assert len(rows) == N and len({r.id for r in rows}) == N
    col = {"path": "path", "last_indexed": "last_indexed", "last_change": "last_change", "duration": "duration_s",
           "rows": "rows", "chunks": "chunks", "size": "size"}[sort]  # fmt: skip
    floor: Any = datetime.min.replace(tzinfo=UTC) if sort in ("last_indexed", "last_change") else -1
    keys = [((getattr(r, col) if getattr(r, col) is not None else floor), r.id) for r in rows]
    assert keys == sorted(keys, reverse=descending)


@pytest.mark.parametrize("sort", sorted(SORTS))
def test_a_deep_page_is_an_index_range_scan_not_a_sort_of_every_file(big: Any, sort: str) -> None:
    """What keeps page 1,000 as cheap as page 1 at 100k files (asserted on the plan, not a timer)."""
    conn, cid = big
    q = FileQuery(cid, sort=sort, limit=50)
    _, cursor = list_files(conn, q)
    for _ in range(3):
        _, cursor = list_files(conn, q, cursor)
    captured: list[str] = []
    real_execute = conn.execute

    def explain(sql: Any, params: Any = None, **kw: Any) -> Any:
        plan = real_execute("EXPLAIN " + sql, params).fetchall()
        captured.append("\n".join(r[0] for r in plan))
        return real_execute(sql, params, **kw)

    conn.execute = explain  # type: ignore[method-assign]
    try:
        list_files(conn, q, cursor)
    finally:
        conn.execute = real_execute  # type: ignore[method-assign]
    plan = captured[0]
    assert "Index" in plan and "Sort" not in plan and "Seq Scan on sources" not in plan, plan


def test_filters_status_glob_since_and_counts(big: Any) -> None:
    conn, cid = big
    failed = _walk(conn, FileQuery(cid, status="failed", limit=1000))
    assert len(failed) == N // 1000
    assert {f.error for f in failed} == {"file is not a database"} and {f.status for f in failed} == {"failed"}
    host3 = _walk(conn, FileQuery(cid, glob="/data/host3/*", limit=10000))
    assert len(host3) == len([g for g in range(1, N + 1) if g % 7 == 3])
    assert _walk(conn, FileQuery(cid, glob="f000042.db")) and [
        f.path for f in _walk(conn, FileQuery(cid, glob="f000042.db"))
    ] == ["/data/host0/f000042.db"]
    since = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=N - 100)
    recent = _walk(conn, FileQuery(cid, since=since, limit=500))
    assert sorted(int(f.path[-9:-3]) for f in recent) == list(range(N - 100, N + 1))
    counts = count_files(conn, FileQuery(cid))
    assert counts["failed"] == N // 1000 and sum(counts.values()) == N
    rejected = _walk(conn, FileQuery(cid, glob="*/f000500.db"))
    assert (rejected[0].rejected_rows, rejected[0].rejected_chunks) == (2, 3)


def test_bad_filters_are_usage_errors_naming_the_value(big: Any) -> None:
    conn, cid = big
    with pytest.raises(UsageError, match="'done'"):
        list_files(conn, FileQuery(cid, status="done"))
    with pytest.raises(UsageError, match="^sort: must be one of"):
        list_files(conn, FileQuery(cid, sort="colour"))
    with pytest.raises(UsageError, match="invalid cursor"):
        list_files(conn, FileQuery(cid), "not-a-cursor")


# --------------------------------------------------------------------------------------------- CLI
def _tree(root: Path) -> tuple[Path, Path]:
    good = make_db(root / "a" / "good.db", tickets_for(1))
    bad = root / "b" / "broken.db"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)  # the header of SQLite, garbage after it
    return good, bad


def test_files_cli_after_a_real_run(cli_env: Path, database_url: str) -> None:  # noqa: F811
    good, bad = _tree(cli_env / "tree")
    run = invoke("run", str(cli_env / "tree"), "--database-url", database_url, "--settle", "0", "--json")
    assert run.exit_code == 1, run.stderr
    out = invoke("files", "--status", "failed", "--json", "--database-url", database_url)
    assert out.exit_code == 0, out.stderr
    page = json.loads(out.stdout)
    assert [f["path"] for f in page["items"]] == [str(bad.resolve())]
    assert page["items"][0]["error"] and page["counts"] == {"indexed": 1, "failed": 1}
    text = invoke("files", "--database-url", database_url)
    assert text.exit_code == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split()[:3] == ["STATUS", "ROWS", "CHUNKS"]
    good_line = next(line for line in lines if line.endswith(str(good.resolve())))
    assert good_line.split()[:3] == ["indexed", "12", "12"]  # 12 tickets (the numbers-only table is skipped)
    assert good_line.split()[-2].endswith("s")  # the duration is recorded for indexed files
    bad_at = next(i for i, line in enumerate(lines) if line.endswith(str(bad.resolve())))
    assert lines[bad_at].startswith("failed") and lines[bad_at + 1].strip().startswith("error: ")
    assert "2 of 2 file(s) shown" in text.stdout
    since = invoke("files", "--since", "2h", "--glob", "good.db", "--json", "--database-url", database_url)
    assert [f["path"] for f in json.loads(since.stdout)["items"]] == [str(good.resolve())]
    wrong = invoke("files", "--since", "yesterday", "--database-url", database_url)
    assert wrong.exit_code == 2 and "--since: give an ISO 8601" in wrong.stderr and "(got 'yesterday')" in wrong.stderr
    status = invoke("status", "--database-url", database_url)
    assert "dbembed files" in status.stdout
    none = invoke("files", "--glob", "nomatch*", "--database-url", database_url)
    assert none.exit_code == 0 and "0 of 0 file(s) shown" in none.stdout
    assert "no recorded file matches --glob nomatch*" in none.stdout and "no files recorded yet" not in none.stdout


def test_files_cli_pages_with_cursor_and_all(cli_env: Path, database_url: str) -> None:  # noqa: F811
    conn = _migrated(database_url)
    _fill(conn, 250)
    first = json.loads(invoke("files", "--json", "-n", "100", "--database-url", database_url).stdout)
    assert len(first["items"]) == 100 and first["next_cursor"]
    second = json.loads(
        invoke("files", "--json", "-n", "100", "--cursor", first["next_cursor"], "--database-url", database_url).stdout
    )
    assert second["items"][0]["path"] > first["items"][-1]["path"]
    every = json.loads(invoke("files", "--json", "--all", "-n", "100", "--database-url", database_url).stdout)
    assert len(every["items"]) == 250 and every["next_cursor"] is None
    text = invoke("files", "-n", "100", "--database-url", database_url).stdout
    assert "100 of 250 file(s) shown" in text and "--cursor " in text


def test_python_api_files(settings: Any) -> None:
    import dbembed

    conn = _migrated(settings.database_url)
    _fill(conn, 30)
    page = dbembed.files(settings, status="failed")
    assert page.items == () and page.counts["indexed"] == 30 and page.as_dict()["next_cursor"] is None
    page = dbembed.files(settings, sort="duration", descending=True, limit=5)
    assert [f.duration_s for f in page.items] == sorted((f.duration_s for f in page.items), reverse=True)


def test_file_items_are_frozen_dataclasses_with_one_json_shape(settings: Any) -> None:
    """``FilePage.items`` are frozen ``FileItem``s (attribute access, typed); ``as_dict`` gives the
    JSON shape that ``dbembed files --json`` and ``GET /v1/files`` print, ``rejections`` only when asked."""
    import dataclasses

    import dbembed
    from dbembed.service import FileItem

    _fill(_migrated(settings.database_url), 7)
    page = dbembed.files(settings, limit=3)
    item = page.items[0]
    assert isinstance(item, FileItem) and isinstance(page.items, tuple)
    assert list(item.as_dict()) == list(COLUMNS) and item.as_dict()["path"] == item.path
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.status = "indexed"  # type: ignore[misc]
    listed = dbembed.files(settings, limit=3, with_rejections=True)
    assert all(f.rejections == () for f in listed.items)
    assert all(f["rejections"] == [] for f in listed.as_dict()["items"])
    cli = json.loads(invoke("files", "--json", "-n", "3", "--database-url", settings.database_url).stdout)
    assert cli == json.loads(json.dumps(page.as_dict(), default=str))


# ------------------------------------------------------------------------------ run summary notes
def test_run_summary_explains_every_skip(cli_env: Path, database_url: str) -> None:  # noqa: F811
    _tree(cli_env / "tree")
    root = str(cli_env / "tree")
    fresh = invoke("run", root, "--database-url", database_url)  # default --settle 60: just copied
    assert fresh.exit_code == 0, fresh.stderr
    assert (
        "note: 2 files changed in the last 60 s were left for the next run (still being written?);"
        " --settle 0 indexes them now"
    ) in fresh.stdout
    first = invoke("run", root, "--database-url", database_url, "--settle", "0", "--json")
    notes = json.loads(first.stdout)["notes"]
    assert notes == ["1 file failed; `dbembed files --status failed` lists them with reasons"]
    again = invoke("run", root, "--database-url", database_url, "--settle", "0")
    assert again.exit_code == 0, again.stderr
    assert "note: 1 file unchanged since its last index (same size and mtime) and skipped" in again.stdout
    assert (
        "note: 1 file failed in an earlier run and did not change since, so not retried;"
        " `dbembed files --status failed` shows why, `dbembed retry-failed` queues them again"
    ) in again.stdout


def test_rejections_are_counted_and_point_to_where_to_see_them() -> None:
    from dbembed.run.explain import skip_notes
    from dbembed.run.index import RunSummary

    s = RunSummary(run_id=1, collection="c", model="m", status="ok", files_found=3, files_ok=3)
    s.rejected = {"files": 2, "tables": 0, "rows": 5, "chunks": 1}
    assert skip_notes(s, 60) == [
        "5 rows, 1 chunks rejected in 2 files (the rest of each file is indexed);"
        " `dbembed files --rejected --show-rejections` lists them with reasons"
    ]


def test_files_show_rejections_with_reasons(cli_env: Path, database_url: str) -> None:  # noqa: F811
    conn = _migrated(database_url)
    _fill(conn, 600)
    sid = conn.execute("SELECT id FROM dbembed.sources WHERE path LIKE '%f000500.db'").fetchone()[0]  # type: ignore[index]
    conn.execute(
        "INSERT INTO dbembed.rejections (source_id, level, table_name, row_key, chunk_index, reason) VALUES"
        " (%s, 'row', 'tickets', '17', NULL, 'document could not be built: invalid UTF-8'),"
        " (%s, 'chunk', 'tickets', '18', 0, 'provider refused the text: content filter')",
        (sid, sid),
    )
    out = invoke("files", "--rejected", "--show-rejections", "--database-url", database_url)
    assert out.exit_code == 0, out.stderr
    assert "f000500.db" in out.stdout and "f000499.db" not in out.stdout
    assert "rejected: 2 rows, 3 chunks" in out.stdout
    assert "row tickets #17: document could not be built: invalid UTF-8" in out.stdout
    assert "chunk tickets #18 chunk 0: provider refused the text: content filter" in out.stdout
    page = json.loads(invoke("files", "--rejected", "--json", "--database-url", database_url).stdout)
    assert [f["path"][-10:] for f in page["items"]] == ["f000500.db"]


def test_parse_since_is_the_one_time_bound_parser() -> None:
    from dbembed.errors import InvalidInput
    from dbembed.service import parse_since

    now = datetime.now(UTC)
    for text, back in (("90s", 90), ("15m", 900), ("2h", 7200), (" 7d ", 7 * 86400), ("2w", 14 * 86400), ("1.5h", 5400)):
        got = parse_since(text)
        assert got is not None and abs((now - got).total_seconds() - back) < 60, text
    assert parse_since("2026-11-30") == datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_since("2026-11-30T14:00Z") == datetime(2026, 11, 30, 14, tzinfo=UTC)
    assert parse_since("2026-11-30T14:00+01:00") == datetime(2026, 11, 30, 13, tzinfo=UTC)
    assert parse_since(datetime(2026, 11, 30)) == datetime(2026, 11, 30, tzinfo=UTC)  # naive: UTC
    assert parse_since(None) is None
    for bad in ("yesterday", "2x", "", "9" * 40 + "w", 5):
        with pytest.raises(InvalidInput, match=r"^until: .*\(got ") as err:
            parse_since(bad, "until")  # type: ignore[arg-type]
        assert err.value.field == "until"
