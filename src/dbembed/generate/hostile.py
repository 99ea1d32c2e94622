"""Hostile files: one per fault class dbembed contains, so a user can check their own deployment.

``dbembed generate OUT --bad`` writes them under ``OUT/hostile/`` beside the broken files.  Each
file's ``expect`` says how a correct deployment ends it: ``indexed`` (the bad part is cleaned or
rejected with a reason, the rest searchable) or ``failed`` (one line saying why).  Running
``dbembed run OUT`` over them must exit 0 or 1, never 3, with no traceback.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from dbembed.generate.files import FileInfo

GOOD = "The blender makes a loud grinding noise on the highest speed setting."


def _db(path: Path, script: Callable[[sqlite3.Connection], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE tickets (id INTEGER PRIMARY KEY, subject TEXT, body TEXT)")
        conn.execute("INSERT INTO tickets VALUES (1, 'Noisy blender', ?)", (GOOD,))
        script(conn)
        conn.commit()
    finally:
        conn.close()


def _nul_values(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany(
        "INSERT INTO notes VALUES (?, ?)",
        [
            (1, "\x00a NUL at the start of a note about a broken kettle"),
            (2, "a NUL \x00 in the middle of a note about a lost parcel"),
            (3, "a NUL at the end of a note about late shipping\x00"),
            (4, "several\x00 NULs\x00\x00 in a note about concert tickets"),
        ],
    )
    conn.execute("CREATE TABLE tags (name TEXT PRIMARY KEY, descr TEXT) WITHOUT ROWID")
    conn.executemany("INSERT INTO tags VALUES (?, ?)", [("a\x00b", "key with a NUL"), ("ab", "key without")])
    conn.execute("CREATE TABLE loose (a, b)")
    conn.execute("INSERT INTO loose VALUES (?, 1)", ("an untyped column \x00 holding a NUL about boots",))


def _invisible_values(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE memos (id INTEGER PRIMARY KEY, body TEXT)")
    values = ["\u200b", "\ufeff", "\u2060", "\u00ad", " \u200b\u200b ", "\u3164", "\u2800"]
    conn.executemany("INSERT INTO memos VALUES (?, ?)", list(enumerate(values, 1)))


def _bad_text_bytes(conn: sqlite3.Connection) -> None:
    """TEXT values that are not valid UTF-8: Latin-1 bytes, CESU-8 surrogates, a lone continuation."""
    conn.execute("CREATE TABLE legacy (id INTEGER PRIMARY KEY, body TEXT)")
    for i, raw in enumerate(
        [b"caf\xe9 au lait order", b"surrogate \xed\xa0\x80 inside", b"lone \x80 byte"], 1
    ):
        conn.execute("INSERT INTO legacy VALUES (?, CAST(? AS TEXT))", (i, raw))


def _odd_identifiers(conn: sqlite3.Connection) -> None:
    conn.execute('CREATE TABLE "Order Details" ("Unit Price" REAL, "Ship ""Note""" TEXT, "備考" TEXT)')
    conn.execute(
        "INSERT INTO \"Order Details\" VALUES (9.5, 'leave the parcel with the neighbour', '午前中に配達')"
    )
    conn.execute('CREATE TABLE "select" ("from" TEXT, "rowid" TEXT)')
    conn.execute("INSERT INTO \"select\" VALUES ('keyword-named table and columns', 'a column named rowid')")


def _unknown_collation(conn: sqlite3.Connection) -> None:
    conn.create_collation("klingon", lambda a, b: (a > b) - (a < b))
    conn.execute("CREATE TABLE words (w TEXT COLLATE klingon PRIMARY KEY, gloss TEXT) WITHOUT ROWID")
    conn.execute("INSERT INTO words VALUES ('qapla', 'success, said after a victory')")


def _missing_module(conn: sqlite3.Connection) -> None:
    conn.commit()
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES"
        " ('table', 'vectors', 'vectors', 0, 'CREATE VIRTUAL TABLE vectors USING vec0(embedding float[4])')"
    )
    conn.commit()
    conn.execute("PRAGMA writable_schema = OFF")


