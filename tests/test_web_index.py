"""The index page at ``/`` shows the index, not only a search box: collections, files by status
(failed ones with their reasons), recent runs with a chart, and search; read in headless Chromium
the way a person reads it."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from dbembed.chat import open_store
from dbembed.store.api_keys import create_key
from tests.helpers import PLANTED, make_db, tickets_for
from tests.test_web import ARGS, CHROMIUM, server  # noqa: F401 - the fixture is used by name


def test_page_shows_collections_failed_files_with_reasons_runs_and_search(
    server: str, settings: Any, minilm: Any, tmp_path: Any  # noqa: F811
) -> None:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    import dbembed.service

    tickets = tickets_for(3)
    tickets[5] = (6, "Damaged", PLANTED)
    make_db(tmp_path / "files" / "support.db", tickets)
    broken = tmp_path / "files" / "broken.db"
    broken.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    dbembed.index([tmp_path / "files"], settings=settings)
    make_db(tmp_path / "files" / "later.db", tickets_for(4, 5))
    dbembed.index([tmp_path / "files"], settings=settings)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        reason = conn.execute("SELECT error FROM dbembed.sources WHERE path LIKE '%broken.db'").fetchone()[0]
        conn.execute("UPDATE dbembed.sources SET rejected_rows = 2 WHERE path LIKE '%support.db'")
    assert reason
    with open_store(settings) as store:
        _, token = create_key(store.conn, "t1", "ops")

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(server + "/")
            assert not page.locator("#overview").is_visible()  # nothing shows before a key is given
            page.fill("#key", token)
            page.click("#save-key")
            page.wait_for_selector("#collections tbody tr")
            coll = page.locator("#collections tbody").inner_text()
            assert "all-minilm-l6-v2" in coll and "local:all-MiniLM-L6-v2" in coll and "384" in coll
            assert "2 indexed" in coll and "1 failed" in coll

            # with a failure in the index, the file list opens on the failed files and their reasons
            page.wait_for_selector("#file-counts button.active:has-text('failed (1)')")
            rows = page.locator("#files-table tbody tr")
            sync_api.expect(rows).to_have_count(1)
            failed = rows.first.inner_text()
            assert "broken.db" in failed and reason in failed and failed.startswith("failed")

            page.click("#file-counts button:has-text('all (3)')")
            sync_api.expect(rows).to_have_count(3)
            support = page.locator("#files-table tbody tr:has-text('support.db')").inner_text().split("\t")
            assert support[0] == "indexed" and support[4] == "2"  # the rejected rows show

            runs = page.locator("#runs-table tbody tr")
            assert runs.count() == 2
            assert page.locator("#runs-chart svg rect.bar").count() == 2
            assert page.locator("#runs-chart svg polyline.rate").count() == 1
            titles = page.locator("#runs-chart svg rect.bar title").all_text_contents()
            assert any("2 files" in t for t in titles) and any("1 files" in t for t in titles)
            assert "chunks/s" in page.locator("#runs-chart").inner_text()

            page.fill("#file-q", "customer wants money back for a broken delivery")
            page.press("#file-q", "Enter")
            first = page.locator("#file-results .hit").first
            first.wait_for()
            assert PLANTED in first.locator(".text").inner_text()
        finally:
            browser.close()
