"""End-to-end: real SQLite trees, the real embedded PostgreSQL, the real MiniLM model."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import psycopg
import pytest

import dbembed.service
from dbembed.errors import CollectionMismatch
from tests.helpers import PLANTED, index_state, make_db, make_tree, tickets_for


@pytest.fixture()
def run(settings, minilm):  # noqa: ANN001, ANN201
    """index() with the session's model (loaded once) and the per-test database."""
    dbembed.service.default_providers.put(minilm, settings)

    def _run(roots, **overrides):  # noqa: ANN001, ANN202
        return dbembed.index([str(r) for r in roots], settings, **overrides)

    return _run


def test_index_search_status_and_sidecar(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    paths = make_tree(root, files=4)
    summary = run([root])
    assert summary.files_ok == 4 and summary.files_failed == 0 and summary.exit_code == 0
    assert summary.rows == 4 * 12 + 1  # the numbers-only metrics table has nothing to embed
    assert summary.chunks == 4 * 12 + 1
    hits = dbembed.search("refund for a damaged order", k=3, settings=settings)
    assert hits[0].text.endswith(PLANTED) and hits[0].path == str(paths[0]) and hits[0].table == "tickets"
    assert hits[0].row_key == "999"
    assert hits[0].score > hits[-1].score
    # filters
    only = dbembed.search("refund for a damaged order", k=3, settings=settings, file="load_1.db")
    assert only and all(h.path.endswith("load_1.db") for h in only)
    # sidecar per document 000
    side = json.loads(Path(str(paths[0]) + ".embedding_metadata.json").read_text())
    for key in ("file_path", "file_size", "processed_at", "embedding_model", "status", "chunk_count"):
        assert key in side
    assert side["status"] == "processed" and side["chunk_count"] == 13 and side["file_path"] == str(paths[0])
    st = dbembed.status(settings).as_dict()
    coll = st["collections"][0]
    assert coll["files"]["indexed"] == 4 and coll["chunks"] == 49 and coll["runs"][0]["status"] == "ok"


def test_bad_files_recorded_and_run_goes_on(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    make_tree(root, files=2)
    (root / "notsqlite.db").write_text("hello, I am a text file pretending to be a database")
    (root / "empty.db").write_bytes(b"")
    good = make_db(root / "soon_corrupt.db", tickets_for(7))
    first = run([root])
    assert first.files_failed == 2 and first.files_ok == 3 and first.exit_code == 1
    reasons = {Path(f["file"]).name: f["error"] for f in first.failures}
    assert "SQLite" in reasons["notsqlite.db"] or "header" in reasons["notsqlite.db"]
    assert "empty" in reasons["empty.db"] or "0 bytes" in reasons["empty.db"]
    before = [r for r in index_state(settings.database_url) if r[1] == str(good)]
    assert before
    # Corrupt a file that was indexed: it fails, and what it had indexed stays.
    data = good.read_bytes()
    good.write_bytes(data[:100] + b"\x00" * 50 + data[150 : len(data) // 2])
    second = run([root])
    assert any(Path(f["file"]).name == "soon_corrupt.db" for f in second.failures)
    after = [r for r in index_state(settings.database_url) if r[1] == str(good)]
    assert after == before


def test_rerun_unchanged_embeds_nothing(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    make_tree(root, files=3)
    first = run([root])
    state = index_state(settings.database_url)
    again = run([root])
    assert again.files_ok == 0 and again.files_skipped == 3 and again.texts_embedded == 0
    assert index_state(settings.database_url) == state
    assert first.texts_embedded > 0


def test_row_level_diff_only_embeds_changed_rows(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    paths = make_tree(root, files=2)
    run([root])
    conn = sqlite3.connect(paths[1])
    conn.execute("UPDATE tickets SET body = 'The espresso machine leaks water from the bottom.' WHERE id = 2")
    conn.execute("DELETE FROM tickets WHERE id = 3")
    conn.execute(
        "INSERT INTO tickets VALUES (50, 'New', 'My parcel was left in the rain and the box is soaked.', 2)"
    )
    conn.commit()
    conn.close()
    second = run([root])
    assert second.files_ok == 1 and second.files_skipped == 1
    assert second.texts_embedded == 2  # the changed and the new row, nothing else
    rows = {(r[1], r[3]) for r in index_state(settings.database_url)}
    assert (str(paths[1]), "3") not in rows and (str(paths[1]), "50") in rows
    hit = dbembed.search("espresso machine leaking", k=1, settings=settings)[0]
    assert hit.row_key == "2" and hit.path == str(paths[1])


def test_duplicate_texts_embedded_once(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    root = tmp_path / "dups"
    same = [(i + 1, "Same subject", "Exactly the same complaint text in every file.") for i in range(10)]
    for i in range(3):
        make_db(root / f"d{i}.db", same)
    summary = run([root])
    assert summary.chunks == 30 and summary.texts_embedded == 1 and summary.texts_reused == 29


def test_vanished_file_chunks_removed_or_kept(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    paths = make_tree(root, files=3)
    run([root])
    paths[2].unlink()
    summary = run([root])
    assert summary.files_missing == 1
    assert not [r for r in index_state(settings.database_url) if r[1] == str(paths[2])]
    paths[1].unlink()
    run([root], keep_missing=True)
    assert [r for r in index_state(settings.database_url) if r[1] == str(paths[1])]
    with psycopg.connect(settings.database_url) as conn:
        status = conn.execute(
            "SELECT status FROM dbembed.sources WHERE path = %s", (str(paths[1]),)
        ).fetchone()
    assert status == ("missing",)


def test_settling_files_are_left_pending(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    make_tree(root, files=2)
    summary = run([root], settle_s=3600)
    assert summary.files_pending == 2 and summary.files_ok == 0
    later = run([root], settle_s=0)
    assert later.files_ok == 2


def test_other_model_never_mixes_vectors(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    make_tree(root, files=1)
    run([root], collection="shared")
    with psycopg.connect(settings.database_url) as conn:
        conn.execute("UPDATE dbembed.collections SET model = 'local:other-model' WHERE name = 'shared'")
    with pytest.raises(CollectionMismatch, match="must not mix"):  # a named model must be the collection's
        run([root], collection="shared", model="local:all-MiniLM-L6-v2")


def test_overlapping_roots_index_each_file_once(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    make_tree(root, files=3)
    summary = run([root, root / "host0", root / "host0" / "day0" / "load_0.db"])
    assert summary.files_found == 3 and summary.files_ok == 3
    rows = index_state(settings.database_url)
    assert len(rows) == len(set(rows)) == 3 * 12 + 1


def test_force_rereads_every_file_but_embeds_nothing_unchanged(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    root = tmp_path / "tree"
    make_tree(root, files=3)
    run([root])
    state = index_state(settings.database_url)
    forced = run([root], force=True)
    assert forced.files_ok == 3 and forced.files_skipped == 0
    assert forced.texts_embedded == 0 and forced.chunks == 0  # every row unchanged: nothing rewritten
    assert index_state(settings.database_url) == state


def test_a_later_sighting_is_never_overwritten_by_an_older_one(tmp_path: Path, settings, run) -> None:  # noqa: ANN001
    """Concurrent discoveries: an upsert whose statement began earlier must not make a file look unseen
    since another worker's discovery started (that worker would then delete the file's chunks)."""
    from dbembed.discover import discover
    from dbembed.store.sources import upsert_discovered, vanished

    root = tmp_path / "tree"
    make_tree(root, files=2)
    run([root])
    found = list(discover([str(root)], settings.sources))
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        cid = conn.execute("SELECT id FROM dbembed.collections").fetchone()[0]
        # Another worker saw the files "later" than this upsert will write.
        conn.execute("UPDATE dbembed.sources SET seen_at = clock_timestamp() + interval '1 hour'")
        later = conn.execute("SELECT min(seen_at) FROM dbembed.sources").fetchone()[0]
        upsert_discovered(conn, cid, found, settle_cutoff=time.time())
        assert conn.execute("SELECT min(seen_at) FROM dbembed.sources").fetchone()[0] == later
        since = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        assert vanished(conn, cid, [str(root) + "/"], since) == []


def test_document_format_change_redocuments_rows_and_embeds_each_new_text_once(
    tmp_path: Path, settings, run  # noqa: ANN001
) -> None:
    """A new ``document_format`` takes effect on the next run without --force: changed documents
    are rewritten (each distinct new text embedded once), a templated table keeps its documents and
    vectors, nothing is lost, and ``--dry-run`` predicts it."""
    from dbembed.config import TableOverride

    root = tmp_path / "tree"
    a = make_db(root / "a.db", tickets_for(0))
    make_db(root / "b.db", tickets_for(0))  # the same rows: every text is embedded once
    conn = sqlite3.connect(a)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes VALUES (?, ?)", [(1, "Call before noon."), (2, "Fragile: glass.")])
    conn.commit()
    conn.close()
    tables = {"notes": TableOverride(template="Note: {body}")}
    first = run([root], tables=tables)
    assert first.texts_embedded == 12 + 2
    before = index_state(settings.database_url)
    texts = {(r[1], r[2], r[3]): r[6] for r in before}
    assert texts[(str(a), "tickets", "1")] == f"tickets | subject: Ticket 0-0 | body: {tickets_for(0)[0][2]}"

    plan = dbembed.dry_run([str(root)], settings, tables=tables, document_format="values")
    assert plan.files_changed == 2 and plan.files_unchanged == 0
    assert plan.rows_changed == 24 and plan.rows_unchanged == 2 and plan.texts_to_embed == 12
    assert index_state(settings.database_url) == before  # a dry run writes nothing

    second = run([root], tables=tables, document_format="values")
    assert second.files_ok == 2 and second.files_failed == 0
    assert second.texts_embedded == 12 and second.chunks == 24  # the notes were not rewritten
    after = index_state(settings.database_url)
    assert [r[:4] for r in after] == [r[:4] for r in before]  # every row still indexed, none lost
    new = {(r[1], r[2], r[3]): r[6] for r in after}
    assert new[(str(a), "tickets", "1")] == f"Ticket 0-0 | {tickets_for(0)[0][2]}"
    assert new[(str(a), "notes", "1")] == texts[(str(a), "notes", "1")] == "Note: Call before noon."
    hit = dbembed.search("grinding noise from the blender", k=1, settings=settings, mode="vector")[0]
    assert hit.text == "Ticket 0-4 | The blender makes a loud grinding noise on the highest speed."

    again = run([root], tables=tables, document_format="values")
    assert again.files_skipped == 2 and again.texts_embedded == 0
    back = run([root], tables=tables, document_format="columns")
    assert back.files_ok == 2 and back.texts_embedded == 12
    assert {r[6] for r in index_state(settings.database_url) if r[2] == "tickets"} == {
        f"subject: Ticket 0-{i} | body: {t[2]}" for i, t in enumerate(tickets_for(0))
    }
