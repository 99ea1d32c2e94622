"""dbembed.read against real SQLite files in temp folders (no server needed)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dbembed.config import SourcesSettings, TableOverride
from dbembed.errors import SourceError
from dbembed.read import Row, SqliteSource, TableInfo, quote_ident
from dbembed.read import snapshot as snap
from dbembed.read.introspect import _schema_entries
from dbembed.read.rows import RowReader


def make_db(path: Path, script: str, rows: dict[str, list[tuple]] | None = None) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(script)
    for table, values in (rows or {}).items():
        marks = ", ".join("?" for _ in values[0])
        conn.executemany(f"INSERT INTO {quote_ident(table)} VALUES ({marks})", values)
    conn.commit()
    conn.close()
    return path


def settings(**kw: object) -> SourcesSettings:
    return SourcesSettings(**kw)  # type: ignore[arg-type]


def read_all(
    path: Path, s: SourcesSettings | None = None
) -> tuple[dict[str, TableInfo], dict[str, list[Row]], bool]:
    with SqliteSource(path, s or settings()) as src:
        tables = {t.name: t for t in src.tables()}
        rows = {name: list(src.rows(t)) for name, t in tables.items()}
        return tables, rows, src.used_snapshot


def dir_state(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
    }


CHINOOK = """
CREATE TABLE Artist (ArtistId INTEGER PRIMARY KEY, Name NVARCHAR(120));
CREATE TABLE Album (AlbumId INTEGER PRIMARY KEY, Title NVARCHAR(160) NOT NULL, ArtistId INTEGER, Price REAL);
CREATE TABLE Counts (n INTEGER, total REAL);
"""


def chinook(tmp_path: Path) -> Path:
    return make_db(
        tmp_path / "chinook.db",
        CHINOOK,
        {
            "Artist": [(1, "AC/DC"), (2, "Accept"), (3, None)],
            "Album": [(1, "For Those About To Rock", 1, 9.99), (4, "Let There Be Rock", 1, 8.99)],
            "Counts": [(1, 2.0)],
        },
    )


def test_tables_keys_and_text_columns(tmp_path: Path) -> None:
    tables, rows, used = read_all(chinook(tmp_path))
    assert set(tables) == {"Artist", "Album"}  # Counts: nothing to embed
    album = tables["Album"]
    assert album.text_columns == ("Title",) and album.key_columns == () and not album.without_rowid
    assert [c.affinity for c in album.columns] == ["INTEGER", "TEXT", "INTEGER", "REAL"]
    assert album.columns[0].pk_index == 1 and album.columns[1].pk_index == 0
    assert [(r.key, r.values["Title"]) for r in rows["Album"]] == [
        ("1", "For Those About To Rock"),
        ("4", "Let There Be Rock"),
    ]
    assert rows["Artist"][2].values == {"Name": None}
    assert used is False


def test_skipped_reasons(tmp_path: Path) -> None:
    path = chinook(tmp_path)
    with SqliteSource(path, settings()) as src:
        src.tables()
        assert src.skipped == {"Counts": "no text columns"}


def test_odd_identifiers(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "odd.db",
        'CREATE TABLE "Order Details" ("Product Name" TEXT, "qty" INTEGER);'
        'CREATE TABLE "a""b" ("we""ird" TEXT, "select" TEXT);',
        {
            "Order Details": [("Chai tea", 3), ("Chang beer", 1)],
            'a"b': [("quoted value here", "reserved word column")],
        },
    )
    tables, rows, _ = read_all(path)
    assert tables["Order Details"].text_columns == ("Product Name",)
    assert [r.values["Product Name"] for r in rows["Order Details"]] == ["Chai tea", "Chang beer"]
    assert tables['a"b'].text_columns == ('we"ird', "select")
    assert rows['a"b'][0].values == {'we"ird': "quoted value here", "select": "reserved word column"}
    assert quote_ident('a"b') == '"a""b"'


def test_without_rowid_composite_key_paged(tmp_path: Path) -> None:
    values = [(f"r{i % 4}", i, f"line number {i} of the play") for i in range(23)]
    path = make_db(
        tmp_path / "wr.db",
        "CREATE TABLE lines (act TEXT, no INTEGER, body TEXT, PRIMARY KEY (act, no)) WITHOUT ROWID;",
        {"lines": values},
    )
    tables, rows, _ = read_all(path, settings(page_size=5))
    t = tables["lines"]
    assert t.without_rowid and t.key_columns == ("act", "no")
    assert t.text_columns == ("body",)  # act holds short codes ("r1"): not text
    keys = [r.key for r in rows["lines"]]
    assert len(keys) == 23 == len(set(keys))
    assert keys[:2] == ['["r0", 0]', '["r0", 4]']
    assert sorted(r.values["body"] for r in rows["lines"]) == sorted(v[2] for v in values)


def test_keyset_paging_bounded_pages(tmp_path: Path) -> None:
    path = make_db(tmp_path / "many.db", "CREATE TABLE notes (body TEXT);")
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO notes(rowid, body) VALUES (?, ?)", [(i, f"note {i} text") for i in range(-5, 60)]
    )
    conn.execute("DELETE FROM notes WHERE rowid % 7 = 0")
    conn.commit()
    expected = [r[0] for r in conn.execute("SELECT rowid FROM notes ORDER BY rowid")]
    conn.close()
    with SqliteSource(path, settings(page_size=8)) as src:
        (table,) = src.tables()
        reader = RowReader(table, 8)
        sizes = []
        while not reader.done:
            sizes.append(len(reader.next_page(src.conn)))
        assert max(sizes) == 8 and sum(sizes) == len(expected)
        statements: list[str] = []
        src.conn.set_trace_callback(statements.append)
        keys = [int(r.key) for r in src.rows(table)]
    assert keys == expected  # negative rowids, gaps, no repeats
    selects = [s for s in statements if s.startswith("SELECT") and "notes" in s]
    # 56 rows: 7 full pages, then one empty page that ends the table
    assert len(selects) == len(expected) // 8 + 1 and all("LIMIT 8" in s for s in selects)


def test_views_skipped_by_default_and_read_on_request(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "v.db",
        "CREATE TABLE t (body TEXT, n INTEGER);"
        "CREATE VIEW v AS SELECT body || ' (view)' AS label FROM t;"
        "CREATE VIEW broken AS SELECT x FROM missing_table;",
        {"t": [("same words", 1), ("same words", 2), ("other words", 3)]},
    )
    with SqliteSource(path, settings()) as src:
        assert [t.name for t in src.tables()] == ["t"]
        assert "v" in src.skipped
    tables, rows, _ = read_all(path, settings(include_views=True, page_size=2))
    assert tables["v"].kind == "view" and tables["v"].text_columns == ("label",)
    keys = [r.key for r in rows["v"]]
    assert len(keys) == 3 == len(set(keys))  # identical rows still get distinct keys
    assert "broken" not in tables
    _, again, _ = read_all(path, settings(include_views=True))
    assert [r.key for r in again["v"]] == keys  # stable across reads


def write_wal(path: Path, n: int) -> sqlite3.Connection:
    """A WAL database with ``n`` rows that exist only in the -wal file (writer kept open)."""
    w = sqlite3.connect(path, isolation_level=None)
    w.execute("PRAGMA journal_mode=WAL")
    w.execute("PRAGMA wal_autocheckpoint=0")
    w.execute("CREATE TABLE msg (id INTEGER PRIMARY KEY, body TEXT)")
    w.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the table itself is in the main file
    for i in range(n):
        w.execute("INSERT INTO msg(body) VALUES (?)", (f"message {i} still in the wal",))
    return w


def test_wal_uncheckpointed_rows_are_read_without_touching_files(tmp_path: Path) -> None:
    folder = tmp_path / "share"
    folder.mkdir()
    db = folder / "live.db"
    writer = write_wal(db, 25)
    try:
        assert Path(f"{db}-wal").stat().st_size > 0
        before = dir_state(folder)
        tables, rows, used = read_all(db, settings(page_size=10))
        assert used is True
        assert len(rows["msg"]) == 25 and rows["msg"][-1].values["body"] == "message 24 still in the wal"
        after = dir_state(folder)
        assert after.keys() == before.keys()
        assert after["live.db"] == before["live.db"] and after["live.db-wal"] == before["live.db-wal"]
    finally:
        writer.close()


def test_wal_without_shm_is_copied_not_opened_in_place(tmp_path: Path) -> None:
    src_dir, copy_dir = tmp_path / "a", tmp_path / "b"
    src_dir.mkdir()
    copy_dir.mkdir()
    writer = write_wal(src_dir / "x.db", 7)
    try:
        for name in ("x.db", "x.db-wal"):  # what a crashed writer leaves on a share: no -shm
            shutil.copyfile(src_dir / name, copy_dir / name)
    finally:
        writer.close()
    before = dir_state(copy_dir)
    _, rows, used = read_all(copy_dir / "x.db")
    assert used and len(rows["msg"]) == 7
    assert dir_state(copy_dir) == before  # no -shm created, the -wal left as it was


def test_wal_readonly_open_failure_falls_back_to_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "ro.db"
    writer = write_wal(db, 4)
    try:

        def refuse(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
            raise sqlite3.OperationalError("attempt to write a readonly database")  # as in a read-only dir

        monkeypatch.setattr(snap, "open_readonly", refuse)
        _, rows, used = read_all(db)
        assert used and [r.values["body"] for r in rows["msg"]][-1] == "message 3 still in the wal"
    finally:
        writer.close()


def test_rollback_file_untouched_and_no_side_files(tmp_path: Path) -> None:
    folder = tmp_path / "share"
    folder.mkdir()
    db = chinook(folder)
    before = dir_state(folder)
    _, rows, used = read_all(db)
    assert not used and len(rows["Album"]) == 2
    assert dir_state(folder) == before


def test_change_while_reading_continues_from_snapshot(tmp_path: Path) -> None:
    snaps = tmp_path / "snaps"
    db = make_db(
        tmp_path / "busy.db", "CREATE TABLE t (body TEXT);", {"t": [(f"row {i} words",) for i in range(30)]}
    )
    with SqliteSource(db, settings(page_size=10, snapshot_dir=snaps)) as src:
        (table,) = src.tables()
        seen = []
        for row in src.rows(table):
            seen.append(row.key)
            if len(seen) == 5:  # a writer commits while we are between pages
                other = sqlite3.connect(db)
                other.executemany("INSERT INTO t VALUES (?)", [(f"late {i} words",) for i in range(4)])
                other.commit()
                other.close()
        assert src.used_snapshot is True
        assert any(snaps.iterdir())
    assert seen == [str(i) for i in range(1, 35)]  # nothing repeated, nothing skipped
    assert list(snaps.iterdir()) == []  # temp snapshot removed on exit


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", r"empty file \(0 bytes\)"),
        (
            b"hello, this is a plain text file and not a database at all\n" * 3,
            r"not an SQLite database \(bad header\)",
        ),
        (os.urandom(4096), r"bad header; encrypted\?"),
    ],
)
def test_not_sqlite(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.db"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=reason):
        read_all(path)


def test_truncated_file(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "big.db", "CREATE TABLE t (body TEXT);", {"t": [("x" * 500,) for _ in range(400)]}
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="malformed") as info:
        read_all(path)
    assert "truncated" in str(info.value) and "\n" not in str(info.value)


def test_vanished_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="vanished"):
        read_all(tmp_path / "gone.db")


def test_vanished_while_reading(tmp_path: Path) -> None:
    db = make_db(tmp_path / "v.db", "CREATE TABLE t (body TEXT);", {"t": [(f"r {i} x",) for i in range(20)]})
    with SqliteSource(db, settings(page_size=5)) as src, pytest.raises(SourceError, match="vanished"):
        (table,) = src.tables()
        for i, _ in enumerate(src.rows(table)):
            if i == 0:
                db.unlink()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_permission_denied(tmp_path: Path) -> None:
    db = chinook(tmp_path)
    db.chmod(0)
    with pytest.raises(SourceError, match="permission denied"):
        read_all(db)


def test_column_choice_from_types_and_samples(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "mixed.db",
        "CREATE TABLE people (id TEXT, person_id INT, OwnerId TEXT, name VARCHAR(40), bio, score,"
        " created DATETIME, token TEXT, country TEXT, photo BLOB, city TEXT, note NUMERIC, uuid TEXT);",
        {
            "people": [
                (
                    f"p{i}", i, f"o{i}", f"Person {i}", f"Likes hiking and tea, number {i}", i * 1.5,
                    f"2024-01-{i % 28 + 1:02d} 10:00:00", hashlib.md5(str(i).encode()).hexdigest(),
                    ["US", "JP", "DE"][i % 3], b"\x89PNG", ["東京", "大阪", "京都"][i % 3], "12.5",
                    "3f2b8c1e-1111-4a5b-9c3d-2e4f5a6b7c8d",
                )
                for i in range(30)
            ]
        },
    )  # fmt: skip
    tables, _, _ = read_all(path)
    # city has 3 values over 30 rows: a category, dropped because bio is prose beside it.
    assert tables["people"].text_columns == ("name", "bio")


def test_emails_and_categories_do_not_dilute_prose(tmp_path: Path) -> None:
    long_text = "The package arrived crushed and the customer wants a refund, case {}."
    path = make_db(
        tmp_path / "tickets.db",
        "CREATE TABLE tickets (status TEXT, email TEXT, site TEXT, body TEXT);"
        " CREATE TABLE labels (status TEXT, colour TEXT);",
        {
            "tickets": [
                (["open", "pending", "closed"][i % 3], f"user{i}@example.org", f"https://example.org/t/{i}",
                 long_text.format(i))
                for i in range(40)
            ],
            "labels": [(["open", "pending", "closed"][i % 3], ["red", "green"][i % 2]) for i in range(40)],
        },
    )  # fmt: skip
    tables, _, _ = read_all(path)
    assert tables["tickets"].text_columns == ("body",)
    # Without prose beside them, categorical columns are the content and stay.
    assert tables["labels"].text_columns == ("status", "colour")


def test_config_overrides(tmp_path: Path) -> None:
    path = chinook(tmp_path)
    s = settings(
        tables={
            "album": TableOverride(include_columns=["title", "Price"]),
            "Artist": TableOverride(template="{Name}!"),
            "Counts": TableOverride(skip=True),
        }
    )
    tables, rows, _ = read_all(path, s)
    assert tables["Album"].text_columns == ("Title", "Price")
    assert rows["Album"][0].values == {"Title": "For Those About To Rock", "Price": 9.99}
    assert tables["Artist"].template == "{Name}!"
    with SqliteSource(path, s) as src:
        src.tables()
        assert src.skipped["Counts"] == "skipped by configuration"
    excl = settings(tables={"Album": TableOverride(exclude_columns=["Title"])})
    assert "Album" not in read_all(path, excl)[0]
    bad = settings(tables={"Album": TableOverride(include_columns=["Title", "Nope"])})
    with pytest.raises(SourceError, match="'Album'.*'Nope'"):
        read_all(path, bad)


def test_fts_shadow_tables_skipped(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "fts.db",
        "CREATE TABLE docs (body TEXT);"
        "CREATE VIRTUAL TABLE search USING fts5(title, body);"
        "CREATE VIRTUAL TABLE ext USING fts5(body, content='docs');",
        {"docs": [("a document body",)], "search": [("fts title words", "fts body words")]},
    )
    with SqliteSource(path, settings()) as src:
        names = [t.name for t in src.tables()]
        assert names == ["docs", "search"]
        rows = list(src.rows(next(t for t in src.tables() if t.name == "search")))
        assert rows[0].values == {"title": "fts title words", "body": "fts body words"}
        assert "ext" in src.skipped


def test_invalid_utf8_does_not_abort(tmp_path: Path) -> None:
    path = make_db(tmp_path / "enc.db", "CREATE TABLE t (body TEXT);")
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO t VALUES (CAST(X'48692066FF6F6F20626172' AS TEXT))")
    conn.commit()
    conn.close()
    _, rows, _ = read_all(path)
    assert rows["t"][0].values["body"] == "Hi f\ufffdoo bar"


def test_path_with_uri_characters(tmp_path: Path) -> None:
    folder = tmp_path / "we?ird #dir%20"
    folder.mkdir()
    db = chinook(folder)
    assert "?mode=ro" in snap.ro_uri(db) and "%3F" in snap.ro_uri(db)
    assert len(read_all(db)[1]["Album"]) == 2


def test_hot_journal_is_rolled_back_in_a_copy(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "h.db", "CREATE TABLE t (body TEXT);", {"t": [(f"orig {i} words",) for i in range(50)]}
    )
    crash = (
        "import os, sqlite3\n"
        f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        "c.execute('PRAGMA cache_size=1'); c.execute('BEGIN'); c.execute('DELETE FROM t')\n"
        "for i in range(3000): c.execute('INSERT INTO t VALUES (?)', ('new row %d ' % i * 20,))\n"
        "os._exit(0)\n"  # the writer dies mid-transaction: a hot journal stays behind
    )
    subprocess.run([sys.executable, "-c", crash], check=True)
    assert Path(f"{db}-journal").stat().st_size > 0
    before = dir_state(tmp_path)
    _, rows, used = read_all(db)
    assert used and [r.values["body"] for r in rows["t"]] == [f"orig {i} words" for i in range(50)]
    assert dir_state(tmp_path) == before


class _NoTableList:
    """A connection as seen on SQLite < 3.37 (no pragma_table_list)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if "pragma_table_list" in sql:
            raise sqlite3.OperationalError("no such table: pragma_table_list")
        return self._conn.execute(sql, *args)


