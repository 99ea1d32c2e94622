"""Row identity is lossless for any primary-key value: text that is not valid UTF-8, blobs, and
columns mixing types never collide into one row key (and so never lose a row), keyset paging
seeks bad text by its exact bytes, and ordinary keys keep the identities they always had."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg

from dbembed.config import SourcesSettings
from dbembed.read import SqliteSource
from dbembed.read.rows import RowReader
from dbembed.service import Dbembed

BODY = "Customer note number {} about a delayed parcel and a refund."


def _db(path: Path, script: str, inserts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(script)
    for sql in inserts:
        conn.execute(sql)
    conn.commit()
    conn.close()
    return path


def _bad_text_db(path: Path) -> Path:
    # Keys written as raw bytes cast to TEXT: what a C program with a bad encoder leaves behind.
    return _db(path, "CREATE TABLE notes (k TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID;", [
        f"INSERT INTO notes VALUES (CAST(x'{hexkey}' AS TEXT), '{BODY.format(i)}')"
        for i, hexkey in enumerate(["61ff", "61fe", "61efbfbd", "61c3", "62", "61", "61ff00ff"])
    ])  # fmt: skip


def _keys(path: Path, page_size: int) -> dict[str, list[Any]]:
    """Every table's row keys, read page by page (a seek that goes backwards would loop: capped)."""
    out: dict[str, list[Any]] = {}
    with SqliteSource(path, SourcesSettings(page_size=page_size)) as src:
        for table in src.tables():
            reader, keys = RowReader(table, page_size), out.setdefault(table.name, [])
            while not reader.done:
                keys.extend(r.key for r in reader.next_page(src.conn))
                assert len(keys) <= 50, f"paging {table.name} does not advance: {keys[:8]}"
    return out


def test_bad_utf8_keys_stay_distinct_on_every_page_size(tmp_path: Path) -> None:
    path = _bad_text_db(tmp_path / "bad.db")
    for page_size in (1, 2, 100):
        keys = _keys(path, page_size)["notes"]
        assert len(keys) == 7 == len(set(keys)), (page_size, keys)  # no row lost, none repeated
        assert json.dumps(["a"]) in keys and json.dumps(["b"]) in keys  # ordinary keys unchanged
        assert json.dumps(["a\ufffd"], ensure_ascii=False) in keys  # a real U+FFFD is ordinary text
        assert '[{"text_bytes": "61ff"}]' in keys and '[{"text_bytes": "61fe"}]' in keys


def test_mixed_types_and_blobs_in_one_key_column(tmp_path: Path) -> None:
    path = _db(tmp_path / "mixed.db", """
        CREATE TABLE mixed (k PRIMARY KEY, body TEXT) WITHOUT ROWID;
        CREATE TABLE blobs (k BLOB PRIMARY KEY, body TEXT) WITHOUT ROWID;
        CREATE TABLE pairs (a TEXT, b, body TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;""", [
        f"INSERT INTO mixed VALUES (x'6162', '{BODY.format(1)}'), ('6162', '{BODY.format(2)}'),"
        f" (1, '{BODY.format(3)}'), (1.5, '{BODY.format(4)}'), ('1', '{BODY.format(5)}')",
        f"INSERT INTO blobs VALUES (x'00ff', '{BODY.format(6)}'), (x'0a0b', '{BODY.format(7)}')",
        f"INSERT INTO pairs VALUES ('x', x'6162', '{BODY.format(8)}'), ('x', '6162', '{BODY.format(9)}'),"
        f" (CAST(x'ff' AS TEXT), 2, '{BODY.format(10)}'), (CAST(x'fe' AS TEXT), 2, '{BODY.format(11)}')",
    ])  # fmt: skip
    keys = _keys(path, 1)
    assert len(keys["mixed"]) == 5 == len(set(keys["mixed"]))
    assert set(keys["mixed"]) == {'[{"blob": "6162"}]', '["6162"]', "[1]", "[1.5]", '["1"]'}
    assert keys["blobs"] == ['["00ff"]', '["0a0b"]']  # a blob-only column keeps its plain hex keys
    assert len(keys["pairs"]) == 4 == len(set(keys["pairs"]))
    assert '["x", {"blob": "6162"}]' in keys["pairs"] and '[{"text_bytes": "ff"}, 2]' in keys["pairs"]


def test_every_row_is_indexed_and_a_rerun_changes_nothing(settings: Any, minilm: Any, tmp_path: Path) -> None:
    _bad_text_db(tmp_path / "tree" / "bad.db")
    service = Dbembed(settings, provider=minilm)
    first = service.index([tmp_path / "tree"])
    assert first.files_ok == 1 and first.rows == 7
    with psycopg.connect(settings.database_url) as conn:
        (cid,) = conn.execute("SELECT id FROM dbembed.collections").fetchone()
        stored = conn.execute(f"SELECT count(DISTINCT row_key) FROM dbembed.chunks_{int(cid)}").fetchone()[0]
    assert stored == 7
    conn = sqlite3.connect(tmp_path / "tree" / "bad.db")
    conn.execute("INSERT INTO notes VALUES (CAST(x'63ff' AS TEXT), 'One more delayed parcel, new row.')")
    conn.commit()
    conn.close()
    again = service.index([tmp_path / "tree"])
    assert again.files_ok == 1 and again.texts_embedded == 1, again  # only the new row
