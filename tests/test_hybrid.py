"""Hybrid search: lexical tokens, the lexical index beside the vectors, RRF, modes on every surface,
the migration backfill of an existing collection, and chat memory modes.

Real SQLite files, the embedded PostgreSQL and the bundled MiniLM (English-only: a Japanese phrase
is found by the lexical side, not by the model).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

import dbembed.service
from dbembed.store.search import RRF_K, rrf
from dbembed.text.lexical import lexical_tokens, query_tokens, tsquery_text, tsvector_binary, tsvector_text

JP_ROWS = [
    "富士山の頂上で見た初日の出は、一生忘れられない美しさでした。",
    "注文した商品がまだ届いていません。配送状況を教えてください。",
    "返品の手続き方法を知りたいです。",
    "会議は来週の火曜日に延期されました。",
    "新しいパスワードの設定方法がわかりません。",
    "京都の紅葉は十一月の中旬が見頃です。",
    "請求書番号 INV-2024-0042 の金額が見積もりと違います。",
]
EN_ROWS = [
    "The package arrived crushed and the customer asks for a refund for the damaged order.",
    "The lighthouse keeper counts the passing whales at dawn.",
    "A pallet of frozen salmon thawed overnight on the loading dock.",
    "Gift wrap the ceramic teapot in blue paper before shipping.",
]


# --------------------------------------------------------------------------------------------
# tokens (pure)
# --------------------------------------------------------------------------------------------
def test_cjk_runs_become_overlapping_bigrams_and_other_scripts_words() -> None:
    assert lexical_tokens("東京都庁") == ["東京", "京都", "都庁"]
    assert lexical_tokens("の") == ["の"]  # a one-character run is kept
    assert lexical_tokens("한국어 검색") == ["한국", "국어", "검색"]
    assert lexical_tokens("Hello, World!") == ["hello", "world"]
    assert lexical_tokens("Straße") == ["strasse"]  # case folding
    assert lexical_tokens("हिन्दी भाषा") == ["हिन्दी", "भाषा"]  # combining marks stay in their word


def test_width_variants_match_after_nfkc() -> None:
    assert lexical_tokens("ｶﾀｶﾅ ＡＢＣ１２３") == lexical_tokens("カタカナ abc123")


def test_codes_give_the_whole_code_and_its_parts() -> None:
    assert lexical_tokens("INV-2024-0042") == ["inv-2024-0042", "inv", "2024", "0042"]
    assert "user_id" in lexical_tokens("user_id = 7") and "id" in lexical_tokens("user_id = 7")
    assert lexical_tokens("x" * 65) == []  # blobs are not tokens
    assert query_tokens("a b a") == ["a", "b"]


def test_tsvector_encodings_round_trip_through_postgres(database_url: str) -> None:
    texts = ["東京都庁の都庁 it's a\\b INV-2024-0042", "b a b", "", "z" * 10 + " ü ü ü"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE t (i int, lex tsvector)")
        with conn.cursor() as cur, cur.copy("COPY t (i, lex) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "bytea"])
            for i, text in enumerate(texts):
                copy.write_row((i, tsvector_binary(lexical_tokens(text))))
        for i, text in enumerate(texts):
            got = conn.execute("SELECT lex::text FROM t WHERE i = %s", (i,)).fetchone()
            want = conn.execute(
                "SELECT %s::tsvector::text", (tsvector_text(lexical_tokens(text)),)
            ).fetchone()
            assert got == want
        # Lexemes are verbatim: a query built from the same tokens matches, quotes included.
        q = tsquery_text(query_tokens("it's"), "&")
        assert conn.execute("SELECT count(*) FROM t WHERE lex @@ %s::tsquery", (q,)).fetchone() == (1,)
        two = conn.execute("SELECT lex::text FROM t WHERE i = 1").fetchone()
        assert two == ("'a':2 'b':1,3",)


def test_rrf_math() -> None:
    fused = rrf([[1, 2, 3], [3, 4]])
    scores = dict(fused)
    assert scores[3] == pytest.approx(1 / (RRF_K + 3) + 1 / (RRF_K + 1))
    assert scores[1] == pytest.approx(1 / (RRF_K + 1))
    assert scores[4] == pytest.approx(1 / (RRF_K + 2))
    assert [i for i, _ in fused] == [3, 1, 2, 4]  # in both lists beats first in one
    assert [i for i, _ in rrf([[7], [8]])] == [7, 8]  # a tie keeps the first list's order
    assert rrf([[], []]) == []
    assert [i for i, _ in rrf([[1, 2]], k=0)] == [1, 2]


def test_hybrid_fusion_drops_weak_lexical_rows_and_breaks_ties_by_full_match() -> None:
    from dbembed.store.search import fuse

    # A row holding every query token (score 1.0) wins the tie with the vector list's first row.
    assert [i for i, _ in fuse([10, 11], [(20, 1.0), (21, 0.9)])][:2] == [20, 10]
    # Without a full match the vector list's first row wins the tie.
    assert [i for i, _ in fuse([10, 11], [(20, 0.8)])][:2] == [10, 20]
    # Rows under half the best lexical score are not fused at all.
    assert 22 not in dict(fuse([10], [(20, 0.8), (22, 0.3)]))
    assert [i for i, _ in fuse([], [])] == []


# --------------------------------------------------------------------------------------------
# the file index
# --------------------------------------------------------------------------------------------
def _jp_db(path: Path, rows: list[str], extra: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE 日記 (id INTEGER PRIMARY KEY, 本文 TEXT)")
    conn.executemany("INSERT INTO 日記 VALUES (?, ?)", list(enumerate(rows, 1)))
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes VALUES (?, ?)", list(enumerate(extra or EN_ROWS, 1)))
    conn.commit()
    conn.close()
    return path


@pytest.fixture()
def indexed(settings: Any, minilm: Any, tmp_path: Path) -> Any:

    dbembed.service.default_providers.put(minilm)
    root = tmp_path / "tree"
    _jp_db(root / "a" / "diary.db", JP_ROWS)
    _jp_db(
        root / "b" / "other.db",
        ["富士山の頂上で見た初日の出は格別だった。", "今日は雨です。"],
        ["Whales at dawn."],
    )
    summary = dbembed.index([root], settings)
    assert summary.files_ok == 2
    return settings


def test_japanese_phrase_from_a_row_is_found_with_the_default_model(indexed: Any) -> None:
    phrase = "一生忘れられない美しさ"  # a phrase from inside the row, as a user would paste it
    hits = dbembed.search(phrase, 5, settings=indexed)  # default mode: hybrid
    assert "一生忘れられない美しさ" in hits[0].text and hits[0].path.endswith("diary.db")
    assert hits[0].lexical_score == pytest.approx(1.0) and hits[0].lexical_rank == 1
    assert hits[0].rank == 1 and hits[0].vector_score is not None
    lex = dbembed.search(phrase, 5, settings=indexed, mode="lexical")
    assert "一生忘れられない美しさ" in lex[0].text and lex[0].vector_score is None
    assert [h.lexical_rank for h in lex] == [h.rank for h in lex] and lex[0].vector_rank is None
    # Full-width / half-width forms of a code find the same row.
    for q in ("INV-2024-0042", "ＩＮＶ－２０２４－００４２", "inv 2024 0042"):
        assert "INV-2024-0042" in dbembed.search(q, 3, settings=indexed, mode="hybrid")[0].text


def test_english_description_still_finds_its_row(indexed: Any) -> None:
    hits = dbembed.search("refund for a damaged delivery", 3, settings=indexed)
    assert "crushed" in hits[0].text
    assert hits[0].vector_rank == 1
    vec = dbembed.search("refund for a damaged delivery", 3, settings=indexed, mode="vector")
    assert "crushed" in vec[0].text and vec[0].lexical_score is None
    assert vec[0].score == pytest.approx(vec[0].vector_score)
    assert [h.vector_rank for h in vec] == [1, 2, 3] and vec[0].lexical_rank is None


def test_filters_apply_to_both_lists(indexed: Any) -> None:
    phrase = "富士山の頂上で見た初日の出"  # in both files
    both = {h.path.rsplit("/", 1)[-1] for h in dbembed.search(phrase, 20, settings=indexed, mode="lexical")}
    assert both >= {"diary.db", "other.db"}
    for mode in ("lexical", "hybrid", "vector"):
        hits = dbembed.search(phrase, 20, settings=indexed, mode=mode, file="other.db")
        assert hits and {h.path.rsplit("/", 1)[-1] for h in hits} == {"other.db"}, mode
        hits = dbembed.search(phrase, 20, settings=indexed, mode=mode, table="日記")
        assert hits and {h.table for h in hits} == {"日記"}, mode
        hits = dbembed.search("whales at dawn", 20, settings=indexed, mode=mode, table="notes", file="other.db")
        assert [(h.table, h.path.rsplit("/", 1)[-1]) for h in hits] == [("notes", "other.db")], mode
    hybrid = dbembed.search(phrase, 20, settings=indexed, mode="hybrid", file="diary.db", table="日記")
    assert hybrid[0].lexical_rank == 1 and all(h.path.endswith("diary.db") for h in hybrid)
    assert [h.rank for h in hybrid] == list(range(1, len(hybrid) + 1))


def test_query_without_tokens_and_bad_mode(indexed: Any) -> None:
    from dbembed.errors import UsageError

    assert dbembed.search("!!! ???", 5, settings=indexed, mode="lexical") == []
    assert dbembed.search("!!! ???", 5, settings=indexed, mode="hybrid")  # vector side still answers
    with pytest.raises(UsageError, match="mode"):
        dbembed.search("x", 5, settings=indexed, mode="fuzzy")


def test_lexical_mode_does_not_load_the_model(indexed: Any) -> None:
    from dbembed.embed.provider_cache import ProviderCache
    from dbembed.errors import CollectionMismatch
    from dbembed.service import Dbembed

    class NoLoading(ProviderCache):
        def get(self, settings: Any, spec: str | None = None) -> Any:
            raise AssertionError(f"a model was loaded for a lexical search ({spec or settings.model})")

    named = indexed.model_copy(update={"collection": "all-minilm-l6-v2"})
    hits = Dbembed(named, providers=NoLoading()).search("返品の手続き", 3, mode="lexical")
    assert "返品" in hits[0].text
    # A model named beside the collection must be the collection's own, even for words alone.
    with pytest.raises(CollectionMismatch, match="local:no-such-model"):
        dbembed.search("返品の手続き", 3, settings=named, mode="lexical", model="local:no-such-model")


def test_cli_and_http_modes(indexed: Any, minilm: Any) -> None:
    import json

    from typer.testing import CliRunner

    from dbembed.cli.main import app

    dbembed.service.default_providers.put(minilm)
    url = indexed.database_url
    out = CliRunner().invoke(
        app, ["search", "返品の手続き", "--database-url", url, "--json", "--mode", "hybrid"]
    )
    assert out.exit_code == 0, out.stderr
    hits = json.loads(out.stdout)
    assert "返品" in hits[0]["text"]
    assert {"score", "rank", "vector_score", "lexical_score", "vector_rank", "lexical_rank"} <= set(hits[0])
    bad = CliRunner().invoke(app, ["search", "x", "--database-url", url, "--mode", "nope"])
    assert bad.exit_code == 2 and "mode" in bad.stderr

    from fastapi.testclient import TestClient

    from dbembed.api.app import create_app
    from dbembed.store.api_keys import create_key
    from dbembed.store.connection import connect

    with connect(indexed) as conn:
        _, token = create_key(conn, "t1", "alice")
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(indexed)) as client:
        r = client.get("/v1/search", headers=auth, params={"q": "返品の手続き", "mode": "lexical", "k": 3})
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert "返品" in items[0]["text"] and items[0]["vector_score"] is None and items[0]["rank"] == 1
        r = client.get("/v1/search", headers=auth, params={"q": "返品の手続き", "k": 3})
        assert r.json()["items"][0]["lexical_rank"] == 1  # hybrid by default
        assert client.get("/v1/search", headers=auth, params={"q": "x", "mode": "nope"}).status_code == 422
        r = client.get("/v1/memory/search", headers=auth, params={"q": "x", "mode": "lexical"})
        assert r.status_code == 200 and r.json()["items"] == []


# --------------------------------------------------------------------------------------------
# migration 0005: an existing collection gets the lexical index without re-embedding
# --------------------------------------------------------------------------------------------
def _make_pre_0005(url: str) -> None:
    """Turn a current database back into what a pre-0005 version left (no lexical column)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for (rel,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'dbembed' AND tablename ~ '^(chunks|chat_memory)_[0-9]+$'"
        ).fetchall():
            conn.execute(f"ALTER TABLE dbembed.{rel} DROP COLUMN lexical")  # drops its GIN index too
        conn.execute("DROP TABLE dbembed.lexical_backfill")
        conn.execute("DELETE FROM dbembed.schema_migrations WHERE version = 5")


