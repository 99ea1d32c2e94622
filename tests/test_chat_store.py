"""Chat history and memory through the library, on the real embedded PostgreSQL and MiniLM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dbembed.chat import Actor, Conflict, InvalidInput, open_store
from dbembed.errors import CollectionMismatch, NotFound

ALICE = Actor("alice")
BOB = Actor("bob")


@pytest.fixture()
def store(serving_settings, minilm):  # noqa: ANN001, ANN201
    """A ChatStore over each transport (psycopg, RDS Data API stand-in): the same tests pass on both."""
    with open_store(serving_settings) as s:
        s._provider = minilm
        yield s


def test_turns_numbering_pagination_and_themes(store) -> None:  # noqa: ANN001
    for i in range(5):
        t = store.add_turn(ALICE, 7, f"question {i}", f"answer {i}", theme="travel" if i == 0 else None)
        assert t.turn_no == i and t.theme == "travel"  # a chat keeps its theme
    store.add_turn(ALICE, 8, "other chat", "ok", theme="cooking")
    with pytest.raises(Conflict):
        store.add_turn(ALICE, 7, "dup", "dup", turn_no=2)
    store.add_turn(ALICE, 7, "explicit", "ok", turn_no=10)

    page = store.list_turns(ALICE, 7, limit=4)
    assert [t.turn_no for t in page.items] == [10, 4, 3, 2]
    page2 = store.list_turns(ALICE, 7, limit=4, cursor=page.next_cursor)
    assert [t.turn_no for t in page2.items] == [1, 0] and page2.next_cursor is None

    chats = store.list_chats(ALICE, limit=1)
    assert [c.chat_id for c in chats.items] == [7]  # most recently active first
    rest = store.list_chats(ALICE, limit=1, cursor=chats.next_cursor)
    assert [(c.chat_id, c.theme, c.turns) for c in rest.items] == [(8, "cooking", 1)]
    assert rest.next_cursor is None
    assert [c.chat_id for c in store.list_chats(ALICE, theme="cooking").items] == [8]
    assert store.list_chats(BOB).items == []

    with pytest.raises(InvalidInput):
        store.list_turns(ALICE, 7, cursor="not-a-cursor!!")
    with pytest.raises(InvalidInput):
        store.list_turns(ALICE, 7, limit=store.settings.max_page_size + 1)
    with pytest.raises(InvalidInput):
        store.add_turn(ALICE, -1, "a", "b")
    with pytest.raises(InvalidInput):
        store.add_turn(ALICE, 1, "x" * (store.settings.max_text_chars + 1), "b")
    assert store.add_turn(ALICE, 1, "nul\x00byte", "b").user_input == "nulbyte"  # the hygiene boundary


def test_sync_is_idempotent_resumable_and_caches_by_hash(store) -> None:  # noqa: ANN001
    store.add_turn(
        ALICE, 1, "I want to visit Kyoto in autumn", "Kyoto is lovely in November.", theme="travel"
    )
    store.add_turn(ALICE, 2, "How do I bake sourdough bread?", "Feed the starter, then proof overnight.")
    store.add_turn(BOB, 1, "hello", "hi there")
    store.add_turn(BOB, 2, "hello", "hi there")  # same text: embedded once
    store.add_turn(BOB, 3, "My cat is named Miso", "Nice name for a cat!")

    before = store.provider.usage.texts
    first = store.sync(max_batches=1, batch_size=2)  # "interrupted" after one batch
    assert first.memories_written == 2 and not first.complete
    rest = store.sync(batch_size=2)
    assert rest.complete and rest.memories_written == 3
    assert rest.reused == 1 and first.embedded + rest.embedded == 4
    assert store.provider.usage.texts - before == 4  # 5 turns, 4 distinct texts
    again = store.sync()
    assert again.memories_written == 0 and again.embedded == 0 and again.complete
    store.add_turn(ALICE, 3, "My cat is named Miso", "Nice name for a cat!")  # text already in the space
    cached = store.sync()
    assert (cached.memories_written, cached.embedded, cached.reused) == (1, 0, 1)
    assert store.provider.usage.texts - before == 4

    hits = store.search(ALICE, "trip to Japan", k=2)
    assert hits[0].summary.startswith("User: I want to visit Kyoto") and hits[0].theme == "travel"
    assert hits[0].score > hits[1].score
    assert {h.chat_id for h in store.search(BOB, "pets", k=10)} == {1, 2, 3}
    assert all("Kyoto" not in h.summary for h in store.search(BOB, "Kyoto travel", k=10))
    assert [h.chat_id for h in store.search(ALICE, "bread", k=5, theme="travel")] == [1]
    assert len(store.search(ALICE, "bread", k=5)) == 3
    future = datetime.now(UTC) + timedelta(days=1)
    assert store.search(ALICE, "bread", since=future) == []
    assert len(store.search(ALICE, "bread", until=future)) == 3
    mem = store.get_memory(ALICE, hits[0].id)
    assert mem.summary == hits[0].summary
    with pytest.raises(NotFound):
        store.get_memory(BOB, hits[0].id)


def test_long_turn_is_trimmed_to_model_limit(store) -> None:  # noqa: ANN001
    long_text = "word " * 2000
    store.add_turn(ALICE, 1, long_text, "ok")
    store.sync()
    hit = store.search(ALICE, "word", k=1)[0]
    assert len(hit.summary) < len(long_text)
    assert store.provider.count_tokens(hit.summary) <= store.provider.max_tokens - 2


def test_delete_user_and_retention(store) -> None:  # noqa: ANN001
    old = datetime.now(UTC) - timedelta(days=40)
    store.add_turn(ALICE, 1, "old conversation about skiing", "ok", created_at=old)
    store.add_turn(ALICE, 2, "new conversation about surfing", "ok")
    store.add_turn(BOB, 1, "bob's things", "ok")
    store.sync()
    out = store.retention(30)
    assert out["memories_deleted"] == 1 and out["turns_deleted"] == 0
    assert store.sync().memories_written == 0  # retention is not undone by the next sync
    assert [h.chat_id for h in store.search(ALICE, "skiing", k=10)] == [2]
    assert store.retention(30, include_history=True)["turns_deleted"] == 1

    assert store.delete_user(ALICE) == {"turns_deleted": 1, "memories_deleted": 1}
    assert store.list_chats(ALICE).items == [] and store.search(ALICE, "surfing") == []
    assert len(store.search(BOB, "things")) == 1


def test_collection_mismatch_refuses_to_mix_vector_spaces(store, settings) -> None:  # noqa: ANN001
    store.add_turn(ALICE, 1, "hi", "hello")
    store.sync()
    space = store.conn.execute("SELECT name FROM dbembed.chat_memory_spaces").fetchone()[0]
    store.conn.execute("UPDATE dbembed.chat_memory_spaces SET model = 'bedrock:other-model'")
    with open_store(settings.model_copy(update={"collection": space})) as other:
        other._provider = store.provider
        with pytest.raises(CollectionMismatch):
            other.sync()
        with pytest.raises(CollectionMismatch):
            other.search(ALICE, "hi")


def test_sync_reuses_a_vector_the_file_index_already_holds(settings, minilm) -> None:  # noqa: ANN001
    """One embedding cache per vector space: a memory text that a file-index collection of the same
    model already embedded takes that stored vector; the provider is not called for it."""
    from dbembed.chat.summarize import turn_text
    from dbembed.store.chunks import ChunkRecord, copy_chunks
    from dbembed.store.collections import default_collection_name, ensure_collection
    from dbembed.store.embedding_cache import content_hash

    text = turn_text("What is the capital of Peru?", "Lima.")
    with open_store(settings) as store:
        store._provider = minilm
        conn = store.conn
        dims = minilm.dimensions
        coll = ensure_collection(
            conn, default_collection_name(minilm.model_id, dims), minilm.model_id, dims, store.settings.store
        )
        (source_id,) = conn.execute(
            "INSERT INTO dbembed.sources (collection_id, path) VALUES (%s, '/data/faq.db') RETURNING id",
            (coll.id,),
        ).fetchone()
        chunk = ChunkRecord("faq", "1", 0, bytes(16), content_hash(text), text)
        with conn.transaction():
            copy_chunks(conn, coll, source_id, [chunk], minilm.embed_documents([text]))
        store.add_turn(ALICE, 1, "What is the capital of Peru?", "Lima.")
        store.add_turn(ALICE, 2, "Which river runs through Cairo?", "The Nile.")

        before = minilm.usage.texts
        res = store.sync()
        assert (res.memories_written, res.embedded, res.reused) == (2, 1, 1)
        assert minilm.usage.texts - before == 1  # only the text the index did not hold
        space = store._memory(create=False)
        same = conn.execute(
            f"SELECT m.embedding::vector = c.embedding::vector FROM {space.table.as_string(conn)} m, "
            f"{coll.table} c WHERE m.chat_id = 1"
        ).fetchone()[0]
        assert same  # the index's vector, not a fresh one
        assert store.search(ALICE, "capital of Peru", k=1)[0].chat_id == 1