def test_shadow_and_without_rowid_detection_on_old_sqlite(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "old.db",
        "CREATE TABLE docs (body TEXT);"
        "CREATE VIRTUAL TABLE s4 USING fts4(body);"
        "CREATE VIRTUAL TABLE s5 USING fts5(body);"
        "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;",
    )
    conn = sqlite3.connect(path)
    entries = {e.name: e for e in _schema_entries(_NoTableList(conn))}  # type: ignore[arg-type]
    conn.close()
    kinds = {name: e.kind for name, e in entries.items()}
    assert kinds["s4_content"] == kinds["s5_data"] == kinds["s5_idx"] == kinds["s5_config"] == "shadow"
    assert kinds["s4"] == kinds["s5"] == "virtual" and kinds["docs"] == kinds["kv"] == "table"
    assert entries["kv"].without_rowid and not entries["docs"].without_rowid


def test_page_ends_early_at_byte_budget(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "wide.db",
        "CREATE TABLE t (body TEXT);",
        {"t": [(f"{i} " + "y" * 300,) for i in range(30)]},
    )
    with SqliteSource(path, settings()) as src:
        (table,) = src.tables()
        reader = RowReader(table, page_size=100, max_page_bytes=1000)
        pages = []
        while not reader.done:
            pages.append([r.key for r in reader.next_page(src.conn)])
    assert max(len(p) for p in pages) == 4  # 4 x ~305 bytes passes 1000
    assert [k for p in pages for k in p] == [str(i) for i in range(1, 31)]


def test_permission_denied_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated (tests may run as root, who can read a chmod 000 file)."""
    from dbembed.read import header

    def denied(path: object, n: int = 256) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(header, "read_prefix", denied)
    with pytest.raises(SourceError, match="^permission denied$"):
        read_all(chinook(tmp_path))