def test_migration_backfills_an_existing_collection_without_reembedding(
    settings: Any, minilm: Any, tmp_path: Path
) -> None:
    from dbembed.store.connection import connect, forget_migrated
    from dbembed.store.migrate import migrate

    dbembed.service.default_providers.put(minilm)
    root = tmp_path / "tree"
    _jp_db(root / "diary.db", JP_ROWS)
    first = dbembed.index([root], settings)
    assert first.files_ok == 1
    url = settings.database_url
    _make_pre_0005(url)
    forget_migrated()  # the schema changed behind this process's back
    texts_before = minilm.usage.texts
    with connect(settings) as conn:
        assert 5 in migrate(conn)
        rel = conn.execute("SELECT 'chunks_' || id FROM dbembed.collections").fetchone()[0]
        assert conn.execute(f"SELECT count(*) FROM dbembed.{rel} WHERE lexical IS NULL").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM dbembed.lexical_backfill").fetchone() == (0,)
        idx = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (f"{rel}_lexical",)
        ).fetchone()
        assert idx and "gin" in idx[0]
        assert migrate(conn) == []  # once only
    hits = dbembed.search("請求書番号", 3, settings=settings, mode="lexical")
    assert "INV-2024-0042" in hits[0].text
    again = dbembed.index([root], settings, force=True)  # a forced re-run reuses every stored vector
    assert again.files_ok == 1 and again.texts_embedded == 0
    assert minilm.usage.texts == texts_before  # nothing was embedded by the migration or the re-run


