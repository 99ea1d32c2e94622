"""Document 003's existing tables, used as they are through the ``chat_tables`` mapping."""

from __future__ import annotations

import psycopg
import pytest

from dbembed.chat import Actor, Conflict, open_store
from dbembed.errors import CollectionMismatch

DOC003 = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE st_chat_history_table (
  primarykey bigserial PRIMARY KEY, userid text NOT NULL UNIQUE,
  themename text NOT NULL, chatid bigint NOT NULL CHECK (chatid >= 0),
  userinput text, botresponse text, timestamp timestamptz DEFAULT now());
CREATE INDEX ON st_chat_history_table (userid);
CREATE INDEX ON st_chat_history_table (timestamp);
CREATE TABLE st_chat_history_vector_table (
  primarykey BIGSERIAL PRIMARY KEY, userid TEXT NOT NULL, theme TEXT NOT NULL,
  chatid BIGINT NOT NULL CHECK (chatid >= 0), chat_summary TEXT NOT NULL,
  metadata JSONB, chat_vector VECTOR({dims}) NOT NULL);
CREATE INDEX ON st_chat_history_vector_table USING hnsw (chat_vector vector_l2_ops);
"""
MAPPING = {
    "history_table": "public.st_chat_history_table",
    "memory_table": "public.st_chat_history_vector_table",
}


def _create(url: str, dims: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(DOC003.replace("{dims}", str(dims)))


def test_doc003_tables_as_they_are_with_1024_dims_refuse_a_384_dim_model(
    settings, database_url, minilm
) -> None:  # noqa: ANN001
    _create(database_url, 1024)
    with open_store(settings.model_copy(update={"chat_tables": MAPPING})) as store:
        store._provider = minilm
        store.add_turn(Actor("u1"), 1, "hello", "hi", theme="t")
        with pytest.raises(CollectionMismatch, match="1024 dimensions"):
            store.sync()


def test_doc003_tables_history_memory_search_delete(settings, database_url, minilm) -> None:  # noqa: ANN001
    _create(database_url, minilm.dimensions)
    s = settings.model_copy(update={"chat_tables": MAPPING})
    u1, u2 = Actor("u1"), Actor("u2")
    with open_store(s) as store:
        store._provider = minilm
        store.add_turn(u1, 4, "Which trains go to Nikko?", "The Tobu line from Asakusa.", theme="travel")
        with pytest.raises(Conflict, match="UNIQUE constraint that allows one row per user"):
            store.add_turn(u1, 4, "second turn", "fails: document 003's design bug")
        store.conn.execute(
            "ALTER TABLE st_chat_history_table DROP CONSTRAINT st_chat_history_table_userid_key"
        )
        second = store.add_turn(u1, 4, "And how long does it take?", "About two hours.")
        assert second.turn_no == 1 and second.theme == "travel"
        store.add_turn(u2, 4, "u2 private: my allergy is peanuts", "Noted.", theme="health")
        # A row the team's own pipeline wrote (no dbembed metadata) stays searchable.
        vec = minilm.embed_documents(["u1 likes onsen hot springs"])[0]
        store.conn.execute(
            "INSERT INTO st_chat_history_vector_table (userid, theme, chatid, chat_summary, chat_vector) "
            "VALUES ('u1', 'travel', 3, 'u1 likes onsen hot springs', %s)",
            (vec,),
        )

        res = store.sync()
        assert res.memories_written == 3 and res.complete
        assert store.sync().memories_written == 0
        meta = store.conn.execute(
            "SELECT metadata FROM st_chat_history_vector_table WHERE metadata->>'turn' = '1'"
        ).fetchone()[0]
        assert meta["kind"] == "turn" and meta["model"] == minilm.model_id and len(meta["hash"]) == 32

        turns = store.list_turns(u1, 4).items
        assert [(t.turn_no, t.user_input) for t in turns] == [(1, "And how long does it take?"),
                                                             (0, "Which trains go to Nikko?")]  # fmt: skip
        assert [c.chat_id for c in store.list_chats(u1).items] == [4]
        hits = store.search(u1, "train to Nikko", k=3)
        assert "Tobu" in hits[0].summary and hits[0].score > 0.3
        assert "onsen" in store.search(u1, "hot spring bath", k=1)[0].summary
        assert all("peanuts" not in h.summary for h in store.search(u1, "allergy", k=10))
        assert store.retention(3650)["memories_deleted"] == 0

        assert store.delete_user(u1) == {"turns_deleted": 2, "memories_deleted": 3}
        assert store.search(u1, "Nikko") == [] and len(store.search(u2, "allergy")) == 1
        with pytest.raises(Exception, match="tenant"):
            store.add_turn(Actor("u3", "other-tenant"), 1, "x", "y")
