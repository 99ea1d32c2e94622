"""Fault isolation: a fault is contained at the smallest level that holds it.

vector/chunk -> row -> table -> file -> run.  Every test builds real SQLite files, indexes them into
the embedded PostgreSQL with the real model (or a remote provider against a local wire-format
server) and checks what is searchable, what is rejected (with its reason) and how the run ended.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import psycopg
import pytest

import dbembed.service
from dbembed.discover.names import display_path, real_path
from dbembed.embed.base import check_vectors
from tests.helpers import make_db, tickets_for

CLEAN = "The invoice total does not match the quoted price for the blender."


@pytest.fixture()
def run(settings, minilm):  # noqa: ANN001, ANN201
    dbembed.service.default_providers.put(minilm, settings)

    def _run(roots, **overrides):  # noqa: ANN001, ANN202
        return dbembed.index([str(r) for r in roots], settings, **overrides)

    return _run


def _sources(url: str) -> dict[str, dict]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(
            "SELECT path, status, error, rejected_tables, rejected_rows, rejected_chunks, chunks"
            " FROM dbembed.sources"
        )
        names = [d.name for d in cur.description or []]
        return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def _rejections(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT s.path, r.level, r.table_name, r.row_key, r.chunk_index, r.reason FROM dbembed.rejections r"
            " JOIN dbembed.sources s ON s.id = r.source_id ORDER BY 1, 2, 3, 4, 5"
        ).fetchall()


def _texts(url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        (cid,) = conn.execute("SELECT id FROM dbembed.collections").fetchone()  # type: ignore[misc]
        return conn.execute(
            f"SELECT table_name, row_key, text FROM dbembed.chunks_{int(cid)} ORDER BY 1, 2"
        ).fetchall()


# -- row values: NUL, invisible-only --------------------------------------------------------------
def test_nul_in_values_and_keys_every_file_indexed(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    root.mkdir()
    nul = sqlite3.connect(root / "nul.db")
    nul.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    nul.execute("CREATE TABLE tags (name TEXT PRIMARY KEY, descr TEXT) WITHOUT ROWID")
    nul.execute("CREATE TABLE loose (a, b)")  # untyped columns
    nul.executemany(
        "INSERT INTO notes VALUES (?, ?)",
        [
            (1, "\x00starts with a NUL: refund for the broken kettle"),
            (2, "middle \x00 NUL: the courier lost the parcel in Lisbon"),
            (3, "ends with a NUL: shipping to Osaka was late\x00"),
            (4, "many\x00\x00 NULs\x00 in one\x00 value about a concert ticket"),
        ],
    )
    nul.executemany(
        "INSERT INTO tags VALUES (?, ?)",
        [("a\x00b", "a tag whose key holds a NUL byte"), ("ab", "the same key without the NUL")],
    )
    nul.execute("INSERT INTO loose VALUES (?, 1)", ("untyped \x00 column with a NUL about hiking boots",))
    nul.commit()
    nul.close()
    make_db(root / "clean.db", [(1, "Clean", CLEAN)])
    summary = run([root])
    assert summary.exit_code == 0 and summary.files_ok == 2, summary.failures
    texts = _texts(settings.database_url)
    assert not any("\x00" in t for _, _, t in texts)
    keys = {(tbl, key) for tbl, key, _ in texts}
    # The two WITHOUT ROWID keys stay distinct: the NUL is escaped (JSON \u0000), not dropped.
    assert ("tags", json.dumps(["a\x00b"])) in keys and ("tags", json.dumps(["ab"])) in keys
    assert json.loads(json.dumps(["a\x00b"]))[0] == "a\x00b"  # reversible
    hit = dbembed.search("the courier lost the parcel", k=1, settings=settings)[0]
    assert "courier lost the parcel in Lisbon" in hit.text and hit.path.endswith("nul.db")
    assert dbembed.search("invoice does not match the quote", k=1, settings=settings)[0].path.endswith(
        "clean.db"
    )
    # Stable: a second run finds nothing changed (same keys and row hashes).
    again = run([root], force=True)
    assert again.texts_embedded == 0 and again.exit_code == 0


def test_invisible_only_values_are_empty_like_null(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    path = tmp_path / "tree" / "notes.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT, body TEXT)")
    invisible = ["\u200b", "\ufeff", "\u2060", "\u00ad", "\u200b\u200b \ufeff", "\u3164", "\x00"]
    rows = [(i + 1, None, v) for i, v in enumerate(invisible)]
    rows.append((100, "Kettle", "The kettle\u200b stopped heating after a week."))
    conn.executemany("INSERT INTO notes VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()
    summary = run([path.parent])
    assert summary.exit_code == 0
    texts = _texts(settings.database_url)
    assert [t for _, _, t in texts] == [
        "notes | title: Kettle | body: The kettle stopped heating after a week."
    ]


# -- names that are not UTF-8 ---------------------------------------------------------------------
@pytest.mark.skipif(os.name == "nt", reason="POSIX byte names")
def test_non_utf8_file_and_folder_names(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    root.mkdir()
    raw_root = os.fsencode(root)
    cafe = os.fsdecode(raw_root + b"/caf\xe9.db")
    resumes = os.fsdecode(raw_root + b"/r\xe9sum\xe9s/notes.db")
    try:
        make_db(Path(cafe), [(1, "Cafe", "The espresso machine at the cafe leaks water.")])
    except (UnicodeEncodeError, OSError):
        pytest.skip("this file system refuses names that are not UTF-8")
    make_db(Path(resumes), [(1, "CV", "A resume listing ten years of warehouse management.")])
    make_db(root / "plain.db", [(1, "Plain", CLEAN)])
    make_db(root / "報告.db", [(1, "報告", "四半期の売上報告書です。")])
    summary = run([root])
    assert summary.exit_code == 0 and summary.files_ok == 4, summary.failures
    shown_cafe = display_path(cafe)
    assert shown_cafe == str(root) + "/caf\\xe9.db" and real_path(shown_cafe) == cafe
    paths = set(_sources(settings.database_url))
    assert paths == {shown_cafe, display_path(resumes), str(root / "plain.db"), str(root / "報告.db")}
    hit = dbembed.search("espresso machine leaking", k=1, settings=settings)[0]
    assert hit.path == shown_cafe
    only = dbembed.search("espresso", k=3, settings=settings, file="*caf\\xe9.db")
    assert only and all(h.path == shown_cafe for h in only)
    side = json.loads(Path(cafe + ".embedding_metadata.json").read_text(encoding="utf-8"))
    assert side["file_path"] == shown_cafe and side["status"] == "processed"
    status = json.dumps(dbembed.status(settings).as_dict(), default=str)  # JSON-safe: no lone surrogates
    assert "\\udc" not in status
    # A root given with undecodable bytes works too, and a rerun is stable.
    again = run([os.fsdecode(raw_root + b"/r\xe9sum\xe9s")])
    assert again.exit_code == 0 and again.files_skipped == 1


def test_display_form_is_reversible_and_unique() -> None:
    names = [b"/d/caf\xe9.db", b"/d/a\\xe9.db", b"/d/a\\\\xe9.db", b"/d/a\\b\xff.db", b"/d/plain.db"]
    shown = [display_path(os.fsdecode(n)) for n in names]
    assert len(set(shown)) == len(names)
    assert [os.fsencode(real_path(s)) for s in shown] == names
    assert shown[0] == "/d/caf\\xe9.db" and shown[4] == "/d/plain.db"
    assert all(s.encode("utf-8") for s in shown)


# -- vectors: the provider boundary ---------------------------------------------------------------
def test_check_vectors_rejects_nan_zero_wrong_length() -> None:
    raw = [
        [1.0, 0.0, 0.0],
        [float("nan"), 1.0, 0.0],
        [0.0, 0.0, 0.0],
        [1.0, 2.0],
        [None, None, None],
        [1e300, 1, 1],
    ]
    vecs, bad = check_vectors(raw, 6, 3)
    assert set(bad) == {1, 2, 3, 4, 5}
    assert "NaN" in bad[1] and "zeros" in bad[2] and "2 dimensions, expected 3" in bad[3]
    np.testing.assert_allclose(vecs[0], [1.0, 0.0, 0.0])
    assert not vecs[1:].any()


def test_openai_bad_vectors_rejected_like_refused_texts(tmp_path: Path, settings) -> None:  # noqa: ANN001
    from tests.fake_servers import FakeEmbeddingServer, Faults

    root = tmp_path / "tree"
    rows = [
        (i + 1, f"Ticket {i}", f"Customer {i} asks about order {i} and the refund policy.") for i in range(12)
    ]
    rows[2] = (3, "NaN", "This text gets a NaN vector <<NAN>> from the server.")
    rows[5] = (6, "Zero", "This text gets an all-zero vector <<ZERO>> from the server.")
    rows[8] = (9, "Short", "This text gets a vector one dimension short <<SHORT>>.")
    rows[10] = (11, "Null", "This text gets nulls <<NULL>> instead of numbers.")
    make_db(root / "a.db", rows)
    make_db(root / "b.db", tickets_for(3))
    faults = Faults(
        bad_vectors={"<<NAN>>": "nan", "<<ZERO>>": "zeros", "<<SHORT>>": "short", "<<NULL>>": "null"}
    )
    with FakeEmbeddingServer(faults) as srv:
        s = settings.model_copy(
            update={
                "model": "openai:text-embedding-3-small",
                "openai_base_url": srv.url + "/v1",
                "max_retries": 1,
            }
        )
        first = dbembed.index([str(root)], s)
        assert first.exit_code == 0 and first.files_ok == 2, first.failures
        src = _sources(s.database_url)[str(root / "a.db")]
        assert src["status"] == "indexed" and src["rejected_chunks"] == 4 and src["chunks"] == 8
        assert "rejected 4 chunk(s)" in (src["error"] or "")
        rej = [r for r in _rejections(s.database_url) if r[1] == "chunk"]
        reasons = {r[3]: r[5] for r in rej}
        assert set(reasons) == {"3", "6", "9", "11"}
        assert "NaN" in reasons["3"] and "zeros" in reasons["6"] and "1535 dimensions" in reasons["9"]
        status = dbembed.status(s).as_dict()["collections"][0]["rejections"]
        assert status["chunks"] == 4 and status["by_file"][0]["file"] == str(root / "a.db")
        assert {i["row_key"] for i in status["by_file"][0]["items"]} == {"3", "6", "9", "11"}
        hits = dbembed.search("gets a NaN vector", k=20, settings=s)
        assert all("<<" not in h.text for h in hits) and all(np.isfinite(h.score) for h in hits)
        # Retried next run: the server is healthy now, so the rejected chunks are embedded and stored.
        srv.faults.bad_vectors = {}
        second = dbembed.index([str(root)], s)
        assert second.exit_code == 0 and second.texts_embedded == 4
        src = _sources(s.database_url)[str(root / "a.db")]
        assert src["rejected_chunks"] == 0 and src["chunks"] == 12 and src["error"] is None
        assert _rejections(s.database_url) == []


def test_bedrock_bad_vectors_fail_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dbembed.config import load_settings
    from dbembed.embed.bedrock import BedrockProvider
    from tests.fake_servers import FakeEmbeddingServer, Faults

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE1234")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    texts = [f"text number {i}" for i in range(10)]
    texts[1] += " <<NAN>>"
    texts[4] += " <<ZERO>>"
    texts[7] += " <<SHORT>>"
    faults = Faults(bad_vectors={"<<NAN>>": "nan", "<<ZERO>>": "zeros", "<<SHORT>>": "short"})
    with FakeEmbeddingServer(faults) as srv:
        s = load_settings(
            data_dir=tmp_path, aws_region="us-east-1", bedrock_endpoint_url=srv.url, retry_backoff_s=0.01
        )
        for model in ("cohere.embed-multilingual-v3", "amazon.titan-embed-text-v2:0"):
            p = BedrockProvider(model, s)
            vecs, failures = p.embed_documents_partial(texts)
            assert sorted(failures) == [1, 4, 7], model
            good = [i for i in range(10) if i not in failures]
            np.testing.assert_allclose(np.linalg.norm(vecs[good], axis=1), 1.0, rtol=1e-5)
            assert not vecs[[1, 4, 7]].any()


# -- tables ----------------------------------------------------------------------------------------
def _partly_bad(path: Path) -> None:
    """Good tables beside one with an unknown collation, a missing virtual-table module and a view
    that errors."""
    conn = sqlite3.connect(path)
    conn.create_collation("klingon", lambda a, b: (a > b) - (a < b))
    conn.execute("CREATE TABLE tickets (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO tickets VALUES (1, 'The blender makes a loud grinding noise on high speed.')")
    conn.execute("CREATE TABLE words (w TEXT COLLATE klingon PRIMARY KEY, gloss TEXT) WITHOUT ROWID")
    conn.executemany(
        "INSERT INTO words VALUES (?, ?)",
        [("qapla", "success, said after a victory"), ("nuqneH", "hello there")],
    )
    conn.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO products VALUES (1, 'Stainless steel kettle with a whistle')")
    conn.execute("CREATE VIEW broken AS SELECT id, body, no_such_function(body) AS x FROM tickets")
    conn.commit()
    conn.close()
    # A virtual table whose module this reader lacks (written straight into the schema, as another
    # program with that extension would have).
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES"
        " ('table', 'vecs', 'vecs', 0, 'CREATE VIRTUAL TABLE vecs USING vec0(embedding float[4])')"
    )
    conn.commit()
    conn.close()


def test_unreadable_tables_are_skipped_and_the_rest_indexed(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    root.mkdir()
    path = root / "mixed.db"
    _partly_bad(path)
    before = path.read_bytes()
    summary = run([root], include_views=True)
    assert summary.exit_code == 0 and summary.files_ok == 1, summary.failures
    src = _sources(settings.database_url)[str(path)]
    assert src["status"] == "indexed" and src["rejected_tables"] == 3
    rej = {r[2]: r[5] for r in _rejections(settings.database_url) if r[1] == "table"}
    assert set(rej) == {"words", "vecs", "broken"}
    assert "klingon" in rej["words"] and "vec0" in rej["vecs"] and "no_such_function" in rej["broken"]
    tables = {t for t, _, _ in _texts(settings.database_url)}
    assert tables == {"tickets", "products"}
    assert dbembed.search("grinding blender", k=1, settings=settings)[0].table == "tickets"
    assert path.read_bytes() == before


def test_corrupt_page_in_one_table_keeps_the_others(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    root.mkdir()
    path = root / "shop.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size = 1024")
    conn.execute("CREATE TABLE reviews (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany(
        "INSERT INTO reviews VALUES (?, ?)",
        [(i, f"Review {i}: the hiking boots run small " * 3) for i in range(200)],
    )
    conn.executemany(
        "INSERT INTO notes VALUES (?, ?)", [(i, f"Note {i} about the warehouse move") for i in range(5)]
    )
    conn.commit()
    (root_page,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'reviews'").fetchone()
    conn.close()
    first = run([root])
    assert first.exit_code == 0
    stored_reviews = [r for r in _texts(settings.database_url) if r[0] == "reviews"]
    assert len(stored_reviews) == 200
    # Scribble over a leaf page of `reviews` (not its root, not the schema): one table's b-tree is corrupt.
    with sqlite3.connect(path) as c:
        leaves = (
            [
                p
                for (p,) in c.execute(
                    "SELECT pageno FROM dbstat WHERE name = 'reviews' AND pagetype = 'leaf'"
                )
            ]
            if _has_dbstat(c)
            else []
        )
    page = leaves[len(leaves) // 2] if leaves else root_page + 5
    data = bytearray(path.read_bytes())
    start = (page - 1) * 1024
    data[start : start + 1024] = b"\xff" * 1024
    path.write_bytes(bytes(data))
    second = run([root])
    assert second.exit_code == 0 and second.files_ok == 1, second.failures
    src = _sources(settings.database_url)[str(path)]
    assert src["status"] == "indexed" and src["rejected_tables"] == 1
    (table_rej,) = [r for r in _rejections(settings.database_url) if r[1] == "table"]
    assert table_rej[2] == "reviews" and "malformed" in table_rej[5]
    # What the index held of the unreadable table is kept; the other table is indexed.
    texts = _texts(settings.database_url)
    assert (
        len([r for r in texts if r[0] == "reviews"]) == 200
        and len([r for r in texts if r[0] == "notes"]) == 5
    )


def _has_dbstat(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1 FROM dbstat LIMIT 1").fetchall()
    except sqlite3.Error:
        return False
    return True


# -- rows ------------------------------------------------------------------------------------------
def test_a_row_whose_document_fails_is_rejected_alone(
    tmp_path: Path,
    settings,
    run,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    from dbembed.text import chunk as chunk_mod

    real_chunk = chunk_mod.Chunker.chunk

    def buggy(self, text: str) -> list[str]:  # noqa: ANN001 - stands in for a bug of ours on odd data
        if "TRIGGER-BUG" in text:
            raise IndexError("list index out of range")
        return real_chunk(self, text)

    monkeypatch.setattr(chunk_mod.Chunker, "chunk", buggy)
    root = tmp_path / "tree"
    make_db(
        root / "a.db", [(1, "ok", CLEAN), (2, "bad", "TRIGGER-BUG in this row"), (3, "ok2", "Late delivery.")]
    )
    summary = run([root])
    assert summary.exit_code == 0 and summary.files_ok == 1
    src = _sources(settings.database_url)[str(root / "a.db")]
    assert src["rejected_rows"] == 1 and src["chunks"] == 2
    (rej,) = _rejections(settings.database_url)
    assert rej[1:4] == ("row", "tickets", "2") and "IndexError: list index out of range" in rej[5]


# -- files -----------------------------------------------------------------------------------------
def test_a_bug_while_reading_one_file_fails_that_file_only(
    tmp_path: Path,
    settings,
    run,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    from dbembed.read import source as source_mod

    real_tables = source_mod.SqliteSource.tables

    def buggy(self):  # noqa: ANN001, ANN202 - a bug of ours that only one file's shape triggers
        if self.path.name == "odd.db":
            raise KeyError("rootpage")
        return real_tables(self)

    monkeypatch.setattr(source_mod.SqliteSource, "tables", buggy)
    root = tmp_path / "tree"
    make_db(root / "good.db", tickets_for(1))
    make_db(root / "odd.db", tickets_for(2))
    summary = run([root])
    assert summary.exit_code == 1 and summary.files_ok == 1 and summary.files_failed == 1
    (fail,) = summary.failures
    assert fail["file"].endswith("odd.db") and fail["error"] == "internal error: KeyError: 'rootpage'"
    with psycopg.connect(settings.database_url) as conn:
        (meta,) = conn.execute("SELECT meta FROM dbembed.sources WHERE path LIKE '%%odd.db'").fetchone()  # type: ignore[misc]
    assert meta["retryable"] is True


# -- runs ------------------------------------------------------------------------------------------
def test_run_ending_by_exception_is_recorded_failed(
    tmp_path: Path,
    settings,
    run,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    import dbembed.store.collections as coll_mod

    def boom(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("index build exploded")

    monkeypatch.setattr(coll_mod, "ensure_hnsw", boom)
    make_db(tmp_path / "tree" / "a.db", tickets_for(1))
    with pytest.raises(RuntimeError):
        run([tmp_path / "tree"])
    (r,) = dbembed.status(settings).as_dict()["collections"][0]["runs"]
    assert r["status"] == "failed" and r["error"] == "RuntimeError: index build exploded"


def test_dead_run_shows_abandoned_and_its_queued_files_are_picked_up(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    make_db(root / "a.db", tickets_for(1))
    make_db(root / "b.db", tickets_for(2))
    run([root])
    with psycopg.connect(settings.database_url) as conn:
        (cid,) = conn.execute("SELECT id FROM dbembed.collections").fetchone()  # type: ignore[misc]
        # A run whose worker died mid-way: still 'running', heartbeat long gone, its files left queued.
        conn.execute(
            "INSERT INTO dbembed.runs (collection_id, worker, roots, status, started_at, heartbeat_at)"
            " VALUES (%s, 'host:1:dead', %s, 'running', now() - interval '1 hour', now() - interval '1 hour')",
            (cid, [str(root) + "/"]),
        )
        conn.execute("UPDATE dbembed.sources SET status = 'queued'")
    runs = dbembed.status(settings).as_dict()["collections"][0]["runs"]
    assert runs[0]["status"] == "abandoned"
    summary = run([root])
    assert summary.files_ok == 2 and summary.exit_code == 0
    statuses = [r["status"] for r in dbembed.status(settings).as_dict()["collections"][0]["runs"]]
    assert statuses == ["ok", "abandoned", "ok"]
    with psycopg.connect(settings.database_url) as conn:
        stored = conn.execute("SELECT status FROM dbembed.runs WHERE worker = 'host:1:dead'").fetchone()
    assert stored == ("abandoned",)


# -- search ----------------------------------------------------------------------------------------
def test_search_table_filter_is_case_insensitive_like_sqlite(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    make_db(tmp_path / "tree" / "a.db", tickets_for(1))
    run([tmp_path / "tree"])
    for name in ("tickets", "TICKETS", "Tickets"):
        hits = dbembed.search("password reset", k=2, settings=settings, table=name)
        assert hits and all(h.table == "tickets" for h in hits)
    assert dbembed.search("password reset", k=2, settings=settings, table="tïckets") == []
    # Queries cross the same hygiene as documents: full-width and NUL-laden queries work.
    assert dbembed.search("ｐａｓｓｗｏｒｄ\x00 reset", k=1, settings=settings)


# -- threads ---------------------------------------------------------------------------------------
def test_local_provider_shared_by_threads_never_raises(minilm) -> None:  # noqa: ANN001
    """HTTP request threads share one provider, and chunking (provider.tokenizer()) runs beside
    encode: the Hugging Face tokenizer inside the model must never be reached from two threads."""
    import threading
    import time

    text = "The package arrived crushed and the customer asks for a refund for the damaged order. " * 6
    errors: list[str] = []
    stop = time.monotonic() + 6

    def tokenize() -> None:
        tok = minilm.tokenizer()
        try:
            while time.monotonic() < stop:
                assert len(tok.token_spans(text)) > 100
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    def encode(query: bool) -> None:
        try:
            while time.monotonic() < stop:
                if query:
                    minilm.embed_query(text)
                else:
                    minilm.embed_documents([text] * 8)
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=tokenize), threading.Thread(target=encode, args=(False,))]
    threads += [threading.Thread(target=encode, args=(True,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert minilm.new_tokenizer() is not minilm.tokenizer()