def test_backfill_is_resumable_and_skips_filled_rows(settings: Any, minilm: Any, tmp_path: Path) -> None:
    from dbembed.store.connection import connect
    from dbembed.store.lexical import backfill_table

    dbembed.service.default_providers.put(minilm)
    _jp_db(tmp_path / "t" / "d.db", JP_ROWS)
    dbembed.index([tmp_path / "t"], settings)
    with connect(settings) as conn:
        rel = conn.execute("SELECT 'chunks_' || id FROM dbembed.collections").fetchone()[0]
        n = conn.execute(f"SELECT count(*) FROM dbembed.{rel}").fetchone()[0]
        conn.execute(f"UPDATE dbembed.{rel} SET lexical = NULL WHERE id % 2 = 0")
        half = conn.execute(f"SELECT count(*) FROM dbembed.{rel} WHERE lexical IS NULL").fetchone()[0]
        assert 0 < half < n
        assert backfill_table(conn, rel, "text", batch=2) == half
        assert backfill_table(conn, rel, "text") == 0
        for text, lex in conn.execute(f"SELECT text, lexical::text FROM dbembed.{rel}").fetchall():
            want = conn.execute(
                "SELECT %s::tsvector::text", (tsvector_text(lexical_tokens(text)),)
            ).fetchone()
            assert (lex,) == want


