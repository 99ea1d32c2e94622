"""The search page at ``/`` in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Skips only when Chromium or Playwright is absent.  The app runs under uvicorn on loopback.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from dbembed.api.app import create_app
from dbembed.chat import Actor, open_store
from dbembed.store.api_keys import create_key
from tests.helpers import PLANTED, make_db, tickets_for

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture()
def server(settings, minilm) -> Iterator[str]:  # noqa: ANN001
    import uvicorn

    import dbembed.service

    dbembed.service.default_providers.put(minilm)
    app = create_app(settings)
    app.state.dbembed.service.use_provider(minilm)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_page_finds_planted_file_row_and_own_memory(server: str, settings, minilm, tmp_path) -> None:  # noqa: ANN001
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    import dbembed.service

    tickets = tickets_for(3)
    tickets[5] = (6, "Damaged", PLANTED)
    make_db(tmp_path / "files" / "support.db", tickets)
    dbembed.index([tmp_path / "files"], settings=settings)
    with open_store(settings) as store:
        store._provider = minilm
        store.add_turn(Actor("wendy", "t1"), 1, "Remind me: my passport expires in March", "I will remember.")
        store.add_turn(Actor("xavier", "t1"), 1, "xavier's passport number is X123", "ok")
        store.sync()
        _, token = create_key(store.conn, "t1", "wendy")

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(server + "/")
            page.fill("#key", token)
            page.click("#save-key")
            page.wait_for_selector("#whoami:has-text('wendy')")

            page.fill("#file-q", "customer wants money back for a broken delivery")
            page.press("#file-q", "Enter")
            first = page.locator("#file-results .hit").first
            first.wait_for()
            assert PLANTED in first.locator(".text").inner_text()
            meta = first.locator(".meta").inner_text()
            assert "support.db" in meta and "table tickets" in meta and "row " in meta

            page.fill("#memory-q", "travel documents")
            page.click("#memory-form button")
            hit = page.locator("#memory-results .hit").first
            hit.wait_for()
            results = page.locator("#memory-results").inner_text()
            assert "passport expires in March" in results and "X123" not in results

            page.fill("#key", "dbe_000000000000_" + "A" * 43)  # a wrong key shows the API's error
            page.fill("#memory-q", "anything")
            page.click("#memory-form button")
            page.wait_for_selector("#memory-results .error")
            assert "invalid or revoked" in page.locator("#memory-results").inner_text()
        finally:
            browser.close()
