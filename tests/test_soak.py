"""Concurrency soak: real volume with reading/chunking and embedding overlapping, several runs in a row.

This is the test that would have caught ``RuntimeError: Already borrowed`` (the chunker on the
reader thread sharing the Hugging Face tokenizer that ``SentenceTransformer.encode`` uses on the
main thread).  Most documents are longer than the chunker's no-tokenize fast path, so the reader
thread tokenizes nearly every row while the main thread encodes.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

import dbembed.service

_VOCABULARY = (
    "order invoice refund shipping parcel customer warehouse delivery courier damaged late invoice "
    "subscription account password battery screen kitchen blender boots jacket concert ticket credit "
    "card coupon checkout address billing cycle support agent reply escalation manager weekend holiday "
    "Osaka Berlin Lisbon Toronto Nairobi supplier contract discount quarterly report inventory"
)
WORDS = _VOCABULARY.split()


def _text(rng: random.Random, words: int) -> str:
    sentences = []
    left = words
    while left > 0:
        n = min(left, rng.randint(6, 14))
        sentences.append(" ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + ".")
        left -= n
    return " ".join(sentences)


def make_soak_tree(root: Path, files: int = 6, rows_per_file: int = 5200, seed: int = 7) -> int:
    """``files`` databases with three tables each; about a quarter of the texts are distinct (the
    rest repeat, as real data does), so the model's work stays bounded while every row is chunked."""
    rng = random.Random(seed)
    # ~280-360 characters: past the chunker's no-tokenize fast path (max_tokens characters), short
    # enough that the model's share stays small on a CI machine.
    pool = [_text(rng, rng.randint(42, 52)) for _ in range(600)]
    total = 0
    for f in range(files):
        path = root / f"shard{f % 3}" / f"soak_{f}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path)
        # No per-row unique text (a "Ticket 3-17" subject would make every document distinct and the
        # model's share, not the overlap, would dominate the test's time).
        conn.execute("CREATE TABLE tickets (id INTEGER PRIMARY KEY, channel TEXT, body TEXT)")
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT)")
        conn.execute("CREATE TABLE reviews (sku TEXT PRIMARY KEY, review TEXT) WITHOUT ROWID")
        n1, n2 = rows_per_file // 2, rows_per_file // 4
        n3 = rows_per_file - n1 - n2
        conn.executemany(
            "INSERT INTO tickets VALUES (?, ?, ?)",
            [(i, rng.choice(("email", "phone", "chat")), rng.choice(pool)) for i in range(n1)],
        )
        conn.executemany("INSERT INTO notes VALUES (?, ?)", [(i, rng.choice(pool)) for i in range(n2)])
        conn.executemany(
            "INSERT INTO reviews VALUES (?, ?)", [(f"SKU-{f}-{i:06d}", rng.choice(pool)) for i in range(n3)]
        )
        conn.commit()
        conn.close()
        total += rows_per_file
    return total


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_soak_reading_and_embedding_overlap_every_run_ok(tmp_path: Path, settings, minilm) -> None:  # noqa: ANN001
    root = tmp_path / "soak"
    rows = make_soak_tree(root)
    assert rows >= 30_000
    chunk_counts = []
    for i in range(3):
        # A new collection per run: every run reads, chunks and embeds everything again (the store's
        # vector cache is per collection), with the reader thread chunking while the model encodes.
        s = settings.model_copy(update={"collection": f"soak_{i}"})
        dbembed.service.default_providers.put(minilm, s)
        summary = dbembed.index([str(root)], s)
        assert summary.status == "ok", summary.failures
        assert summary.files_ok == 6 and summary.files_failed == 0 and summary.rows == rows
        assert summary.texts_embedded > 0
        chunk_counts.append(summary.chunks)
    assert len(set(chunk_counts)) == 1 and chunk_counts[0] >= rows