# --------------------------------------------------------------------------------------------
# chat memory
# --------------------------------------------------------------------------------------------
def test_chat_memory_modes(settings: Any, minilm: Any) -> None:
    from dbembed.chat import Actor, InvalidInput, open_store

    alice, bob = Actor("alice"), Actor("bob")
    with open_store(settings) as store:
        store._provider = minilm
        store.add_turn(alice, 1, "来月の京都旅行で清水寺に行きたい", "紅葉の時期は混雑します。")
        store.add_turn(alice, 2, "How do I bake sourdough bread?", "Feed the starter, then proof overnight.")
        store.add_turn(alice, 3, "My order code is ORD-7731-XK", "Thanks, I will look it up.")
        store.add_turn(bob, 1, "清水寺の拝観時間を教えて", "朝6時からです。")
        assert store.sync().complete
        hits = store.search(alice, "清水寺", k=3)  # default hybrid
        assert hits[0].chat_id == 1 and hits[0].lexical_rank == 1 and hits[0].rank == 1
        assert all(h.chat_id != 1 or "京都" in h.summary for h in hits)
        lex = store.search(alice, "ord-7731-xk", k=3, mode="lexical")
        assert [h.chat_id for h in lex] == [3] and lex[0].lexical_score == pytest.approx(1.0)
        assert lex[0].vector_score is None
        assert store.search(bob, "ORD-7731-XK", k=3, mode="lexical") == []  # another user's words
        vec = store.search(alice, "baking bread at home", k=1, mode="vector")
        assert vec[0].chat_id == 2 and vec[0].lexical_score is None
        with pytest.raises(InvalidInput, match="mode"):
            store.search(alice, "x", mode="nope")