def _broken_view(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE VIEW loud AS SELECT id, body, no_such_function(body) AS x FROM tickets")
    conn.execute("CREATE VIEW orphan AS SELECT * FROM dropped_table")


def _huge_value(conn: sqlite3.Connection) -> None:
    sentence = "The warehouse inventory report lists every pallet on every shelf in aisle seven. "
    conn.execute("CREATE TABLE reports (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO reports VALUES (1, ?)", (sentence * 12_000,))  # ~1 MB in one value
    conn.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
    conn.execute("INSERT INTO blobs VALUES (1, zeroblob(8000000))")


def _long_key(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE docs (path TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID")
    conn.execute(
        "INSERT INTO docs VALUES (?, 'a row whose primary key is 6000 characters long')", ("k" * 6000,)
    )


def _no_tables(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TABLE tickets")


def _corrupt_table_page(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size = 1024")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes VALUES (1, 'The courier left the parcel at the wrong door.')")
    conn.execute("CREATE TABLE reviews (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany(
        "INSERT INTO reviews VALUES (?, ?)",
        [(i, f"Review {i}: the hiking boots run small. " * 3) for i in range(300)],
    )
    conn.commit()
    try:
        pages = [
            p
            for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name = 'reviews' AND pagetype = 'leaf'")
        ]
    except sqlite3.Error:  # no dbstat: the leaf pages follow the root page
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'reviews'").fetchone()
        pages = [root + 10]
    conn.close()
    page = pages[len(pages) // 2]
    with open(path, "r+b") as fh:
        fh.seek((page - 1) * 1024)
        fh.write(b"\xff" * 1024)


# kind -> (relative path, how a correct deployment ends it, writer)
CASES: dict[str, tuple[str, str, Callable[[Path], None]]] = {
    "nul_values": ("nul_values.db", "indexed", lambda p: _db(p, _nul_values)),
    "invisible_values": ("invisible_values.db", "indexed", lambda p: _db(p, _invisible_values)),
    "bad_text_bytes": ("bad_text_bytes.db", "indexed", lambda p: _db(p, _bad_text_bytes)),
    "odd_identifiers": ("odd identifiers ★.db", "indexed", lambda p: _db(p, _odd_identifiers)),
    "unknown_collation": ("unknown_collation.db", "indexed", lambda p: _db(p, _unknown_collation)),
    "missing_module": ("missing_module.db", "indexed", lambda p: _db(p, _missing_module)),
    "broken_view": ("broken_view.db", "indexed", lambda p: _db(p, _broken_view)),
    "huge_value": ("huge_value.db", "indexed", lambda p: _db(p, _huge_value)),
    "long_key": ("long_key.db", "indexed", lambda p: _db(p, _long_key)),
    "no_tables": ("no_tables.db", "indexed", lambda p: _db(p, _no_tables)),
    "corrupt_table_page": ("corrupt_table_page.db", "indexed", _corrupt_table_page),
    "header_only": ("header_only.db", "failed", lambda p: _header_only(p)),
}


def _header_only(path: Path) -> None:
    _db(path, lambda c: None)
    data = path.read_bytes()
    path.write_bytes(data[:100])


def write_hostile_files(out: Path, folder: str = "hostile") -> list[FileInfo]:
    """Write one file per fault class under ``out/folder``; returns what was written."""
    infos = []
    for kind, (rel, expect, writer) in CASES.items():
        path = out / folder / rel
        writer(path)
        infos.append(FileInfo(f"{folder}/{rel}", kind, size=path.stat().st_size, expect=expect))
    infos.extend(_odd_names(out, folder))
    if hasattr(os, "mkfifo"):  # a FIFO named *.db: opening it to read the header would block forever
        fifo = out / folder / "pipe.db"
        fifo.unlink(missing_ok=True)
        os.mkfifo(fifo)
        infos.append(FileInfo(f"{folder}/pipe.db", "fifo", expect="failed"))
    return infos


def _odd_names(out: Path, folder: str) -> list[FileInfo]:
    """Names that are not valid UTF-8 (POSIX only; some file systems refuse them)."""
    if os.name == "nt":
        return []
    base = os.fsencode(out / folder)
    infos = []
    for raw, shown in (
        (b"/caf\xe9.db", "caf\\xe9.db"),
        (b"/r\xe9sum\xe9s/notes.db", "r\\xe9sum\\xe9s/notes.db"),
    ):
        path = Path(os.fsdecode(base + raw))
        try:
            _db(path, lambda c: None)
        except (OSError, UnicodeEncodeError):
            continue
        infos.append(
            FileInfo(f"{folder}/{shown}", "non_utf8_name", size=path.stat().st_size, expect="indexed")
        )
    return infos