def test_migration_backfills_chat_memory_without_reembedding(settings: Any, minilm: Any) -> None:
    from dbembed.chat import Actor, open_store
    from dbembed.store.connection import connect
    from dbembed.store.migrate import migrate

    alice = Actor("alice")
    with open_store(settings) as store:
        store._provider = minilm
        store.add_turn(alice, 1, "注文番号JP-5531-0098の配送状況を教えて", "確認します。")
        store.add_turn(alice, 2, "How do I bake sourdough bread?", "Feed the starter.")
        assert store.sync().complete
    _make_pre_0005(settings.database_url)
    texts_before = minilm.usage.texts
    with connect(settings) as conn:
        assert 5 in migrate(conn)
        rel = conn.execute("SELECT 'chat_memory_' || id FROM dbembed.chat_memory_spaces").fetchone()[0]
        assert conn.execute(f"SELECT count(*) FROM dbembed.{rel} WHERE lexical IS NULL").fetchone() == (0,)
        assert conn.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", (f"{rel}_lexical",)).fetchone()
    with open_store(settings) as store:
        store._provider = minilm
        hits = store.search(alice, "配送状況", k=2, mode="lexical")
        assert [h.chat_id for h in hits] == [1]
    assert minilm.usage.texts == texts_before  # the backfill embedded nothing


def test_part_of_a_code_finds_its_rows_when_the_parts_are_common(
    settings: Any, minilm: Any, tmp_path: Path
) -> None:
    """"INV-2024" of "INV-2024-0042": not a whole token of any row, and its parts ("inv", "2024") are in
    every row, so they select nothing by themselves; rows holding all the parts are found."""
    from dbembed.store.connection import connect
    from dbembed.store.lexical import forget_stats

    dbembed.service.default_providers.put(minilm)
    root = tmp_path / "codes"
    root.mkdir()
    conn = sqlite3.connect(root / "invoices.db")
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, note TEXT)")
    notes = [f"Invoice INV-2024-{i:04d} for order {i}" for i in range(60)]
    notes += [f"Receipt RCPT-2023-{i:04d} paid in cash" for i in range(60)]
    conn.executemany("INSERT INTO invoices (note) VALUES (?)", [(n,) for n in notes])
    conn.commit()
    conn.close()
    dbembed.index([root], settings.model_copy(update={"settle_s": 0}))
    with connect(settings) as pg:
        rel = pg.execute("SELECT 'chunks_' || id FROM dbembed.collections ORDER BY id DESC").fetchone()[0]
        pg.execute(f"ANALYZE dbembed.{rel}")
    forget_stats()
    hits = dbembed.search("INV-2024", 10, settings=settings, mode="lexical")
    assert len(hits) == 10 and all("INV-2024-" in h.text for h in hits)
